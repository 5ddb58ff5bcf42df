"""The façade: predictions, paired draws, coefficients on the raw scale, save/load."""

import numpy as np
import pytest

from bayes_scaling.optimum.fit import Fitter, OptimumFit
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.evaluation.simulate import TrueLaw, simulate_best_runs

LAW = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.1, tau_c=0.1)


@pytest.fixture(scope="module")
def data():
    best, _ = simulate_best_runs(LAW, LAW, sizes=np.array([1e7, 1e8, 1e9]), tokens=np.geomspace(1e9, 1e11, 5),
                                 lr_grid=Grid.parse("2^-14:2^-2:1"), batch_grid=Grid.parse("2^-14:2^-2:1"), seed=2)
    return best.quantity("lr")


@pytest.fixture(scope="module")
def fits(data):
    fitter = Fitter(SamplerConfig(draws=300, tune=300, chains=2, seed=1), n_boot=2000)
    return {m: fitter.fit(m, data) for m in ("ols", "hierarchical")}


def test_ols_paired_draws_are_the_bootstrap_lines_by_hand(fits, data):
    ols = fits["ols"]
    N = np.array([1e9, 2e9, 4e9])
    D = np.array([1e10, 1e11, 1e12])
    got = ols.sample_paired(N, D, np.random.default_rng(0))
    beta = {k: v[:3] for k, v in ols.coefficient_draws().items()}   # the first three bootstrap lines
    lines = np.exp(beta["intercept"] + beta["b_N"] * np.log(N) + beta["c_D"] * np.log(D))
    # ... each plus one residual of the full least-squares fit, inflated by √(n/(n − 3))
    X = np.column_stack([np.ones_like(data.log_N), data.log_N, data.log_D])
    coef = np.linalg.lstsq(X, data.y, rcond=None)[0]
    n = len(data.y)
    pool = (data.y - X @ coef) * np.sqrt(n / (n - 3))
    np.testing.assert_allclose(sorted(ols.posterior.attrs["residuals"]), sorted(pool), atol=1e-12)
    assert all(np.isclose(pool, r, atol=1e-9).any() for r in np.log(got / lines))
    np.testing.assert_allclose(ols.log_draws(N, D, noise=False)[:3].diagonal(), np.log(lines), rtol=1e-12)


def test_paired_draws_match_the_predictive_at_a_fixed_target(fits):
    hier = fits["hierarchical"]
    S = hier.posterior.sizes["chain"] * hier.posterior.sizes["draw"]
    paired = np.log(hier.sample_paired(np.full(S, 4e9), np.full(S, 1e11), np.random.default_rng(3)))
    grid = hier.log_draws([4e9], [1e11], seed=4)[:, 0]
    assert np.median(paired) == pytest.approx(np.median(grid), abs=0.1)
    assert np.std(paired) == pytest.approx(np.std(grid), rel=0.15)


def test_new_size_draws_a_population_slope_but_a_fitted_size_uses_its_own(fits, data):
    hier = fits["hierarchical"]
    n_fitted = float(data.n_levels[1])
    own = hier.log_draws([n_fitted], [1e12], noise=False)[:, 0]
    c_n = hier.posterior["c_n"].isel(N_level=1).values.ravel()
    post = hier.posterior
    a, b = post["a"].values.ravel(), post["b"].values.ravel()
    by_hand = a + b * (np.log(n_fitted) - hier.centers.log_N) + c_n * (np.log(1e12) - hier.centers.log_D)
    np.testing.assert_allclose(own, by_hand)
    new = hier.log_draws([n_fitted * 1.5], [1e12], noise=False)[:, 0]
    assert np.std(new) > np.std(own)


def test_coefficients_are_on_the_raw_log_scale(fits):
    hier = fits["hierarchical"]
    table = hier.coefficients().set_index("param")
    post = hier.posterior
    a, b, c = (post[k].values.ravel() for k in ("a", "b", "c"))
    raw = a - b * hier.centers.log_N - c * hier.centers.log_D
    assert table.loc["intercept", "median"] == pytest.approx(np.median(raw))
    assert {"b_N", "c_D", "sigma", "tau_c"} <= set(table.index)
    assert sum(p.startswith("c_D[N=") for p in table.index) == 3


def test_netcdf_round_trip_predicts_the_same(fits, tmp_path):
    hier = fits["hierarchical"]
    path = tmp_path / "post" / "hier.nc"
    hier.to_netcdf(path)
    assert [p.name for p in path.parent.iterdir()] == ["hier.nc"]  # no temp file left behind
    loaded = OptimumFit.from_netcdf(path)
    a = hier.predict([4e9], [1e11], seed=5)
    b = loaded.predict([4e9], [1e11], seed=5)
    np.testing.assert_allclose(a[["median", "lo", "hi"]].to_numpy(), b[["median", "lo", "hi"]].to_numpy())


def test_one_fitter_serves_tables_with_different_model_sizes():
    """A compiled model is reused only for the same N levels (shapes and coords differ otherwise)."""
    fitter = Fitter(SamplerConfig(draws=100, tune=200, chains=2, seed=1))
    for sizes in (np.array([1e7, 1e8, 1e9]), np.array([1e7, 3e7, 1e8, 3e8, 1e9])):
        best, _ = simulate_best_runs(LAW, LAW, sizes=sizes, tokens=np.geomspace(1e9, 1e11, 4),
                                     lr_grid=Grid.parse("2^-14:2^-2:1"), batch_grid=Grid.parse("2^-14:2^-2:1"), seed=3)
        fit = fitter.fit("hierarchical", best.quantity("lr"))
        np.testing.assert_allclose(fit.posterior["c_n"].coords["N_level"].values, sizes)
