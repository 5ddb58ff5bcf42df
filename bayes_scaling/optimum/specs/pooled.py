"""``pooled`` — the Bayesian twin of OLS: the best grid value taken as exact.

    log q_i ~ Normal(a + b·x_N,i + c·x_D,i, σ)

Its likelihood is a density of log q, so LOO scores it, like every kind, on the probability it
gives the observed grid cell, Φ((hi − μ)/σ) − Φ((lo − μ)/σ) (no selection jitter: it reads
the grid value as the optimum itself).
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.inference.config import FLAT_LAW_TARGET_ACCEPT
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.spec import ModelOptions, OptimumSpec, register


@register
class Pooled(OptimumSpec):
    name = "pooled"
    summary = "the same law, Bayesian, Normal noise: grid values taken as exact"
    formula = "log q_i ~ Normal(a + b·x_N + c·x_D, σ)"
    style = {"color": "tab:gray"}
    default = True
    main_priority = 10
    target_accept = FLAT_LAW_TARGET_ACCEPT

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            mu = a + b * d["x_N"] + c * d["x_D"]
            pm.Normal("q_obs", mu=mu, sigma=sigma, observed=d["y_obs"], dims="cell")
        return model

    def observation_scale(self, posterior, centers):
        return stacked(posterior, "sigma")[:, None]

    def selection_scale(self, centers):
        return 0.0

    def outcome_logp(self, mu, scale, y, lo, hi):
        """The density log Normal(y | μ, σ) of the grid value itself."""
        from scipy.stats import norm

        return norm.logpdf(y, mu, scale)

    def log_likelihood(self, posterior, centers, n_levels, data):
        """The density of each grid value (what NUTS fitted, and PSIS reweights)."""
        mu = self.predictive(posterior, centers, n_levels, data.log_N, data.log_D, rng=np.random.default_rng(0),
                             noise=False)
        return self.outcome_logp(mu, self.observation_scale(posterior, centers), data.y[None, :], None, None)
