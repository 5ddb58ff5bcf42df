"""Bundled datasets load, map onto the run-table schema and validate."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.inputs.datasets import DATASETS, STEPLAW_SEQ_LEN, load_runs
from bayes_scaling.errors import InputError
from bayes_scaling.inputs.runtable import REQUIRED


def _best(loaded):
    return loaded.best()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_bundled_dataset_loads_and_validates(name):
    loaded = load_runs(name)
    assert set(REQUIRED) <= set(loaded.runs.columns)
    assert loaded.runs["run_id"].is_unique
    assert loaded.runs["status"].eq("ok").all()
    for col in ("N", "D", "B", "lr"):
        assert (loaded.runs[col] > 0).all()
    assert np.isfinite(loaded.runs["loss"]).all()
    assert loaded.sha256 == hashlib.sha256(DATASETS[name].path.read_bytes()).hexdigest()
    best = _best(loaded).frame
    assert best["N"].nunique() >= 2
    assert (best["lr_lo"] < np.log(best["lr"])).all() and (np.log(best["lr"]) < best["lr_hi"]).all()
    assert (best["B_lo"] < np.log(best["B"])).all() and (np.log(best["B"]) < best["B_hi"]).all()


def test_blog_partII_shape_and_grids():
    loaded = load_runs("blog-partII")
    raw = pd.read_csv(DATASETS["blog-partII"].path)
    assert len(loaded.runs) == len(raw) == 30
    best = _best(loaded).frame
    assert len(best) == 30
    assert best["N"].nunique() == 5
    assert best["n_runs"].eq(1).all()
    # declared grids: every best value is snapped to an exact power of two
    assert set(best["lr"]) <= {2.0**e for e in range(-12, -7)}
    assert set(best["B"]) <= {2.0**e for e in range(16, 20)}
    assert loaded.lr_grid.values.tolist() == [2.0**e for e in range(-12, -7)]
    assert loaded.batch_grid.values.tolist() == [2.0**e for e in range(16, 20)]


def test_steplaw_dense_batch_in_tokens_and_17_cells():
    loaded = load_runs("steplaw-dense")
    raw = pd.read_csv(DATASETS["steplaw-dense"].path)
    assert len(loaded.runs) == len(raw)
    np.testing.assert_array_equal(loaded.runs["B"].to_numpy(), raw["bs"].to_numpy() * 2048)
    assert STEPLAW_SEQ_LEN == 2048
    # the run table's loss is the smoothed loss; the raw one is kept
    np.testing.assert_array_equal(loaded.runs["loss"].to_numpy(), raw["smooth loss"].to_numpy())
    np.testing.assert_array_equal(loaded.runs["loss_raw"].to_numpy(), raw["loss"].to_numpy())
    assert loaded.runs["run_id"].tolist() == raw["exp_name"].astype(str).tolist()
    assert loaded.lr_grid is None and loaded.batch_grid is None
    best = _best(loaded).frame
    assert len(best) == 17
    assert len(raw.groupby(["N", "D"])) == 17
    assert best["n_runs"].sum() == len(raw)
    # each best run is its cell's lowest smoothed loss
    for _, row in best.iterrows():
        cell = raw[(raw["N"] == row["N"]) & (raw["D"] == row["D"])]
        assert row["loss"] == cell["smooth loss"].min()


def test_steplaw_moe_uses_active_params():
    loaded = load_runs("steplaw-moe")
    raw = pd.read_csv(DATASETS["steplaw-moe"].path)
    np.testing.assert_array_equal(loaded.runs["N"].to_numpy(), raw["Na"].to_numpy())
    np.testing.assert_array_equal(loaded.runs["N_total"].to_numpy(), raw["N"].to_numpy())
    np.testing.assert_array_equal(loaded.runs["B"].to_numpy(), raw["bs"].to_numpy() * 2048)
    assert len(_best(loaded).frame) == len(raw.groupby(["Na", "D"]))


def test_load_a_csv_path_with_declared_grids(tmp_path):
    path = tmp_path / "mine.csv"
    pd.read_csv(DATASETS["blog-partII"].path).to_csv(path, index=False)
    with pytest.raises(InputError, match="--lr-grid"):
        _best(load_runs(str(path)))
    loaded = load_runs(str(path), lr_grid="2^-12:2^-8:1", batch_grid="2^16:2^19:1")
    assert loaded.source == str(path)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    pd.testing.assert_frame_equal(_best(loaded).frame, _best(load_runs("blog-partII")).frame)


def test_grid_override_of_a_bundled_dataset():
    loaded = load_runs("blog-partII", lr_grid="2^-13:2^-7:1")
    assert loaded.lr_grid.values.size == 7
    best = _best(loaded).frame
    assert np.isfinite(best["lr_lo"]).all()  # 2^-12 is now interior


def test_bad_grid_error_names_the_option():
    with pytest.raises(InputError) as info:
        load_runs("blog-partII", batch_grid="2^16:2^19")
    assert str(info.value).startswith("--batch-grid")


def test_unknown_dataset_name_lists_the_bundled_ones():
    with pytest.raises(InputError) as info:
        load_runs("blog-part2")
    msg = str(info.value)
    for name in DATASETS:
        assert name in msg
