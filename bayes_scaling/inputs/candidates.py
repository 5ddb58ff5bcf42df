"""Candidate sweeps for the advisor, from a TOML or CSV file.

TOML — one ``[[candidate]]`` table per sweep::

    [[candidate]]
    N = 6e9                       # parameters
    D = 1.2e11                    # tokens per run
    lr = "2^-12:2^-8:0.5"         # optional: the lr grid (BASE^LO:BASE^HI:STEP or a list)
    batch_tokens = [262144, 524288]   # optional: the batch-size grid, in tokens
    runs = 42                     # optional: runs in the sweep (default: lr points × batch points)
    label = "6B at 20 tokens/param"   # optional

CSV — the same keys as columns (``N`` and ``D`` required; a grid cell holds a grid spec such as
``2^-12:2^-8:0.5`` or ``"1e-3,2e-3"``). A quantity without a grid gets the table's grid shape,
centred on the law's current forecast at that cell.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.grids import Grid

KEYS = ("N", "D", "lr", "batch_tokens", "runs", "label")


@dataclass(frozen=True)
class CandidateSpec:
    """One candidate as the user wrote it (grids and run count may be left to the defaults)."""

    N: float
    D: float
    lr: Grid | None
    batch_tokens: Grid | None
    runs: int | None
    label: str


def read_candidates(path: str | Path) -> list[CandidateSpec]:
    """Every candidate of a .toml or .csv file; one-line errors naming the file and entry."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--candidates {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            doc = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not valid TOML ({str(err).splitlines()[0]})") from None
        unknown = sorted(set(doc) - {"candidate"})
        entries = doc.get("candidate")
        if unknown or not isinstance(entries, list) or not entries:
            raise InputError(f"{path}: expected [[candidate]] tables (N, D, optional lr, batch_tokens, runs, label)")
        where = [f"{path}: candidate {i + 1}" for i in range(len(entries))]
    elif suffix == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
        frame.columns = [c.strip() for c in frame.columns]
        if not {"N", "D"} <= set(frame.columns):
            raise InputError(f"{path}: needs columns N and D (optional: {', '.join(KEYS[2:])}); has {', '.join(frame.columns)}")
        if frame.empty:
            raise InputError(f"{path}: no candidate rows")
        entries = [{k: v for k, v in row.items() if v.strip() != ""} for row in frame.to_dict("records")]
        where = [f"{path}:{i + 2}" for i in range(len(entries))]
    else:
        raise InputError(f"--candidates {path}: expected a .toml or .csv file")
    return [_candidate(entry, w) for entry, w in zip(entries, where)]


def _candidate(entry, where: str) -> CandidateSpec:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a table of N, D, ...")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    for key in ("N", "D"):
        if key not in entry:
            raise InputError(f"{where}: {key} is required")
    N, D = (_positive(entry[k], f"{where}: {k}") for k in ("N", "D"))
    grids = {}
    for key in ("lr", "batch_tokens"):
        value = entry.get(key)
        if value is None:
            grids[key] = None
            continue
        try:
            grids[key] = Grid.parse(value) if isinstance(value, str) else Grid([_positive(v, f"{where}: {key}") for v in value])
        except InputError as err:
            raise InputError(f"{where}: {key}: {err}") from None
        except TypeError:
            raise InputError(f"{where}: {key}: expected a grid spec or a list of numbers") from None
    runs = entry.get("runs")
    if runs is not None:
        runs_f = _positive(runs, f"{where}: runs")
        if runs_f != int(runs_f):
            raise InputError(f"{where}: runs: expected a whole number, got {runs!r}")
        runs = int(runs_f)
    label = str(entry.get("label") or f"N={N:.3g},D={D:.3g}")
    return CandidateSpec(N, D, grids["lr"], grids["batch_tokens"], runs, label)


def _positive(value, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected a positive number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(x) or x <= 0:
        raise InputError(f"{where}: expected a positive number, got {value!r}")
    return x
