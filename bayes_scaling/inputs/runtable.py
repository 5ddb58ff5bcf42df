"""The run table — the one contract between the trainer and the fits.

One row per training run:

    run_id, N (non-embedding params), D (tokens), B (tokens per step), lr, loss
    [, status (ok|diverged), seed, seq_len, … any other column is kept]

Read from CSV or Parquet, validated (every problem is reported as one line naming
file, line and column), then reduced to the best run per (N, D) cell together with
the grid cell that run's learning rate and batch size sit in (see ``inputs.grids``).

Rules beyond the columns' own: one configuration (N, D, B, lr[, seed]) is one row — a
repeated one is an error that lists the first repeats; several seeds of one (N, D, B, lr)
are *averaged* (:func:`average_seeds`: the mean loss of the seeds that did not diverge; the
configuration diverged only if every seed did). B is tokens per step: beside a ``seq_len``
column a B below it or not a multiple of it is refused (it reads like sequences per step;
``--batch-unit sequences`` converts). Cells where every run diverged are dropped and named
(``BestRuns.dropped``); :func:`check_design` refuses cells that cannot tell the exponent of D
from the intercept or from N's (one token budget per model size) — the commands call it before
fitting a law.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.grids import SAME_SIZE_LOG_TOL, SELECTION_JITTER, Grid, cell_log_bounds, merge_close
from bayes_scaling.io import require_file

REQUIRED = ("run_id", "N", "D", "B", "lr", "loss")
POSITIVE = ("N", "D", "B", "lr")
STATUSES = ("ok", "diverged")

#: The two optimised quantities: name → run-table column.
QUANTITIES = {"lr": "lr", "batch_size": "B"}


#: Common names of the run table's columns in W&B and spreadsheet exports (→ ``--columns``).
ALIASES = {
    "lr": ("learning_rate", "lr_max", "peak_lr", "max_lr", "learningrate", "eta"),
    "B": ("batch_size", "batch_tokens", "batch", "bs", "global_batch_size", "tokens_per_step"),
    "D": ("tokens", "train_tokens", "n_tokens", "num_tokens", "dataset_size", "data"),
    "N": ("params", "n_params", "num_params", "parameters", "non_embedding_params", "model_size"),
    "loss": ("final_loss", "val_loss", "eval_loss", "validation_loss", "loss_final", "smooth_loss"),
    "run_id": ("id", "run", "name", "run_name", "exp_name"),
}


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet file, turning every read failure into one InputError line."""
    path = require_file(path)
    if path.suffix.lower() not in (".parquet", ".pq"):
        _check_text_format(path)
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


def _check_text_format(path: Path) -> None:
    """A CSV that is UTF-16 (Excel's "Unicode text"), or separated by semicolons or tabs (often with
    decimal commas: a European spreadsheet export), is named as such, not as "missing columns"."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 3 and head[1:4:2] == b"\x00\x00"):
        raise InputError(f"{path}: looks UTF-16 encoded (a spreadsheet's 'Unicode text' export); save it as a "
                         "UTF-8 CSV with comma separators")
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if first.count(sep) >= 2 and first.count(",") < first.count(sep):
            decimal = " and decimal commas" if sep == ";" and re.search(rb";-?\d+,\d", head) else ""
            raise InputError(f"{path}: looks separated by {name}{decimal} (a spreadsheet export?); the run table "
                             "is a comma-separated CSV with decimal points: re-save it as such, e.g. with pandas "
                             "read_csv(path, sep=..., decimal=...).to_csv(new_path, index=False)")


def apply_columns(frame: pd.DataFrame, mapping: dict[str, str], source: str) -> pd.DataFrame:
    """Rename the user's columns onto the run table's (``--columns lr=learning_rate,B=batch_size``)."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    for target, column in mapping.items():
        if column not in frame.columns:
            raise InputError(f"--columns {target}={column}: {source} has no column {column!r} "
                             f"(found: {', '.join(map(str, frame.columns))})")
    clash = [t for t, c in mapping.items() if t in frame.columns and t != c]
    frame = frame.drop(columns=clash).rename(columns={c: t for t, c in mapping.items()})
    return frame


