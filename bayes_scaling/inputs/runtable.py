"""The run table — the one contract between the trainer and the fits.

One row per training run:

    run_id, N (non-embedding params), D (tokens), B (tokens per step), lr, loss
    [, status (ok|diverged), seed, seq_len, … any other column is kept]

Read from CSV or Parquet, validated (every problem is reported as one line naming
file, line and column), then reduced to the best run per (N, D) cell together with
the grid cell that run's learning rate and batch size sit in (see ``inputs.grids``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.grids import Grid, cell_log_bounds, merge_close
from bayes_scaling.io import require_file

REQUIRED = ("run_id", "N", "D", "B", "lr", "loss")
POSITIVE = ("N", "D", "B", "lr")
STATUSES = ("ok", "diverged")

#: The two optimised quantities: name → run-table column.
QUANTITIES = {"lr": "lr", "batch_size": "B"}


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet file, turning every read failure into one InputError line."""
    path = require_file(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if frame.empty:
        raise InputError(f"{path}: no rows")
    if path.suffix.lower() not in (".parquet", ".pq"):
        lines = _csv_record_lines(path)
        if lines is not None and len(lines) == len(frame):
            frame.attrs["line_numbers"] = _LineNumbers(lines)  # blank lines / quoted newlines shift rows
    return frame


class _LineNumbers(tuple):
    """File line of each row, kept in ``DataFrame.attrs``; shared, not deep-copied, by every
    pandas operation (a plain list there makes each operation on a 2,000-row table ~15x slower)."""

    def __deepcopy__(self, memo: dict) -> _LineNumbers:
        return self


def _csv_record_lines(path: Path) -> list[int] | None:
    """File line on which each data record of a CSV starts (pandas skips blank lines)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            starts, prev = [], 0
            for record in reader:
                if record and not (len(record) == 1 and not record[0].strip()):
                    starts.append(prev + 1)
                prev = reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return starts[1:]


def validate_runs(frame: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """Check a run table and return a clean copy (status filled with "ok").

    Rules: the required columns exist; N, D, B, lr are finite and > 0; loss is finite
    unless status is "diverged"; status is ok|diverged; run_id is unique; at least
    two distinct N (a scaling law in N needs them).
    """
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"a run table needs {', '.join(REQUIRED)} (found: {', '.join(map(str, frame.columns))})"
        )
    if "status" not in frame.columns:
        frame["status"] = "ok"
    frame["status"] = frame["status"].fillna("ok").astype(str).str.strip().str.lower()
    bad = ~frame["status"].isin(STATUSES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source}:{_line(i, frame)}: column 'status': {frame['status'].iloc[i]!r} is not one of {STATUSES}")
    for col in POSITIVE + ("loss",):
        values = pd.to_numeric(frame[col], errors="coerce")
        raw_missing = frame[col].isna()
        not_number = values.isna() & ~raw_missing
        if not_number.any():
            i = int(np.flatnonzero(not_number)[0])
            raise InputError(f"{source}:{_line(i, frame)}: column '{col}': {frame[col].iloc[i]!r} is not a number")
        frame[col] = values.astype(float)
    diverged = frame["status"] == "diverged"
    for col in POSITIVE:
        v = frame[col].to_numpy()
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{source}:{_line(i, frame)}: column '{col}': missing or non-finite value ({v[i]})")
        bad = v <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{source}:{_line(i, frame)}: column '{col}': must be > 0, got {v[i]:g}")
    loss = frame["loss"].to_numpy()
    bad = ~np.isfinite(loss) & ~diverged.to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{source}:{_line(i, frame)}: column 'loss': missing or non-finite ({loss[i]}) for a run whose status is not 'diverged'"
        )
    run_id = frame["run_id"].astype(str)
    dup = run_id.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(run_id == run_id.iloc[i])[0])
        raise InputError(f"{source}:{_line(i, frame)}: column 'run_id': duplicate {run_id.iloc[i]!r} (first at {_line(first, frame)})")
    frame["run_id"] = run_id
    if frame["N"].nunique() < 2:
        raise InputError(f"{source}: column 'N': only one model size ({frame['N'].iloc[0]:g}); a scaling law needs at least two")
    return frame


@dataclass(frozen=True)
class BestRuns:
    """The best run of each (N, D) cell and the grid cell of its lr and B.

    ``frame`` has one row per cell: run_id, N, D, B, lr, loss, n_runs, and the
    natural-log censoring bounds lr_lo, lr_hi, B_lo, B_hi (±inf for edge cells).
    """

    frame: pd.DataFrame
    source: str

    @property
    def n_levels(self) -> np.ndarray:
        """Sorted distinct model sizes."""
        return np.sort(self.frame["N"].unique())

    def quantity(self, name: str) -> QuantityData:
        """Arrays a model builder needs for one quantity ("lr" or "batch_size")."""
        col = QUANTITIES[name]
        f = self.frame
        levels = self.n_levels
        return QuantityData(
            name=name,
            log_N=np.log(f["N"].to_numpy()),
            log_D=np.log(f["D"].to_numpy()),
            y=np.log(f[col].to_numpy()),
            lo=f[f"{col}_lo"].to_numpy(),
            hi=f[f"{col}_hi"].to_numpy(),
            n_index=np.searchsorted(levels, f["N"].to_numpy()),
            n_levels=levels,
            cell=[f"N={n:.3g},D={d:.3g}" for n, d in zip(f["N"], f["D"])],
        )


@dataclass(frozen=True)
class QuantityData:
    """Best-grid observations of one quantity, in natural log, ready for a builder."""

    name: str
    log_N: np.ndarray
    log_D: np.ndarray
    y: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_index: np.ndarray
    n_levels: np.ndarray
    cell: list[str]

    def subset(self, keep: np.ndarray) -> QuantityData:
        """The observations selected by a boolean mask (N levels are kept whole)."""
        keep = np.asarray(keep, dtype=bool)
        return QuantityData(
            name=self.name,
            log_N=self.log_N[keep],
            log_D=self.log_D[keep],
            y=self.y[keep],
            lo=self.lo[keep],
            hi=self.hi[keep],
            n_index=self.n_index[keep],
            n_levels=self.n_levels,
            cell=[c for c, k in zip(self.cell, keep) if k],
        )


def best_runs(
    runs: pd.DataFrame,
    *,
    source: str = "<table>",
    lr_grid: Grid | None = None,
    batch_grid: Grid | None = None,
) -> BestRuns:
    """Reduce a validated run table to the best run per (N, D) and its grid cells.

    A full sweep (several runs per cell) carries its own grid: the lr values tried
    at the best run's B (and the B values tried at its lr; the whole cell's values
    if that slice holds one point). A best-runs-only table (one run per cell) needs
    declared grids. A declared grid, when given, is used for every cell, every
    run's value must lie on it, and best values are snapped to the exact grid
    point (tables often print 2^-8 as 0.003906).
    """
    runs = runs.reset_index(drop=True)
    for grid, col, flag in ((lr_grid, "lr", "--lr-grid"), (batch_grid, "B", "--batch-grid")):
        if grid is None:
            continue
        off = np.array([grid.index_of(v) < 0 for v in runs[col]])
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise InputError(f"{source}:{_line(i, runs)}: column '{col}': {runs[col].iloc[i]:g} is not on the declared grid {grid} ({flag})")
    ok = runs[runs["status"] == "ok"]
    rows = []
    for (n, d), cell in runs.groupby(["N", "D"], sort=True):
        cell_ok = ok.loc[ok.index.intersection(cell.index)]
        if cell_ok.empty:
            continue  # every run diverged: the cell says nothing about the optimum
        best = cell_ok.loc[cell_ok["loss"].idxmin()]
        if len(cell) == 1 and (lr_grid is None or batch_grid is None):
            raise InputError(
                f"{source}: cell N={n:g}, D={d:g} has a single run, so its sweep grid is unknown; "
                "give --lr-grid and --batch-grid (e.g. --lr-grid 2^-12:2^-8:1)"
            )
        row = best.to_dict()
        row["n_runs"] = len(cell)
        for col, grid, other in (("lr", lr_grid, "B"), ("B", batch_grid, "lr")):
            if grid is not None:
                lo, hi = grid.log_bounds(best[col])
                row[col] = float(grid.values[grid.index_of(best[col])])  # exact grid value (0.003906 → 2^-8)
            else:
                lo, hi = _swept_bounds(cell, col, other, best)
            row[f"{col}_lo"], row[f"{col}_hi"] = lo, hi
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise InputError(f"{source}: no cell has a run with status 'ok'")
    if frame["N"].nunique() < 2:
        raise InputError(f"{source}: column 'N': runs with status 'ok' cover only one model size")
    return BestRuns(frame=frame.reset_index(drop=True), source=source)


def _swept_bounds(cell: pd.DataFrame, col: str, other: str, best: pd.Series) -> tuple[float, float]:
    """Log cell edges of ``best[col]`` on the grid swept in this (N, D) cell."""
    same_other = np.isclose(np.log(cell[other].to_numpy()), np.log(best[other]), atol=0.01)
    values = merge_close(cell.loc[same_other, col].to_numpy())
    if values.size < 2:
        values = merge_close(cell[col].to_numpy())
    log_values = np.log(values)
    k = int(np.argmin(np.abs(log_values - np.log(best[col]))))
    return cell_log_bounds(log_values, k)


def _line(i: int, frame: pd.DataFrame | None = None) -> str:
    """File line of data row i (0-based): as read by read_table, else a CSV with one header line."""
    lines = frame.attrs.get("line_numbers") if frame is not None else None
    if lines is not None and len(lines) == len(frame):
        return f"line {lines[i]}"
    return f"line {i + 2}"
