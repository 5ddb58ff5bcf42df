"""``quantized-t`` — quantized with Student-t scatter: robust to one odd cell.

    z_i = a + b·x_N,i + c·x_D,i + s·T_i,   T_i ~ StudentT(ν = 4),   s = √(σ² + σ_sel²)
    P(cell i) = F₄((hi_i − μ_i)/s) − F₄((lo_i − μ_i)/s)

A cell whose best run sits far off the law (a bad seed, a mislabelled run) costs the Normal
a quadratic penalty and drags the slope; under ν = 4 tails it costs a logarithmic one.
The selection jitter σ_sel is folded into the t scale (a t convolved with a Normal has no
closed form; at σ_sel ≪ a grid step the difference is invisible). ν is fixed at 4, whose CDF
is closed-form (``math.student_t``), so censoring needs no special function.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.math.draws import stacked
from bayes_scaling.math.student_t import t4_interval_logp
from bayes_scaling.optimum.spec import ModelOptions, OptimumSpec, register


@register
class QuantizedT(OptimumSpec):
    name = "quantized-t"
    summary = "quantized with Student-t (ν = 4) scatter about the law: one odd cell cannot drag the slope"
    formula = "z_i = a + b·x_N + c·x_D + s·T_i, T_i ~ StudentT₄; P(cell i) = F₄((hi_i − μ_i)/s) − F₄((lo_i − μ_i)/s)"
    style = {"color": "tab:purple"}
    main_priority = 25

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        from bayes_scaling.optimum.likelihood import t4_interval_logp_pt

        with pm.Model(coords=self.coords(data)) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            scale = pm.math.sqrt(sigma**2 + d["sigma_sel"][0] ** 2)
            pm.CustomDist("q_obs", a + b * d["x_N"] + c * d["x_D"], scale, d["lo"], d["hi"],
                          logp=t4_interval_logp_pt, random=_latent_draw, observed=d["y_obs"], dims="cell")
        return model

    def scatter(self, posterior, rng, shape):
        """σ·T, T ~ StudentT₄: the optimum's own scatter about the law (no selection jitter)."""
        return stacked(posterior, "sigma")[:, None] * rng.standard_t(4.0, size=shape)

    def observation_noise(self, rng, shape):
        return rng.standard_t(4.0, size=shape)

    def outcome_logp(self, mu, scale, y, lo, hi):
        with np.errstate(divide="ignore", invalid="ignore"):
            return t4_interval_logp((lo - mu) / scale, (hi - mu) / scale)

    def cell_logp(self, posterior, centers, n_levels, data):
        mu = self.predictive(posterior, centers, n_levels, data.log_N, data.log_D, rng=np.random.default_rng(0),
                             noise=False)
        return self.outcome_logp(mu, self.observation_scale(posterior, centers), None, data.lo[None, :], data.hi[None, :])


def _latent_draw(mu, scale, lo, hi, rng=None, size=None):
    """Posterior-predictive draw of ``q_obs``: the latent best value μ + s·T (before the grid snaps it)."""
    return mu + scale * rng.standard_t(4.0, size=size)
