"""The numbers behind every interval, against hand computations: the predictive variance at a new
model size, LOO without refits (ArviZ's own), and an exact refit (an explicit refit on the subset)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp

from bayes_scaling.evaluation.simulate import TrueLaw, simulate_best_runs
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.compare import cell_loglik, loo_cells
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.spec import Centers

S = 200_000


def synthetic_posterior(rng: np.random.Generator) -> xr.Dataset:
    """A hierarchical posterior with correlated a, c and known moments (one chain of S draws)."""
    a = rng.normal(-7.0, 0.3, S)
    b = rng.normal(-0.5, 0.05, S)
    c = 0.3 + 0.1 * (a + 7.0) / 0.3 + rng.normal(0, 0.05, S)          # corr(a, c) > 0
    sigma = rng.gamma(4.0, 0.05, S)
    tau = rng.lognormal(np.log(0.1), 0.5, S)
    c_n = c[:, None] + tau[:, None] * rng.standard_normal((S, 3))
    dims = ("chain", "draw")
    return xr.Dataset({"a": (dims, a[None]), "b": (dims, b[None]), "c": (dims, c[None]), "sigma": (dims, sigma[None]),
                       "tau_c": (dims, tau[None]), "c_n": (dims + ("N_level",), c_n[None])})


def test_new_size_predictive_variance_is_the_hand_computation():
    """At a size not fitted: Var(log q*) = Var(a + b·x_N + c·x_D) + x_D²·E[τ_c²] + E[σ²]; at a fitted
    size the slope is that size's own c_n."""
    rng = np.random.default_rng(0)
    post = synthetic_posterior(rng)
    centers, levels = Centers(np.log(3e8), np.log(1e10), -7.0), np.array([1e8, 3e8, 1e9])
    spec = specs.get("hierarchical")
    x_N, x_D = np.log(4e9) - centers.log_N, np.log(1e12) - centers.log_D
    draws = spec.predictive(post, centers, levels, np.log([4e9]), np.log([1e12]), rng=rng)[:, 0]
    v = {k: post[k].values.ravel() for k in ("a", "b", "c", "sigma", "tau_c")}
    by_hand = np.var(v["a"] + v["b"] * x_N + v["c"] * x_D) + x_D**2 * np.mean(v["tau_c"] ** 2) + np.mean(v["sigma"] ** 2)
    assert np.var(draws) == pytest.approx(by_hand, rel=0.02)
    assert np.mean(draws) == pytest.approx(np.mean(v["a"] + v["b"] * x_N + v["c"] * x_D), abs=0.01)
    fitted = spec.predictive(post, centers, levels, np.log([1e9]), np.log([1e12]), rng=rng)[:, 0]
    own = v["a"] + v["b"] * (np.log(1e9) - centers.log_N) + post["c_n"].values[0, :, 2] * x_D
    assert np.var(fitted) == pytest.approx(np.var(own) + np.mean(v["sigma"] ** 2), rel=0.02)


@pytest.fixture(scope="module")
def fitted():
    law = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.1)
    best, _ = simulate_best_runs(law, law, sizes=np.array([3e7, 1e8, 3e8, 1e9]), tokens=np.geomspace(1e9, 3e10, 4),
                                 lr_grid=Grid.parse("2^-14:2^-2:1"), batch_grid=Grid.parse("2^-14:2^-2:1"), seed=5)
    fitter = Fitter(SamplerConfig(draws=400, tune=400, chains=2, seed=7))
    data = best.quantity("lr")
    return fitter, data, fitter.fit("quantized", data)


def test_loo_without_refits_is_arviz_loo(fitted):
    """For a censored kind its log-likelihood *is* the cell probability, so the PSIS elpd of each cell
    equals ArviZ's pointwise LOO."""
    import arviz as az

    fitter, data, fit = fitted
    ours = loo_cells(fit, data, fitter, max_refits=0)
    theirs = az.loo(fit.idata, pointwise=True)
    np.testing.assert_allclose(ours["elpd_i"], np.asarray(theirs.elpd_i).ravel(), rtol=1e-8, atol=1e-10)
    assert len(ours["refit"]) == 0


def test_a_refitted_point_is_an_explicit_refit_on_the_subset(fitted, monkeypatch):
    import bayes_scaling.optimum.compare as compare

    fitter, data, fit = fitted
    monkeypatch.setattr(compare, "K_THRESHOLD", -np.inf)           # every point "high k": refit the first one
    ours = loo_cells(fit, data, fitter, max_refits=1)
    (i,) = ours["refit"]
    keep = np.arange(len(data.y)) != i
    post = fitter.refit_posterior("quantized", data.subset(keep), fit.centers)
    ll = cell_loglik(fit, data.subset(~keep), posterior=post)[:, 0]
    assert ours["elpd_i"][i] == pytest.approx(logsumexp(ll) - np.log(ll.size), rel=1e-12)
    assert post.sizes["draw"] == 400 and len(data.subset(keep).y) == len(data.y) - 1   # the refit never saw cell i
