"""``interaction`` — quantized, with a slope on log D that changes smoothly with N (an N×D interaction).

    z_i = a + b·x_N,i + c(N_i)·x_D,i + σ·ε_i,     c(N) = c + d·x_N
        ⇔ a + b·x_N + c·x_D + d·x_N·x_D,                            d ~ Normal(0, 0.5)

observed through its grid cell as in ``quantized``. Every N, fitted or new, gets the slope of the
line c + d·x_N, so the predictive is continuous in N: a target just beside a fitted size gets
nearly that size's slope, not a fresh draw from a population.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.priors import Normal
from bayes_scaling.optimum.spec import ModelOptions, OptimumSpec, register
from bayes_scaling.optimum.specs.quantized import censored_observation


@register
class Interaction(OptimumSpec):
    name = "interaction"
    summary = ("quantized + a slope on log D that moves linearly with log N, c(N) = c + d·x_N (an N×D "
               "interaction): smooth in N, so a new size gets the slope of its neighbours")
    formula = "z_i = a + b·x_N + (c + d·x_N)·x_D + σ·ε_i latent; observed through its grid cell"
    style = {"color": "tab:orange"}
    main_priority = 22
    pooled_partner = "quantized"
    trace_vars = ("a", "b", "c", "d", "sigma")

    def priors(self):
        return {**super().priors(), "d": Normal(0.0, 0.5)}

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            slope = c + self.rv("d", options) * d["x_N"]
            censored_observation(a + b * d["x_N"] + slope * d["x_D"], sigma, d)
        return model

    def mean(self, posterior, centers, n_levels, targets, rng):
        a, b, c, d = (stacked(posterior, k)[:, None] for k in ("a", "b", "c", "d"))
        return a + b * targets.x_N + (c + d * targets.x_N) * targets.x_D

    def level_slopes(self, posterior, centers, n_levels):
        x = np.log(np.asarray(n_levels, dtype=float)) - centers.log_N
        return stacked(posterior, "c")[:, None] + stacked(posterior, "d")[:, None] * x[None, :]

    def coefficient_draws(self, posterior, centers, n_levels):
        """On the raw scale the interaction moves the other exponents: log q* = β0 + β_N log N + β_D log D
        + d·log N·log D, with β_N = b − d·m_D, β_D = c − d·m_N, β0 = a − b·m_N − c·m_D + d·m_N·m_D."""
        a, b, c, d = (stacked(posterior, k) for k in ("a", "b", "c", "d"))
        mN, mD = centers.log_N, centers.log_D
        draws = {"intercept": a - b * mN - c * mD + d * mN * mD, "b_N": b - d * mD, "c_D": c - d * mN,
                 "d_ND": d, "sigma": stacked(posterior, "sigma")}
        slopes = self.level_slopes(posterior, centers, n_levels)
        for k, n in enumerate(n_levels):
            draws[f"c_D[N={n:.3g}]"] = slopes[:, k]
        return draws
