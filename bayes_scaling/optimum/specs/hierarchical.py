"""``hierarchical`` — quantized, with a slope on log D per model size drawn from a population.

    z_i = a + b·x_N,i + c_n(i)·x_D,i [+ a_n(i)] + σ·ε_i,    c_n = c + τ_c·ζ_n,  ζ_n ~ Normal(0, 1)

(non-centred; optional intercept offsets a_n = τ_a·ξ_n with ``--per-n-intercepts``), observed
through its grid cell as in ``quantized``. A new N draws its slope (and offset) from the
population, c + τ_c·ζ, so extrapolation carries the spread between sizes. Priors: those of
``optimum.spec``; τ_c, τ_a ~ LogNormal(log 0.1, 0.75).
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.inference.config import PER_N_LAW_TUNE
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.priors import LogNormal
from bayes_scaling.optimum.spec import TAU_PRIOR_MEDIAN, TAU_PRIOR_SIGMA, ModelOptions, OptimumSpec, per_level, register
from bayes_scaling.optimum.specs.quantized import censored_observation


@register
class Hierarchical(OptimumSpec):
    name = "hierarchical"
    summary = ("quantized + a slope on log D per model size, drawn from a population (non-centred); a new N "
               "draws its slope from it, so extrapolation carries the spread between sizes")
    formula = "quantized with c_n = c + τ_c·ζ_n, ζ_n ~ Normal(0, 1) per model size n (optional a_n = τ_a·ξ_n)"
    style = {"color": "tab:red"}
    default = True
    main_priority = 30
    pooled_partner = "quantized"
    tune = PER_N_LAW_TUNE
    trace_vars = ("a", "b", "c", "sigma", "tau_c", "tau_a")

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            tau_c = self.rv("tau_c", options)
            z_c = pm.Normal("z_c", 0.0, 1.0, dims="N_level")
            c_n = pm.Deterministic("c_n", c + tau_c * z_c, dims="N_level")
            mu = a + b * d["x_N"] + c_n[d["n_index"]] * d["x_D"]
            if options.per_n_intercepts:
                tau_a = self.rv("tau_a", options)
                z_a = pm.Normal("z_a", 0.0, 1.0, dims="N_level")
                a_n = pm.Deterministic("a_n", tau_a * z_a, dims="N_level")
                mu = mu + a_n[d["n_index"]]
            censored_observation(mu, sigma, d)
        return model

    def priors(self):
        tau = LogNormal(np.log(TAU_PRIOR_MEDIAN), TAU_PRIOR_SIGMA)
        return {**super().priors(), "tau_c": tau, "tau_a": tau}

    def mean(self, posterior, centers, n_levels, targets, rng):
        """A fitted size uses its own slope c_n (and offset a_n); a new size a fresh population draw."""
        a, b, c = (stacked(posterior, k) for k in ("a", "b", "c"))
        group = targets.levels(n_levels, a.shape[0])
        slope = per_level(posterior, "c_n", "tau_c", c, group, rng)
        mu = a[:, None] + b[:, None] * targets.x_N + slope * targets.x_D
        if "a_n" in posterior:
            mu = mu + per_level(posterior, "a_n", "tau_a", np.zeros_like(a), group, rng)
        return mu

    def level_slopes(self, posterior, centers, n_levels):
        return stacked(posterior, "c_n")

    def coefficient_draws(self, posterior, centers, n_levels):
        draws = super().coefficient_draws(posterior, centers, n_levels)
        for extra in ("tau_c", "tau_a"):
            if extra in posterior:
                draws[extra] = stacked(posterior, extra)
        for k, n in enumerate(n_levels):
            draws[f"c_D[N={n:.3g}]"] = stacked(posterior, "c_n")[:, k]
        return draws
