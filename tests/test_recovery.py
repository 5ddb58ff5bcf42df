"""Parameter recovery from simulated quantized sweeps with a known law."""

import numpy as np
import pymc as pm
import pytest
import xarray as xr

from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.compare import cell_loglik, compare
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.evaluation.simulate import TrueLaw, simulate_best_runs

SIZES = np.array([3e7, 1e8, 3e8, 1e9, 3e9])
TOKENS = np.geomspace(1e9, 3.2e10, 6)
LR_GRID = Grid.parse("2^-14:2^-4:1")
BATCH_GRID = Grid.parse("2^14:2^24:1")
LR_LAW = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.1)
BATCH_LAW = TrueLaw(intercept=0.5, b=0.0, c=0.5, sigma=0.1)
CONFIG = SamplerConfig(draws=500, tune=500, chains=4, seed=3, target_accept=0.99)


@pytest.fixture(scope="module")
def fitter():
    return Fitter(CONFIG)


def interval(fit, param, ci_prob=0.98):
    """A wide interval: one simulated table per test, several parameters checked at once."""
    row = fit.coefficients(ci_prob=ci_prob).set_index("param").loc[param]
    return row["lo"], row["median"], row["hi"]


def test_quantized_intervals_contain_true_exponents(fitter):
    """98 % intervals of b, c and the intercept contain the truth for both optima."""
    best, _ = simulate_best_runs(LR_LAW, BATCH_LAW, sizes=SIZES, tokens=TOKENS,
                                 lr_grid=LR_GRID, batch_grid=BATCH_GRID, seed=11)
    for quantity, law in (("lr", LR_LAW), ("batch_size", BATCH_LAW)):
        fit = fitter.fit("quantized", best.quantity(quantity))
        assert fit.diagnostics.max_rhat < 1.02 and fit.diagnostics.divergences == 0, fit.diagnostics.describe()
        for param, true in (("b_N", law.b), ("c_D", law.c)):
            lo, med, hi = interval(fit, param)
            assert lo < true < hi, f"{quantity} {param}: {true} not in [{lo:.3f}, {hi:.3f}]"
        # the intercept is recovered too (on the raw log scale)
        lo, _, hi = interval(fit, "intercept")
        assert lo < law.intercept < hi


def test_quantized_is_less_biased_than_gaussian_on_clipped_grid(fitter):
    """A narrow grid clips many optima to its edge cells; treating those grid values as
    exact (pooled) flattens the slope, the censored model does not."""
    narrow = Grid.parse("2^-10:2^-7:1")
    err = {"pooled": [], "quantized": []}
    for seed in range(4):
        best, _ = simulate_best_runs(LR_LAW, BATCH_LAW, sizes=SIZES, tokens=TOKENS,
                                     lr_grid=narrow, batch_grid=BATCH_GRID, seed=100 + seed)
        edge = ~np.isfinite(best.frame["lr_lo"]) | ~np.isfinite(best.frame["lr_hi"])
        assert edge.mean() > 0.25  # the design really does clip
        for model in err:
            _, med, _ = interval(fitter.fit(model, best.quantity("lr")), "b_N")
            err[model].append(med - LR_LAW.b)
    bias = {m: abs(np.mean(e)) for m, e in err.items()}
    assert bias["quantized"] < 0.5 * bias["pooled"], bias
    assert bias["quantized"] < 0.08, bias


def test_hierarchical_recovers_per_n_slopes_and_widens_extrapolation(fitter):
    law = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.05, tau_c=0.15)
    best, truth = simulate_best_runs(law, BATCH_LAW, sizes=SIZES, tokens=np.geomspace(1e9, 1e11, 8),
                                     lr_grid=LR_GRID, batch_grid=BATCH_GRID, seed=7)
    data = best.quantity("lr")
    hier = fitter.fit("hierarchical", data)
    assert hier.diagnostics.divergences <= 0.01 * CONFIG.draws * CONFIG.chains
    table = hier.coefficients(ci_prob=0.98).set_index("param")
    true_slopes = truth.groupby("N")["c_lr"].first()
    covered = [table.loc[f"c_D[N={n:.3g}]", "lo"] < c < table.loc[f"c_D[N={n:.3g}]", "hi"] for n, c in true_slopes.items()]
    assert sum(covered) >= 4, covered
    quant = fitter.fit("quantized", data)
    target = ([4e10], [1e12])  # a new, larger N: its slope is drawn from the population
    w_h = np.ptp(np.quantile(hier.log_draws(*target, noise=False), [0.05, 0.95]))
    w_q = np.ptp(np.quantile(quant.log_draws(*target, noise=False), [0.05, 0.95]))
    assert w_h > 1.3 * w_q


def test_numpy_log_likelihood_matches_pymc(fitter):
    """The log_likelihood group (NumPy) equals PyMC's own pointwise log-likelihood of each model,
    and for the censored models it is the cell probability LOO scores."""
    best, _ = simulate_best_runs(LR_LAW, BATCH_LAW, sizes=SIZES[:3], tokens=TOKENS[:4],
                                 lr_grid=LR_GRID, batch_grid=BATCH_GRID, seed=5)
    data = best.quantity("batch_size")
    for model in ("pooled", "quantized", "hierarchical"):
        fit = fitter.fit(model, data)
        ours = fit.idata["log_likelihood"]["q_obs"].transpose("chain", "draw", "cell").values
        pm_model = specs.get(model).build(data, fit.centers)
        tree = xr.DataTree.from_dict({"posterior": fit.posterior})
        theirs = pm.compute_log_likelihood(tree, model=pm_model, progressbar=False)["log_likelihood"]["q_obs"]
        np.testing.assert_allclose(ours, theirs.transpose("chain", "draw", "cell").values, rtol=1e-6, atol=1e-8)
        if model != "pooled":
            np.testing.assert_allclose(cell_loglik(fit, data), ours.reshape(-1, len(data.y)), rtol=1e-12)


def test_compare_prefers_the_true_structure(fitter):
    """Per-N slopes that really differ: LOO on the grid cells ranks hierarchical over pooled slopes."""
    law = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.03, tau_c=0.25)
    best, _ = simulate_best_runs(law, BATCH_LAW, sizes=SIZES, tokens=np.geomspace(1e9, 3e11, 8),
                                 lr_grid=Grid.parse("2^-14:2^-4:0.5"), batch_grid=BATCH_GRID, seed=21)
    data = best.quantity("lr")
    fits = {m: fitter.fit(m, data) for m in ("quantized", "hierarchical")}
    table = compare(fits, data, fitter, max_refits=3, cv=()).table.set_index("model")
    assert table.loc["hierarchical", "rank"] == 0
    assert table.loc["quantized", "elpd_diff"] < -2 * table.loc["quantized", "dse"]  # clearly worse
