"""SBC machinery: ranks, coverage and binomial intervals on hand examples, the uniformity test on known
(mis)calibrated posteriors, untruncated prior tables, every parameter checked, tiny end-to-end runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.evaluation.calibration import (Design, binomial_interval, coverage_table, design_of, quantize,
                                                  rank_and_cover, sbc_best_run, sbc_draws, simulate_sweep,
                                                  simulate_table)
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.runtable import validate_runs
from bayes_scaling.optimum import spec as specs
from test_surface import known_design

TINY = SamplerConfig(draws=100, tune=150, chains=2)


def narrow_design() -> Design:
    """Four cells on three-point grids: most prior laws put some optimum off the grid."""
    return Design(N=np.array([1e8, 1e8, 4e8, 4e8]), D=np.array([2e9, 8e9, 2e9, 8e9]),
                  log_grid={"lr": np.log(2.0) * np.arange(-10, -7), "batch_size": np.log(2.0) * np.arange(17, 20)},
                  min_loss=np.full(4, 3.0))


def test_rank_and_coverage_on_a_hand_example():
    draws = np.arange(1, 101, dtype=float)              # 1 … 100
    mid = rank_and_cover(50.5, draws, n_ranks=100)
    assert mid == {"rank": 50, "n_ranks": 100, "cover50": True, "cover90": True}
    edge = rank_and_cover(96.0, draws, n_ranks=100)      # above the 95 % quantile (95.05)
    assert edge["rank"] == 95 and not edge["cover50"] and not edge["cover90"]
    assert rank_and_cover(0.0, draws, 100)["rank"] == 0 and rank_and_cover(1e9, draws, 100)["rank"] == 100
    # thinned in sampling order: draws 0, 2, 4 of (4, 0, 3, 1, 2) are 4, 3, 2 — one below 2.5
    assert rank_and_cover(2.5, np.array([4.0, 0.0, 3.0, 1.0, 2.0]), n_ranks=3)["rank"] == 1


def test_wilson_interval_on_hand_examples():
    lo, hi = binomial_interval(np.array([9, 180, 0]), np.array([10, 200, 20]))
    np.testing.assert_allclose(lo, [0.59585, 0.85059, 0.0], atol=1e-5)
    np.testing.assert_allclose(hi, [0.98212, 0.93433, 0.16113], atol=1e-5)
    lo90, hi90 = binomial_interval(180, 200, level=0.9)
    assert lo[1] < lo90 < hi90 < hi[1]                    # a 90 % interval lies inside the 95 % one


def _synthetic_sbc(scale: float, n_sims: int = 400, seed: int = 0) -> pd.DataFrame:
    """θ ~ Normal(0, 1), x | θ ~ Normal(θ, 1): the exact posterior is Normal(x/2, √½); ``scale``
    multiplies its sd (1: calibrated, < 1: too narrow)."""
    rng = np.random.default_rng(seed)
    rows = []
    for sim in range(n_sims):
        theta = rng.standard_normal()
        x = theta + rng.standard_normal()
        draws = x / 2 + scale * np.sqrt(0.5) * rng.standard_normal(1000)
        rows.append({"model": f"scale {scale}", "param": "theta", "sim": sim, "fit_ok": True,
                     **rank_and_cover(theta, draws, 99)})
    return pd.DataFrame(rows)


def test_uniformity_and_coverage_flag_a_too_narrow_posterior_and_not_a_calibrated_one():
    table = coverage_table(pd.concat([_synthetic_sbc(1.0), _synthetic_sbc(0.5)])).set_index("model")
    good, narrow = table.loc["scale 1.0"], table.loc["scale 0.5"]
    assert good["n"] == narrow["n"] == 400
    assert good["rank_p"] > 0.05 and good["fails"] == ""
    assert good["cover90_lo"] <= 0.9 <= good["cover90_hi"] and good["cover50_lo"] <= 0.5 <= good["cover50_hi"]
    assert narrow["rank_p"] < 1e-6 and narrow["cover90_hi"] < 0.85
    assert set(narrow["fails"].split(",")) == {"50%", "90%", "ranks"}
    few = coverage_table(_synthetic_sbc(0.5, n_sims=30)).iloc[0]      # 3 ranks per bin: no chi-square
    assert np.isnan(few["rank_p"]) and "90%" in few["fails"] and "ranks" not in few["fails"]


def test_quantize_snaps_to_the_nearest_grid_point_and_opens_the_edge_cells():
    design = narrow_design()
    grid = design.log_grid["lr"]
    data = quantize(np.array([grid[0] - 5.0, grid[1] + 0.1, grid[1] - 0.3, grid[2] + 9.0]), design, "lr")
    np.testing.assert_allclose(data.y, grid[[0, 1, 1, 2]])
    assert np.isneginf(data.lo[0]) and np.isposinf(data.hi[3])
    assert np.all(np.isfinite([data.lo[1:], data.hi[:3]])) and np.all((data.lo < data.y) & (data.y < data.hi))


def test_simulated_tables_come_from_the_untruncated_prior():
    """Every prior draw makes a table, whatever its optima: on a three-point grid nearly every table
    has open edge cells, and some have nothing else (the old redraw kept none of them)."""
    design, rng = narrow_design(), np.random.default_rng(0)
    spec = specs.get("quantized")
    prior = spec.prior_draws(design.template("lr"), design.centers("lr"), 200, seed=1)
    assert np.std(prior["a"].values) == pytest.approx(2.0, rel=0.15)       # a ~ Normal(ȳ, 2), not cut
    tables = [simulate_table(spec, prior.isel(draw=[s]), design, "lr", rng) for s in range(200)]
    open_share = np.array([np.mean(np.isinf(t.lo) | np.isinf(t.hi)) for t in tables])
    assert np.mean(open_share > 0) > 0.9 and np.mean(open_share == 1.0) > 0.2
    assert all(np.all(np.isin(t.y, design.log_grid["lr"])) for t in tables)


def test_every_variable_element_and_the_prediction_are_checked():
    design = known_design()                               # 3 model sizes
    prior = specs.get("hierarchical").prior_draws(design.template("lr"), design.centers("lr"), 50, seed=2,
                                                  options=specs.ModelOptions(per_n_intercepts=True))
    draws = sbc_draws(specs.get("hierarchical"), prior, design, "lr", np.random.default_rng(0))
    assert set(draws) == {"a", "b", "c", "sigma", "tau_c", "tau_a", "pred",
                          *(f"{v}[{k}]" for v in ("c_n", "a_n") for k in range(3))}
    np.testing.assert_array_equal(draws["c_n[2]"], prior["c_n"].values[0, :, 2])
    assert all(d.shape == (50,) for d in draws.values())


def test_tiny_sbc_on_a_narrow_design_checks_every_parameter_on_open_cells():
    sbc = sbc_best_run("hierarchical", narrow_design(), 2, TINY, n_ranks=50)
    params = {"a", "b", "c", "sigma", "tau_c", "c_n[0]", "c_n[1]", "pred"}
    assert set(sbc["param"]) == params and len(sbc) == 2 * 2 * len(params)     # sims × optima × scalars
    assert sbc["rank"].between(0, 50).all()
    assert (sbc.groupby(["sim", "quantity"])["open_cells"].first() > 0).all()
    table = coverage_table(sbc).set_index("param")
    for prm, g in sbc.groupby("param"):
        assert table.loc[prm, "cover90"] == g["cover90"].mean() and table.loc[prm, "n"] == len(g)
    assert (table["cover90"] >= table["cover50"]).all()
    assert ((table["cover90_lo"] <= table["cover90"]) & (table["cover90"] <= table["cover90_hi"])).all()


@pytest.mark.slow
@pytest.mark.parametrize("name, cells, lr_points, b_points", [("steplaw-dense", 17, 14, 13), ("blog-partII", 30, 5, 4)])
def test_tiny_sbc_runs_on_both_real_designs(name, cells, lr_points, b_points):
    design = design_of(name)
    assert design.N.size == cells and design.log_grid["lr"].size == lr_points
    assert design.log_grid["batch_size"].size == b_points
    if name == "blog-partII":                             # its declared grids, 2^-12…2^-8 and 2^16…2^19
        np.testing.assert_allclose(design.log_grid["lr"], np.log(2.0) * np.arange(-12, -7))
        np.testing.assert_allclose(design.log_grid["batch_size"], np.log(2.0) * np.arange(16, 20))
    sbc = sbc_best_run("quantized", design, 2, TINY, n_ranks=50)
    assert set(sbc["param"]) == {"a", "b", "c", "sigma", "pred"} and len(sbc) == 2 * 2 * 5
    assert sbc["open_cells"].between(0, 1).all() and sbc["fit_ok"].dtype == bool


def test_simulated_sweep_is_a_valid_run_table_with_diverged_runs():
    runs, laws = simulate_sweep(known_design(), np.random.default_rng(4))
    clean = validate_runs(runs)
    assert len(clean) == 6 * 13 * 7
    assert set(laws) == {"lr", "batch_size"}
    assert clean.loc[clean["status"] == "diverged", "loss"].isna().all()
