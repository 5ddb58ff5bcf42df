"""``pooled`` — the Bayesian twin of OLS: the best grid value taken as exact.

    log q_i ~ Normal(a + b·x_N,i + c·x_D,i, σ)

Its likelihood is a density of log q, so LOO scores it, like every kind, on the probability it
gives the observed grid cell, Φ((hi − μ)/σ) − Φ((lo − μ)/σ) (no selection jitter: it reads
the grid value as the optimum itself).

With Normal priors on a, b and c (the default) it is conjugate given σ, so its draws are exact and
independent (``math.conjugate``): no model to compile, nothing to tune. With another prior on one of
them (``--prior``) it is sampled by NUTS like every other kind.
"""

from __future__ import annotations

import zlib

import numpy as np

from bayes_scaling.inference.config import FLAT_LAW_TARGET_ACCEPT
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.priors import Normal
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

    def sample(self, data, centers, fitter, config, *, posterior_only=False):
        """``config.chains × config.draws`` exact posterior draws when a, b, c have Normal priors (the
        module docstring; a stream of their own per optimum, from the seed and its name); NUTS
        (``OptimumSpec.sample``) otherwise, or where σ's posterior runs off its grid."""
        import xarray as xr

        from bayes_scaling.inference.diagnostics import sampler_free_tree
        from bayes_scaling.math.conjugate import OffGrid, normal_regression_draws

        priors = [self.prior(k, fitter.options) for k in ("a", "b", "c")]
        if not all(isinstance(p, Normal) for p in priors):
            return super().sample(data, centers, fitter, config, posterior_only=posterior_only)
        X = np.column_stack([np.ones(len(data.y)), data.log_N - centers.log_N, data.log_D - centers.log_D])
        m0 = np.array([p.mu for p in priors]) + np.array([centers.y, 0.0, 0.0])
        s0 = np.array([p.sigma for p in priors])
        shape = (config.chains, config.draws)
        rng = np.random.default_rng([config.seed, zlib.crc32(data.name.encode())])
        try:
            beta, sigma = normal_regression_draws(X, data.y, m0, s0, self.prior("sigma", fitter.options).logp,
                                                  shape[0] * shape[1], rng)
        except OffGrid:             # a degenerate posterior (an exact fit): NUTS, and its diagnostics say so
            return super().sample(data, centers, fitter, config, posterior_only=posterior_only)
        post = xr.Dataset({k: (("chain", "draw"), v.reshape(shape)) for k, v in
                           (("a", beta[:, 0]), ("b", beta[:, 1]), ("c", beta[:, 2]), ("sigma", sigma))},
                          coords={"chain": np.arange(shape[0]), "draw": np.arange(shape[1])})
        return xr.DataTree.from_dict({"posterior": post}) if posterior_only else sampler_free_tree(post)

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