def parse_columns(spec: str | None) -> dict[str, str]:
    """``"lr=learning_rate,B=batch_size"`` → {"lr": "learning_rate", "B": "batch_size"}."""
    if not spec:
        return {}
    mapping = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        target, sep, column = (x.strip() for x in item.partition("="))
        if not sep or not target or not column:
            raise InputError(f"--columns {item!r}: expected OURS=YOURS pairs such as lr=learning_rate,B=batch_size")
        if target not in REQUIRED + ("status", "seed", "seq_len"):
            raise InputError(f"--columns {item!r}: {target!r} is not a run-table column "
                             f"({', '.join(REQUIRED + ('status', 'seed', 'seq_len'))})")
        mapping[target] = column
    return mapping


def _suggest(missing: list[str], columns: list[str]) -> str:
    """"; did you mean --columns lr=learning_rate" where a close or common name is present."""
    import difflib

    pairs = []
    lower = {c.lower(): c for c in columns}
    for want in missing:
        hit = next((lower[a] for a in ALIASES.get(want, ()) if a in lower), None)
        hit = hit or next(iter(difflib.get_close_matches(want, columns, n=1, cutoff=0.75)), None)
        if hit is not None and hit not in REQUIRED:
            pairs.append(f"{want}={hit}")
    return f"; did you mean --columns {','.join(pairs)}?" if pairs else ""


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
    frame = _with_columns(frame, REQUIRED, "a run table", source)
    if "status" not in frame.columns:
        frame["status"] = "ok"
    frame["status"] = frame["status"].fillna("ok").astype(str).str.strip().str.lower()
    bad = ~frame["status"].isin(STATUSES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source}:{_line(i, frame)}: column 'status': {frame['status'].iloc[i]!r} is not one of {STATUSES}")
    _numbers(frame, ("loss",), source)
    _positive(frame, POSITIVE, source)
    diverged = frame["status"] == "diverged"
    loss = frame["loss"].to_numpy()
    bad = ~np.isfinite(loss) & ~diverged.to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{source}:{_line(i, frame)}: column 'loss': missing or non-finite ({loss[i]}) for a run whose status is not 'diverged'"
        )
    if "seq_len" in frame.columns:
        _check_batch_unit(frame, source)
    _check_repeats(frame, source)
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


def _with_columns(frame: pd.DataFrame, required: tuple[str, ...], what: str, source: str) -> pd.DataFrame:
    """A copy with stripped column names that has every ``required`` column (else one line, with a hint)."""
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"{what} needs {', '.join(required)} (found: {', '.join(map(str, frame.columns))})"
            + _suggest(missing, list(map(str, frame.columns)))
        )
    return frame


