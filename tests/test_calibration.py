"""SBC machinery: ranks, coverage on hand examples, prior draws on the grid, a tiny end-to-end run."""

from __future__ import annotations

import numpy as np

from bayes_scaling.evaluation.calibration import (coverage_table, draw_law, quantize, rank_and_cover, sbc_best_run,
                                       simulate_sweep)
from bayes_scaling.inputs.runtable import validate_runs
from bayes_scaling.inference.config import SamplerConfig
from test_surface import known_design


def test_rank_and_coverage_on_a_hand_example():
    draws = np.arange(1, 101, dtype=float)              # 1 … 100
    mid = rank_and_cover(50.5, draws, n_ranks=100)
    assert mid == {"rank": 50, "n_ranks": 100, "cover50": True, "cover90": True}
    edge = rank_and_cover(96.0, draws, n_ranks=100)      # above the 95 % quantile (95.05)
    assert edge["rank"] == 95 and not edge["cover50"] and not edge["cover90"]
    assert rank_and_cover(0.0, draws, 100)["rank"] == 0 and rank_and_cover(1e9, draws, 100)["rank"] == 100


def test_prior_draws_keep_optima_inside_the_grid_and_quantize_to_their_cell():
    design, rng = known_design(), np.random.default_rng(0)
    for q in ("lr", "batch_size"):
        th, z = draw_law("hierarchical", design, q, rng)
        grid = design.log_grid[q]
        assert np.all((z > grid[0]) & (z < grid[-1])) and th["c_n"].sizes["N_level"] == 3
        data = quantize(z, design, q, rng)
        assert np.all(np.isin(data.y, grid))
        assert np.all((data.lo < data.y) & (data.y < data.hi))
        assert np.all(np.abs(data.y - z) < np.diff(grid).max())


def test_simulated_sweep_is_a_valid_run_table_with_diverged_runs():
    runs, laws = simulate_sweep(known_design(), np.random.default_rng(4))
    clean = validate_runs(runs)
    assert len(clean) == 6 * 13 * 7
    assert set(laws) == {"lr", "batch_size"}
    assert clean.loc[clean["status"] == "diverged", "loss"].isna().all()


def test_tiny_sbc_records_ranks_in_range_and_coverage_means():
    sbc = sbc_best_run("quantized", known_design(), 4, SamplerConfig(draws=100, tune=150, chains=2), n_ranks=50)
    assert len(sbc) == 4 * 2 * 4                          # sims × optima × checked scalars
    assert sbc["rank"].between(0, 50).all()
    table = coverage_table(sbc).set_index("param")
    for prm, g in sbc.groupby("param"):
        assert table.loc[prm, "cover90"] == g["cover90"].mean() and table.loc[prm, "n"] == len(g)
    assert (table["cover90"] >= table["cover50"]).all()
