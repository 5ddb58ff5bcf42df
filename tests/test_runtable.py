"""The run table: reading, validation, and the best run per (N, D) with its grid cell."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.inputs.runtable import best_runs, read_table, validate_runs

LN2 = math.log(2.0)
LR_EXP = [-12, -11, -10, -9, -8]  # lr = 2^e
B_EXP = [16, 17, 18, 19]  # B = 2^e tokens

# Optimum (lr exponent, B exponent) of each (N, D) cell's loss bowl. Cell (2e8, 4e9)
# has its optimum at the lowest lr: an edge cell.
OPTIMA = {
    (1e8, 1e9): (-9, 17),
    (1e8, 4e9): (-10, 18),
    (2e8, 1e9): (-10, 17),
    (2e8, 4e9): (-12, 19),
}


def bowl(n, d, lr_e, b_e):
    lr_opt, b_opt = OPTIMA[(n, d)]
    return 3.0 - 0.1 * math.log10(n) + 0.3 * (lr_e - lr_opt) ** 2 + 0.2 * (b_e - b_opt) ** 2


def full_sweep() -> pd.DataFrame:
    rows = []
    for (n, d) in OPTIMA:
        for lr_e in LR_EXP:
            for b_e in B_EXP:
                rows.append({"run_id": f"r{len(rows)}", "N": n, "D": d, "B": 2.0**b_e, "lr": 2.0**lr_e,
                             "loss": bowl(n, d, lr_e, b_e), "seed": 0})
    return pd.DataFrame(rows)


def cell_row(best: pd.DataFrame, n: float, d: float) -> pd.Series:
    row = best[(best["N"] == n) & (best["D"] == d)]
    assert len(row) == 1
    return row.iloc[0]


# ---------------------------------------------------------------- full sweeps


def test_full_sweep_best_run_is_argmin_with_midpoint_bounds():
    runs = validate_runs(full_sweep(), source="sweep.csv")
    best = best_runs(runs, source="sweep.csv").frame
    assert len(best) == 4
    assert best["n_runs"].tolist() == [20, 20, 20, 20]
    raw = full_sweep()
    for (n, d), (lr_e, b_e) in OPTIMA.items():
        row = cell_row(best, n, d)
        cell = raw[(raw["N"] == n) & (raw["D"] == d)]
        assert row["run_id"] == cell.loc[cell["loss"].idxmin(), "run_id"]
        assert row["lr"] == 2.0**lr_e and row["B"] == 2.0**b_e
        # lr cell: half a grid step either side in log space, open at the grid's edges
        exp_lo = -math.inf if lr_e == LR_EXP[0] else (math.log(2.0 ** (lr_e - 1)) + math.log(2.0**lr_e)) / 2
        exp_hi = math.inf if lr_e == LR_EXP[-1] else (math.log(2.0**lr_e) + math.log(2.0 ** (lr_e + 1))) / 2
        assert row["lr_lo"] == pytest.approx(exp_lo, rel=1e-12)
        assert row["lr_hi"] == pytest.approx(exp_hi, rel=1e-12)
        b_lo = -math.inf if b_e == B_EXP[0] else (b_e - 0.5) * LN2
        b_hi = math.inf if b_e == B_EXP[-1] else (b_e + 0.5) * LN2
        assert row["B_lo"] == pytest.approx(b_lo, rel=1e-12)
        assert row["B_hi"] == pytest.approx(b_hi, rel=1e-12)


def test_best_at_grid_edge_gets_open_bound():
    best = best_runs(validate_runs(full_sweep())).frame
    row = cell_row(best, 2e8, 4e9)  # optimum at lr 2^-12 (lowest) and B 2^19 (highest)
    assert row["lr_lo"] == -math.inf
    assert row["lr_hi"] == pytest.approx(-11.5 * LN2)
    assert row["B_lo"] == pytest.approx(18.5 * LN2)
    assert row["B_hi"] == math.inf


def test_lr_bounds_come_from_the_lrs_swept_at_the_best_batch_size():
    # Cell (1e8, 1e9): best at lr 2^-9, B 2^17. Drop lr 2^-8 at B 2^17 only: the lr
    # swept at the best B now ends at 2^-9, so its cell is open above, although
    # 2^-8 was tried at other batch sizes.
    raw = full_sweep()
    drop = (raw["N"] == 1e8) & (raw["D"] == 1e9) & (raw["B"] == 2.0**17) & (raw["lr"] == 2.0**-8)
    assert drop.sum() == 1
    best = best_runs(validate_runs(raw[~drop])).frame
    row = cell_row(best, 1e8, 1e9)
    assert row["lr"] == 2.0**-9
    assert row["lr_lo"] == pytest.approx(-9.5 * LN2)
    assert row["lr_hi"] == math.inf
    assert row["n_runs"] == 19
    # the other cells are unaffected
    assert cell_row(best, 1e8, 4e9)["lr_hi"] == pytest.approx(-9.5 * LN2)


def test_diverged_runs_are_kept_for_the_grid_but_never_win():
    raw = full_sweep()
    raw["status"] = "ok"
    in_cell = (raw["N"] == 1e8) & (raw["D"] == 1e9)
    # lr 2^-8 diverged at the best B (loss NaN); also a 'diverged' run with the lowest
    # loss of the cell must not be picked.
    div_nan = in_cell & (raw["B"] == 2.0**17) & (raw["lr"] == 2.0**-8)
    div_low = in_cell & (raw["B"] == 2.0**16) & (raw["lr"] == 2.0**-12)
    raw.loc[div_nan, ["status", "loss"]] = ["diverged", np.nan]
    raw.loc[div_low, ["status", "loss"]] = ["diverged", 0.01]
    best = best_runs(validate_runs(raw)).frame
    row = cell_row(best, 1e8, 1e9)
    assert row["lr"] == 2.0**-9 and row["B"] == 2.0**17
    assert row["status"] == "ok" and np.isfinite(row["loss"])
    # the diverged 2^-8 still closes the lr cell above 2^-9
    assert row["lr_hi"] == pytest.approx(-8.5 * LN2)
    assert row["n_runs"] == 20
    # and removing the diverged run instead would have opened it: the grid really used it
    row2 = cell_row(best_runs(validate_runs(raw[~div_nan])).frame, 1e8, 1e9)
    assert row2["lr_hi"] == math.inf


def test_cell_with_only_diverged_runs_is_dropped():
    raw = full_sweep()
    raw["status"] = "ok"
    in_cell = (raw["N"] == 2e8) & (raw["D"] == 1e9)
    raw.loc[in_cell, "status"] = "diverged"
    raw.loc[in_cell, "loss"] = np.nan
    best = best_runs(validate_runs(raw)).frame
    assert len(best) == 3
    assert not ((best["N"] == 2e8) & (best["D"] == 1e9)).any()


def test_quantity_arrays_match_best_runs():
    br = best_runs(validate_runs(full_sweep()))
    q = br.quantity("batch_size")
    f = br.frame
    np.testing.assert_allclose(q.y, np.log(f["B"]))
    np.testing.assert_array_equal(q.lo, f["B_lo"])
    np.testing.assert_array_equal(q.n_index, [0 if n == 1e8 else 1 for n in f["N"]])
    assert q.n_levels.tolist() == [1e8, 2e8]
    assert br.quantity("lr").y.tolist() == np.log(f["lr"]).tolist()


# ------------------------------------------------------- best-runs-only tables


def best_only() -> pd.DataFrame:
    return pd.DataFrame({
        "run_id": ["a", "b", "c", "d"],
        "N": [1e8, 1e8, 2e8, 2e8],
        "D": [1e9, 4e9, 1e9, 4e9],
        "B": [65536, 131072, 262144, 524288],
        "lr": [0.003906, 0.001953, 0.0009766, 0.0002441],
        "loss": [3.3, 3.1, 3.2, 3.0],
    })


def test_best_runs_only_without_grids_asks_for_them():
    with pytest.raises(InputError) as info:
        best_runs(validate_runs(best_only()), source="best.csv")
    msg = str(info.value)
    assert msg.startswith("best.csv")
    assert "--lr-grid" in msg and "--batch-grid" in msg


def test_best_runs_only_with_one_grid_still_asks():
    with pytest.raises(InputError, match="--batch-grid"):
        best_runs(validate_runs(best_only()), lr_grid=Grid.parse("2^-12:2^-8:1"))


def test_declared_grids_snap_printed_values_to_exact_grid_points():
    br = best_runs(validate_runs(best_only()), lr_grid=Grid.parse("2^-12:2^-8:1"),
                   batch_grid=Grid.parse("2^16:2^19:1")).frame
    assert br["lr"].tolist() == [2.0**-8, 2.0**-9, 2.0**-10, 2.0**-12]
    assert br["B"].tolist() == [2.0**16, 2.0**17, 2.0**18, 2.0**19]
    first = br.iloc[0]  # lr 2^-8: top of the lr grid; B 2^16: bottom of the B grid
    assert first["lr_lo"] == pytest.approx(-8.5 * LN2) and first["lr_hi"] == math.inf
    assert first["B_lo"] == -math.inf and first["B_hi"] == pytest.approx(16.5 * LN2)
    second = br.iloc[1]
    assert second["lr_lo"] == pytest.approx(-9.5 * LN2) and second["lr_hi"] == pytest.approx(-8.5 * LN2)


def test_declared_grid_rejects_off_grid_value_with_line_and_column():
    table = best_only()
    table.loc[2, "lr"] = 0.003  # data row 3 → file line 4
    with pytest.raises(InputError) as info:
        best_runs(validate_runs(table), source="best.csv", lr_grid=Grid.parse("2^-12:2^-8:1"),
                  batch_grid=Grid.parse("2^16:2^19:1"))
    msg = str(info.value)
    assert msg.startswith("best.csv:line 4: column 'lr'")
    assert "--lr-grid" in msg


def test_declared_grid_overrides_swept_grid():
    # A declared lr grid wider than the sweep closes the lr cell the sweep left open.
    br = best_runs(validate_runs(full_sweep()), lr_grid=Grid.parse("2^-13:2^-7:1")).frame
    row = cell_row(br, 2e8, 4e9)
    assert row["lr_lo"] == pytest.approx(-12.5 * LN2)
    assert row["B_hi"] == math.inf  # B still from the sweep


# ---------------------------------------------------------------- validation


def runs_ok() -> pd.DataFrame:
    return best_only()


@pytest.mark.parametrize(
    ("col", "row", "value", "expect"),
    [
        ("N", 1, 0, "best.csv:line 3: column 'N': must be > 0"),
        ("D", 0, -1e9, "best.csv:line 2: column 'D': must be > 0"),
        ("B", 3, 0, "best.csv:line 5: column 'B': must be > 0"),
        ("lr", 2, -1e-3, "best.csv:line 4: column 'lr': must be > 0"),
        ("lr", 2, np.nan, "best.csv:line 4: column 'lr': missing or non-finite"),
        ("N", 0, np.inf, "best.csv:line 2: column 'N': missing or non-finite"),
        ("loss", 3, np.nan, "best.csv:line 5: column 'loss': missing or non-finite"),
        ("B", 1, "abc", "best.csv:line 3: column 'B': 'abc' is not a number"),
    ],
)
def test_validation_names_line_and_column(col, row, value, expect):
    table = runs_ok().astype({col: object})
    table.loc[row, col] = value
    with pytest.raises(InputError) as info:
        validate_runs(table, source="best.csv")
    assert str(info.value).startswith(expect)


def test_missing_column_lists_what_is_needed_and_found():
    table = runs_ok().rename(columns={"lr": "learning_rate"})
    with pytest.raises(InputError) as info:
        validate_runs(table, source="t.csv")
    msg = str(info.value)
    assert "missing column(s) 'lr'" in msg
    assert "learning_rate" in msg


def test_duplicate_run_id_names_both_lines():
    table = runs_ok()
    table.loc[3, "run_id"] = "b"
    with pytest.raises(InputError) as info:
        validate_runs(table, source="t.csv")
    assert str(info.value) == "t.csv:line 5: column 'run_id': duplicate 'b' (first at line 3)"


def test_single_model_size_is_rejected():
    table = runs_ok()
    table["N"] = 1e8
    with pytest.raises(InputError, match="only one model size"):
        validate_runs(table, source="t.csv")


def test_bad_status_and_status_normalisation():
    table = runs_ok()
    table["status"] = ["ok", " Diverged ", None, "ok"]
    table.loc[1, "loss"] = np.nan
    clean = validate_runs(table)
    assert clean["status"].tolist() == ["ok", "diverged", "ok", "ok"]
    table.loc[2, "status"] = "crashed"
    with pytest.raises(InputError, match="line 4: column 'status'"):
        validate_runs(table)


def test_validate_does_not_modify_input_and_keeps_extra_columns():
    table = runs_ok()
    table["seq_len"] = 2048
    before = table.copy()
    clean = validate_runs(table)
    pd.testing.assert_frame_equal(table, before)
    assert "seq_len" in clean.columns and clean["status"].eq("ok").all()


# ---------------------------------------------------------------- reading


def test_read_table_csv_and_parquet_agree(tmp_path):
    table = runs_ok()
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    a = read_table(tmp_path / "t.csv")
    b = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_read_table_utf8_bom_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeff".encode() + runs_ok().to_csv(index=False).encode())
    assert list(read_table(path).columns)[0] == "run_id"


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        ("empty.csv", b"", "empty file"),
        ("header.csv", b"run_id,N,D,B,lr,loss\n", "no rows"),
        ("garbage.csv", bytes(range(128, 256)) * 4, "unreadable"),
        ("garbage.parquet", b"PAR1 not really", "unreadable"),
    ],
)
def test_read_table_failures_are_one_input_error(tmp_path, name, content, expect):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_table(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and expect in msg and "\n" not in msg


def test_read_table_directory_and_missing_path(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        read_table(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "nope.csv")


def test_line_numbers_count_blank_lines_and_quoted_newlines(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text(
        "run_id,N,D,B,lr,loss\n"
        '"a\nwith newline",1e8,1e9,65536,0.003906,3.3\n'  # lines 2-3
        "\n"                                                # line 4, blank
        "   \n"                                             # line 5, whitespace only
        "b,1e8,4e9,131072,0.001953,3.1\n"                   # line 6
        "c,2e8,1e9,262144,0.0009766,3.2\n"                  # line 7
        "b,2e8,4e9,524288,0.0002441,3.0\n"                  # line 8: duplicate of line 6
    )
    frame = read_table(path)
    assert len(frame) == 4
    with pytest.raises(InputError) as info:
        validate_runs(frame, source="gaps.csv")
    assert str(info.value) == "gaps.csv:line 8: column 'run_id': duplicate 'b' (first at line 6)"


@pytest.mark.parametrize("text, message", [
    ("N,D,B\n1e8,1e9,65536\n", "missing column(s) 'lr'"),
    ("N,D,B,lr\n1e8,1e9,0,0.001\n", "line 2: column 'B': must be > 0"),
    ("N,D,B,lr\n1e8,,65536,0.001\n", "line 2: column 'D': missing or non-finite"),
    ("N,D,B,lr\n1e8,1e9,65536,nan\n", "column 'lr'"),
    ("N,D,B,lr\n1e8,1e9,65536,fast\n", "'fast' is not a number"),
])
def test_planned_runs_are_validated_like_a_run_table(tmp_path, text, message):
    from bayes_scaling.inputs.runtable import read_planned_runs

    path = tmp_path / "planned.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        read_planned_runs(path)


def test_planned_runs_keep_their_ids_and_values(tmp_path):
    from bayes_scaling.inputs.runtable import read_planned_runs

    path = tmp_path / "planned.csv"
    path.write_text("run_id,N,D,B,lr\n7,1e9,2e10,524288,0.0006\n")
    frame = read_planned_runs(path)
    assert frame["run_id"].tolist() == ["7"] and frame["B"].iloc[0] == 524288.0


def test_selection_jitter_is_estimated_from_full_sweeps_and_recovers_a_known_one():
    """Sweeps with run-to-run loss noise: the best run strays from the smooth optimum; the estimate
    matches that stray (net of the grid's rounding) measured by brute force on many replicates."""
    from bayes_scaling.inputs.grids import SELECTION_JITTER
    from bayes_scaling.inputs.selection import selection_jitter

    rng = np.random.default_rng(0)
    u = np.log(2.0 ** np.arange(-12, -5.9, 0.5))
    v = np.log(2.0 ** np.arange(15, 21.1, 0.5))
    U, V = np.meshgrid(u, v, indexing="ij")
    curvature, noise = 0.03, 0.006

    def sweep_cell(u0, v0):
        return 3.0 + curvature * ((U - u0) ** 2 + (V - v0) ** 2) + noise * rng.standard_normal(U.shape)

    strays = []
    for _ in range(4000):                                   # the truth, by brute force
        u0, v0 = np.log(2.0**-9) + rng.uniform(-0.2, 0.2), np.log(2.0**18) + rng.uniform(-0.2, 0.2)
        k = np.unravel_index(np.argmin(sweep_cell(u0, v0)), U.shape)
        strays.append(U[k] - u0)
    step = np.log(2.0) / 2
    truth = np.sqrt(max(np.var(strays) - step**2 / 12, SELECTION_JITTER**2))
    rows = []
    for n in (1e8, 2e8, 4e8, 8e8, 1.6e9):
        for d in (1e9, 2e9, 4e9, 8e9, 1.6e10, 3.2e10):
            loss = sweep_cell(np.log(2.0**-9) + rng.normal(0, 0.2), np.log(2.0**18) + rng.normal(0, 0.2))
            rows += [{"run_id": f"r{len(rows) + j}", "N": n, "D": d, "lr": np.exp(a), "B": np.exp(b), "loss": l}
                     for j, (a, b, l) in enumerate(zip(U.ravel(), V.ravel(), loss.ravel()))]
    best = best_runs(validate_runs(pd.DataFrame(rows)))
    assert best.sigma_sel is not None and truth > 2 * SELECTION_JITTER
    for q in ("lr", "batch_size"):
        assert best.sigma_sel[q] == pytest.approx(truth, rel=0.4)
        assert best.quantity(q).sigma_sel == best.sigma_sel[q]
    one = best_runs(validate_runs(pd.DataFrame({"run_id": ["a", "b", "c"], "N": [1e8, 2e8, 4e8], "D": [1e9, 2e9, 1e9],
                                                 "B": 65536.0, "lr": 2.0**-10, "loss": 3.0})),
                    lr_grid=Grid.parse("2^-12:2^-8:1"), batch_grid=Grid.parse("2^16:2^19:1"))
    assert one.sigma_sel is None and one.quantity("lr").sigma_sel == SELECTION_JITTER