def _numbers(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    """Columns parsed as floats in place; text that is not a number is an error naming its line."""
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        not_number = values.isna() & ~frame[col].isna()
        if not_number.any():
            i = int(np.flatnonzero(not_number)[0])
            raise InputError(f"{source}:{_line(i, frame)}: column '{col}': {frame[col].iloc[i]!r} is not a number")
        frame[col] = values.astype(float)


def _positive(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    """Columns parsed as finite floats > 0 in place, each violation an error naming its line."""
    _numbers(frame, columns, source)
    for col in columns:
        v = frame[col].to_numpy()
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{source}:{_line(i, frame)}: column '{col}': missing or non-finite value ({v[i]})")
        bad = v <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{source}:{_line(i, frame)}: column '{col}': must be > 0, got {v[i]:g}")


def read_planned_runs(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A table of runs to predict the loss of (``--predict-runs``): columns N, D, B (tokens per
    step), lr [, run_id], each finite and > 0, validated and reported like a run table."""
    frame = _with_columns(read_table(path), POSITIVE, "a table of runs to predict", str(path))
    _positive(frame, POSITIVE, str(path))
    if "run_id" in frame.columns:
        frame["run_id"] = frame["run_id"].astype(str)
    return frame


def _check_batch_unit(frame: pd.DataFrame, source: str) -> None:
    """B is tokens per step: beside seq_len it is a multiple of it, never below it."""
    seq = pd.to_numeric(frame["seq_len"], errors="coerce").to_numpy(float)
    B = frame["B"].to_numpy(float)
    known = np.isfinite(seq) & (seq > 0)
    bad = known & ((B < seq) | (np.abs(B / np.where(known, seq, 1) - np.round(B / np.where(known, seq, 1))) > 1e-9))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{source}:{_line(i, frame)}: column 'B': {B[i]:g} is not a whole number of sequences of seq_len "
            f"{seq[i]:g}; B must be tokens per step — if B counts sequences, give --batch-unit sequences "
            f"(B × seq_len = {B[i] * seq[i]:,.0f} tokens)")


def _check_repeats(frame: pd.DataFrame, source: str) -> None:
    """One configuration, one row: a repeated (N, D, B, lr[, seed]) is an error naming the first repeats."""
    key = ["N", "D", "B", "lr"] + (["seed"] if "seed" in frame.columns else [])
    dup = frame.duplicated(subset=key, keep=False).to_numpy()
    if not dup.any():
        return
    first = int(np.flatnonzero(dup)[0])
    same = np.flatnonzero(dup & (frame[key] == frame[key].iloc[first]).all(axis=1).to_numpy())
    where = " and ".join(_line(i, frame) for i in same[:3])
    what = ", ".join(f"{k}={frame[k].iloc[first]:g}" if isinstance(frame[k].iloc[first], (int, float, np.number))
                     else f"{k}={frame[k].iloc[first]}" for k in key)
    losses = ", ".join(f"{v:g}" for v in frame["loss"].iloc[same[:3]])
    hint = "give each repeat its own seed (seeds are averaged)" if "seed" not in frame.columns else "remove one"
    raise InputError(f"{source}: {where}: the same run ({what}) appears {len(same)} times (losses {losses}); "
                     f"{hint}; {int(dup.sum())} rows repeat a configuration in all")


def average_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (N, D, B, lr): several seeds become their mean loss over the seeds
    that did not diverge (``n_seeds`` counts them all); the configuration diverged only if every
    seed did. A table with one seed per configuration is returned unchanged."""
    key = ["N", "D", "B", "lr"]
    if "seed" not in runs.columns or not runs.duplicated(subset=key).any():
        return runs
    ok = runs["status"] == "ok"
    grouped = runs.assign(_ok_loss=runs["loss"].where(ok), _ok=ok).groupby(key, sort=False)
    first = grouped.first().reset_index()
    first["loss"] = grouped["_ok_loss"].mean().to_numpy()
    first["status"] = np.where(grouped["_ok"].any().to_numpy(), "ok", "diverged")
    first["n_seeds"] = grouped.size().to_numpy()
    first["run_id"] = grouped["run_id"].agg("+".join).to_numpy()
    return first.drop(columns=["_ok_loss", "_ok"])


def check_design(cells: pd.DataFrame, source: str) -> None:
    """Refuse a set of (N, D) cells whose law log q* = a + b·log N + c·log D cannot be identified:
    c cannot be told from the intercept when every cell has one D, nor from b when D is a
    function of N (one token budget per model size, e.g. a tokens-per-parameter rule)."""
    logs = np.log(cells[["N", "D"]].drop_duplicates().to_numpy(float))
    x = logs - logs.mean(axis=0)
    if np.ptp(x[:, 1]) < 1e-9:
        raise InputError(f"{source}: every cell has D = {float(np.exp(logs[0, 1])):g}, so c_D (the exponent of D) "
                         "cannot be identified; sweep at least two token budgets D (per model size, ideally)")
    scale = np.sqrt((x**2).sum(axis=0))
    smallest = np.linalg.svd(x / scale, compute_uv=False)[-1] if len(x) >= 2 else 0.0
    if smallest < 1e-6:
        per_n = cells.groupby("N")["D"].nunique()
        raise InputError(f"{source}: D is a function of N ({len(per_n)} model sizes, one token budget each), so c_D "
                         "(the exponent of D) cannot be told from b_N (that of N); train at least one model size "
                         "at two or more token budgets D")


@dataclass(frozen=True)
class BestRuns:
    """The best run of each (N, D) cell and the grid cell of its lr and B.

    ``frame`` has one row per cell: run_id, N, D, B, lr, loss, n_runs, and the
    natural-log censoring bounds lr_lo, lr_hi, B_lo, B_hi (±inf for edge cells).
    """

    frame: pd.DataFrame
    source: str
    #: cells left out because every run in them diverged: one dict (N, D, runs) each
    dropped: tuple[dict, ...] = ()
    #: selection jitter σ_sel per optimum, estimated from full sweeps (``inputs.selection``); None: the default
    sigma_sel: dict[str, float] | None = None

    def dropped_text(self) -> list[str]:
        """One line per dropped cell, and one per model size that lost every cell."""
        lines = [f"dropped cell N={d['N']:g}, D={d['D']:g}: all {d['runs']} run(s) diverged" for d in self.dropped]
        kept = set(self.frame["N"])
        for n in sorted({d["N"] for d in self.dropped} - kept):
            lines.append(f"dropped model size N={n:g}: every one of its cells diverged")
        return lines

    @property
    def n_levels(self) -> np.ndarray:
        """Sorted distinct model sizes."""
        return np.sort(self.frame["N"].unique())

    def quantity(self, name: str, *, partner: bool = True) -> QuantityData:
        """Arrays a model builder needs for one quantity ("lr" or "batch_size"), with the other
        quantity's cells as its ``partner`` (for the joint law of both optima)."""
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
            sigma_sel=(self.sigma_sel or {}).get(name, SELECTION_JITTER),
            partner=self.quantity(other_quantity(name), partner=False) if partner else None,
        )


def other_quantity(name: str) -> str:
    """The optimum that is not ``name`` ("lr" ↔ "batch_size")."""
    return next(q for q in QUANTITIES if q != name)


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
    #: selection jitter of the best values (log units): SELECTION_JITTER, or estimated from full sweeps
    sigma_sel: float = SELECTION_JITTER
    #: the other optimum's observations of the same cells, in the same order (None: not known)
    partner: QuantityData | None = None
    #: standard error (log units) of each y when y is an estimate, not a grid value (None: exact;
    #: the ``measured`` law of a run-level kind's per-cell estimates reads it)
    se: np.ndarray | None = None

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
            sigma_sel=self.sigma_sel,
            partner=self.partner.subset(keep) if self.partner is not None else None,
            se=self.se[keep] if self.se is not None else None,
        )


    def with_cells(self, log_N, log_D, y, lo, hi, cell: list[str]) -> QuantityData:
        """These observations plus new cells (a new size becomes a new N level; levels stay sorted)."""
        log_N = np.concatenate([self.log_N, np.atleast_1d(np.asarray(log_N, dtype=float))])
        log_levels = np.log(np.asarray(self.n_levels, dtype=float))
        fresh = [v for v in log_N if np.abs(log_levels - v).min(initial=np.inf) > SAME_SIZE_LOG_TOL]
        levels = np.exp(np.unique(np.concatenate([log_levels, np.unique(np.round(fresh, 9))])))
        log_levels = np.log(levels)
        return QuantityData(
            name=self.name,
            log_N=log_N,
            log_D=np.concatenate([self.log_D, np.atleast_1d(log_D)]),
            y=np.concatenate([self.y, np.atleast_1d(y)]),
            lo=np.concatenate([self.lo, np.atleast_1d(lo)]),
            hi=np.concatenate([self.hi, np.atleast_1d(hi)]),
            n_index=np.abs(log_N[:, None] - log_levels[None, :]).argmin(axis=1),
            n_levels=levels,
            cell=list(self.cell) + list(cell),
            sigma_sel=self.sigma_sel,
            partner=self._partner_unobserved(log_N[len(self.log_N):], log_D, cell),
            se=np.concatenate([self.se, np.zeros(len(cell))]) if self.se is not None else None,
        )

    def _partner_unobserved(self, log_N, log_D, cell: list[str]) -> QuantityData | None:
        """The partner with the new cells added as unobserved (an open cell (−∞, ∞) says nothing)."""
        if self.partner is None or not cell:
            return self.partner
        n = len(cell)
        return self.partner.with_cells(log_N, log_D, np.full(n, np.nan), np.full(n, -np.inf), np.full(n, np.inf), cell)


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
    runs = average_seeds(runs)
    ok = runs[runs["status"] == "ok"]
    rows, dropped = [], []
    for (n, d), cell in runs.groupby(["N", "D"], sort=True):
        cell_ok = ok.loc[ok.index.intersection(cell.index)]
        if cell_ok.empty:   # every run diverged: the cell says nothing about the optimum
            dropped.append({"N": float(n), "D": float(d), "runs": len(cell)})
            continue
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
    from bayes_scaling.inputs.selection import selection_jitter

    frame = frame.reset_index(drop=True)
    return BestRuns(frame=frame, source=source, dropped=tuple(dropped), sigma_sel=selection_jitter(runs, frame))


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
