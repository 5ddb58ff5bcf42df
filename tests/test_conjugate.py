"""The pooled kind's exact draws (``math.conjugate``): textbook results, and NUTS on the real tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.math.conjugate import normal_regression_draws
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.priors import StudentT
from bayes_scaling.optimum.spec import Centers, ModelOptions


def test_flat_priors_give_the_textbook_posterior_of_least_squares():
    """With β's prior flat (s₀ = 10⁴) and p(σ) ∝ 1/σ: (n − k)s²/σ² ~ χ²(n − k) and
    (β_j − β̂_j)/(s·√(XᵀX)⁻¹_jj) ~ t(n − k), s² the residual variance of least squares."""
    rng = np.random.default_rng(0)
    n, k = 12, 3
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    y = X @ np.array([1.0, -0.5, 0.3]) + 0.2 * rng.normal(size=n)
    beta_hat, *_ = np.linalg.lstsq(X, y, rcond=None)
    s2 = np.sum((y - X @ beta_hat) ** 2) / (n - k)
    beta, sigma = normal_regression_draws(X, y, np.zeros(k), np.full(k, 1e4), lambda s: -np.log(s), 40_000,
                                          np.random.default_rng(1))
    chi2 = (n - k) * s2 / sigma**2
    assert stats.kstest(chi2, stats.chi2(n - k).cdf).pvalue > 0.01
    scale = np.sqrt(s2 * np.diag(np.linalg.inv(X.T @ X)))
    for j in range(k):
        assert stats.kstest((beta[:, j] - beta_hat[j]) / scale[j], stats.t(n - k).cdf).pvalue > 0.01


def test_a_known_sigma_gives_the_conjugate_normal_of_beta():
    """σ's prior a near point mass at 0.3: β | y is the Normal of the normal equations with the prior."""
    rng = np.random.default_rng(2)
    X = np.column_stack([np.ones(8), np.linspace(-1, 1, 8), np.linspace(-1, 1, 8) ** 2])
    y = rng.normal(size=8)
    m0, s0 = np.array([0.5, 0.0, -0.2]), np.array([2.0, 1.0, 0.5])
    point = stats.gamma(1e6, scale=0.3 / 1e6)
    beta, sigma = normal_regression_draws(X, y, m0, s0, point.logpdf, 40_000, np.random.default_rng(3))
    assert sigma.mean() == pytest.approx(0.3, rel=1e-3)
    prec = X.T @ X / 0.3**2 + np.diag(1 / s0**2)
    mean = np.linalg.solve(prec, X.T @ y / 0.3**2 + m0 / s0**2)
    sd = np.sqrt(np.diag(np.linalg.inv(prec)))
    assert np.all(np.abs(beta.mean(axis=0) - mean) < 4 * sd / np.sqrt(len(beta)))
    assert beta.std(axis=0) == pytest.approx(sd, rel=0.02)


@pytest.mark.parametrize("data", ["blog-partII", "steplaw-dense"])
def test_the_pooled_kinds_exact_draws_agree_with_nuts(data):
    """The exact path and NUTS (the reference path, ``OptimumSpec.sample``) give the same posterior and
    the same prediction at (4e9, 1e11) within Monte-Carlo error; the exact draws pass the diagnostics."""
    best = load_runs(data).best()
    fitter = Fitter(SamplerConfig(draws=1000, chains=4, seed=0))
    pooled = specs.get("pooled")
    for q in ("lr", "batch_size"):
        qd = best.quantity(q)
        centers = Centers.of(qd)
        config = fitter.config.with_tune(500).with_target_accept(0.9)
        exact = pooled.sample(qd, centers, fitter, config)["posterior"].to_dataset()
        nuts = specs.OptimumSpec.sample(pooled, qd, centers, fitter, config)["posterior"].to_dataset()
        for name in ("a", "b", "c", "sigma"):
            x, y = stacked(exact, name), stacked(nuts, name)
            assert abs(x.mean() - y.mean()) < 5 * y.std() / np.sqrt(1000)          # NUTS ESS ≳ 1000 of 4000
            assert x.std() == pytest.approx(y.std(), rel=0.1)
        draws = [pooled.predictive(post, centers, qd.n_levels, np.log([4e9]), np.log([1e11]),
                                   rng=np.random.default_rng(0))[:, 0] for post in (exact, nuts)]
        assert abs(np.median(draws[0]) - np.median(draws[1])) < 0.1 * draws[1].std()
    # independent draws: an effective sample size near their number (sorted uniforms would give far less)
    fit = fitter.fit("pooled", best.quantity("lr"))
    assert fit.diagnostics.min_ess_bulk > 0.8 * 4000 and fit.diagnostics.max_rhat < 1.01


def test_another_prior_on_the_law_is_sampled_by_nuts(monkeypatch):
    """Conjugacy needs Normal priors on a, b, c: a Student-t on b goes to NUTS."""
    calls = []
    reference = specs.OptimumSpec.sample

    def recorded(self, *args, **kwargs):
        calls.append(self.name)
        return reference(self, *args, **kwargs)

    monkeypatch.setattr(specs.OptimumSpec, "sample", recorded)
    qd = load_runs("blog-partII").best().quantity("lr")
    Fitter(SamplerConfig(draws=200, tune=200, chains=2)).fit("pooled", qd)
    assert calls == []
    options = ModelOptions(priors=(("b", StudentT(4.0, 0.0, 1.0)),))
    Fitter(SamplerConfig(draws=200, tune=200, chains=2), options=options).fit("pooled", qd)
    assert calls == ["pooled"]


def test_a_law_fitted_exactly_runs_off_the_grid_and_goes_to_nuts(monkeypatch):
    """Every cell's best value the same: the likelihood grows without bound as σ → 0, the grid says so
    (``OffGrid``), and the pooled kind hands that table to NUTS."""
    from bayes_scaling.math.conjugate import OffGrid

    X = np.column_stack([np.ones(6), np.linspace(-1, 1, 6), np.linspace(1, -1, 6) ** 2])
    with pytest.raises(OffGrid):
        normal_regression_draws(X, np.full(6, 0.7), np.zeros(3), np.ones(3), stats.gamma(2, scale=0.1).logpdf,
                                100, np.random.default_rng(0))
    calls = []
    reference = specs.OptimumSpec.sample
    monkeypatch.setattr(specs.OptimumSpec, "sample", lambda self, *a, **k: calls.append(self.name) or reference(self, *a, **k))
    qd = load_runs("blog-partII").best().quantity("lr")
    flat = type(qd)(**{**qd.__dict__, "y": np.full(len(qd.y), qd.y[0])})
    fit = Fitter(SamplerConfig(draws=200, tune=200, chains=2)).fit("pooled", flat)
    assert calls == ["pooled"] and fit.diagnostics.chains == 2
