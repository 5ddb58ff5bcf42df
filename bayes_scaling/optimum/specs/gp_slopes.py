"""``gp-slopes`` — interaction, plus deviations of the slope per model size that are smooth in log N.

    z_i = a + b·x_N,i + c(N_i)·x_D,i + σ·ε_i,     c(N) = c + d·x_N + δ(x_N),
    δ ~ GP(0, τ_c²·exp(−(x − x')²/(2ℓ²))),   ℓ = LENGTH_SCALE = ln 10 (a decade in N),  τ_c ~ LogNormal(log 0.1, 0.75)

observed through its grid cell as in ``quantized``. At the fitted sizes δ is sampled non-centred
(δ = τ_c·L·ζ, L the Cholesky factor of the correlation matrix); at any other N it is the GP's
conditional draw given the fitted ones, δ* ~ Normal(k*ᵀK⁻¹δ, τ_c²(1 − k*ᵀK⁻¹k*)): continuous in N,
equal to the fitted size's deviation there, and growing to the population spread τ_c a few decades
away. The stated length scale is a modelling choice (a decade); ``--prior`` changes τ_c, not ℓ.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.priors import LogNormal, Normal
from bayes_scaling.optimum.spec import (TAU_PRIOR_MEDIAN, TAU_PRIOR_SIGMA, ModelOptions, OptimumSpec, match_levels,
                                        new_sizes, register)
from bayes_scaling.optimum.specs.quantized import censored_observation

#: Length scale of the slope deviations, in natural-log units of N: one decade.
LENGTH_SCALE = float(np.log(10.0))
JITTER = 1e-6


def correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """exp(−(x − y)²/(2ℓ²)) for every pair (squared-exponential correlation in log N)."""
    return np.exp(-0.5 * (np.subtract.outer(x, y) / LENGTH_SCALE) ** 2)


@register
class GPSlopes(OptimumSpec):
    name = "gp-slopes"
    summary = ("interaction + slope deviations per model size that are a Gaussian process in log N "
               "(length scale a decade): fitted sizes keep their own slope, a new size gets a continuous one")
    formula = "z_i = a + b·x_N + (c + d·x_N + δ(x_N))·x_D + σ·ε_i, δ ~ GP(0, τ_c² SE(ℓ = ln 10)); grid cell observed"
    style = {"color": "tab:pink"}
    main_priority = 28
    pooled_partner = "quantized"
    trace_vars = ("a", "b", "c", "d", "sigma", "tau_c")

    def priors(self):
        return {**super().priors(), "d": Normal(0.0, 0.5), "tau_c": LogNormal(np.log(TAU_PRIOR_MEDIAN), TAU_PRIOR_SIGMA)}

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        x = np.log(np.asarray(data.n_levels, dtype=float)) - centers.log_N
        chol = np.linalg.cholesky(correlation(x, x) + JITTER * np.eye(x.size))
        with pm.Model(coords=self.coords(data)) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            slope_d, tau = self.rv("d", options), self.rv("tau_c", options)
            z = pm.Normal("z_c", 0.0, 1.0, dims="N_level")
            delta = pm.Deterministic("delta_n", tau * pm.math.dot(chol, z), dims="N_level")
            slope = c + slope_d * d["x_N"] + delta[d["n_index"]]
            censored_observation(a + b * d["x_N"] + slope * d["x_D"], sigma, d)
        return model

    def deviations(self, posterior, centers, n_levels, targets, rng) -> np.ndarray:
        """δ(x_N) of each entry of ``targets`` ((S, T), or (S, 1) paired): the GP's conditional draw
        given the fitted sizes' deviations of the same posterior draw — jointly over the targets'
        distinct sizes (two targets at one N share δ; nearby new sizes are correlated)."""
        x = np.log(np.asarray(n_levels, dtype=float)) - centers.log_N
        K = correlation(x, x) + JITTER * np.eye(x.size)
        delta, tau = stacked(posterior, "delta_n"), stacked(posterior, "tau_c")
        if targets.paired:                                            # draw s at target s
            xs = targets.log_N - centers.log_N
            k = correlation(xs, x)                                    # (S, L)
            A = np.linalg.solve(K, k.T).T                             # k*ᵀ K⁻¹
            sd = np.sqrt(np.clip(1.0 - np.einsum("tl,tl->t", A, k), 0.0, None))
            mean = np.einsum("sl,sl->s", delta, A)[:, None]
            return mean + (tau * sd)[:, None] * rng.standard_normal((delta.shape[0], 1))
        group = match_levels(targets.log_N, n_levels)                 # a fitted size keeps its own δ
        out = delta[:, np.clip(group, 0, None)]
        new = group < 0
        if new.any():
            sizes, codes = new_sizes(targets.log_N[new])
            xs = sizes - centers.log_N
            k = correlation(xs, x)                                    # (U, L)
            A = np.linalg.solve(K, k.T).T
            cov = correlation(xs, xs) - A @ k.T                       # conditional correlation (U, U)
            w, V = np.linalg.eigh(0.5 * (cov + cov.T))
            root = V * np.sqrt(np.clip(w, 0.0, None))                 # root @ rootᵀ = cov (PSD-safe)
            z = rng.standard_normal((delta.shape[0], xs.size))
            out[:, new] = (delta @ A.T + tau[:, None] * (z @ root.T))[:, codes]
        return out

    def mean(self, posterior, centers, n_levels, targets, rng):
        a, b, c, d = (stacked(posterior, k)[:, None] for k in ("a", "b", "c", "d"))
        dev = self.deviations(posterior, centers, n_levels, targets, rng)
        return a + b * targets.x_N + (c + d * targets.x_N + dev) * targets.x_D

    def level_slopes(self, posterior, centers, n_levels):
        x = np.log(np.asarray(n_levels, dtype=float)) - centers.log_N
        return (stacked(posterior, "c")[:, None] + stacked(posterior, "d")[:, None] * x[None, :]
                + stacked(posterior, "delta_n"))

    def coefficient_draws(self, posterior, centers, n_levels):
        draws = super().coefficient_draws(posterior, centers, n_levels)
        d = stacked(posterior, "d")
        a, b, c = (stacked(posterior, k) for k in ("a", "b", "c"))
        mN, mD = centers.log_N, centers.log_D
        draws.update({"intercept": a - b * mN - c * mD + d * mN * mD, "b_N": b - d * mD, "c_D": c - d * mN,
                      "d_ND": d, "tau_c": stacked(posterior, "tau_c")})
        slopes = self.level_slopes(posterior, centers, n_levels)
        for k, n in enumerate(n_levels):
            draws[f"c_D[N={n:.3g}]"] = slopes[:, k]
        return draws
