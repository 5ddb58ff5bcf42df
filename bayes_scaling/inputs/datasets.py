"""Bundled real run tables, by name, mapped onto the run-table schema.

``load_runs("blog-partII")`` / ``load_runs("path/to/runs.csv")`` → (validated runs,
declared grids, description). Provenance of every file: ``data/PROVENANCE.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.io import file_sha256, require_file

if TYPE_CHECKING:  # pandas loads with the data, not with --help
    import pandas as pd

    from bayes_scaling.inputs.runtable import BestRuns

#: StepLaw counts batch size in sequences of this many tokens.
STEPLAW_SEQ_LEN = 2048


@dataclass(frozen=True)
class Dataset:
    """A bundled table: its file, how to map it onto the run table, its grids."""

    name: str
    filename: str
    description: str
    to_runs: Callable[[pd.DataFrame], pd.DataFrame]
    lr_grid: str | None = None
    batch_grid: str | None = None

    @property
    def path(self) -> Path:
        return Path(str(resources.files("bayes_scaling") / "data" / self.filename))


def _blog(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def _steplaw(frame: pd.DataFrame) -> pd.DataFrame:
    runs = frame.rename(columns={"loss": "loss_raw", "smooth loss": "loss", "exp_name": "run_id"})
    runs["B"] = runs["bs"] * STEPLAW_SEQ_LEN
    runs["seq_len"] = STEPLAW_SEQ_LEN
    return runs


def _steplaw_moe(frame: pd.DataFrame) -> pd.DataFrame:
    runs = _steplaw(frame).rename(columns={"N": "N_total"})
    runs["N"] = runs["Na"]  # active non-embedding params set the per-token compute
    return runs


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "blog-partII",
            "blog_partII_best_runs.csv",
            "30 best runs, one per (N, D), of a 1,260-run sweep (Lingle 2025, Part II)",
            _blog,
            lr_grid="2^-12:2^-8:1",
            batch_grid="2^16:2^19:1",
        ),
        Dataset(
            "steplaw-dense",
            "steplaw_dense_lr_bs_loss.csv",
            "1,911 dense runs, full lr x batch grids in 17 (N, D) cells (StepLaw, Li et al. 2025)",
            _steplaw,
        ),
        Dataset(
            "steplaw-moe",
            "steplaw_moe_lr_bs_loss.csv",
            "708 MoE runs, full lr x batch grids (StepLaw, Li et al. 2025); N = active non-embedding params",
            _steplaw_moe,
        ),
    )
}


@dataclass(frozen=True)
class LoadedRuns:
    """A validated run table with where it came from and its declared grids."""

    runs: pd.DataFrame
    source: str
    sha256: str
    lr_grid: Grid | None
    batch_grid: Grid | None
    description: str

    def best(self) -> BestRuns:
        """The best run per (N, D) with its grid cells: ``runtable.best_runs`` of these runs and grids."""
        from bayes_scaling.inputs.runtable import best_runs

        return best_runs(self.runs, source=self.source, lr_grid=self.lr_grid, batch_grid=self.batch_grid)


BATCH_UNITS = ("tokens", "sequences")


def load_runs(data: str, *, lr_grid: str | None = None, batch_grid: str | None = None, columns: str | None = None,
              batch_unit: str = "tokens", seq_len: int | None = None) -> LoadedRuns:
    """Load a bundled dataset by name, or a CSV/Parquet path, validated.

    Grids given here override a dataset's declared ones. ``columns`` maps the file's column names
    onto the run table's (``"lr=learning_rate,B=batch_size"``); ``batch_unit="sequences"`` reads B
    as sequences per step and converts it to tokens, B × seq_len (``seq_len``, else the table's
    ``seq_len`` column).
    """
    from bayes_scaling.inputs.runtable import parse_columns

    mapping = parse_columns(columns)
    if batch_unit not in BATCH_UNITS:
        raise InputError(f"--batch-unit {batch_unit!r}: choose one of {', '.join(BATCH_UNITS)}")
    if seq_len is not None and seq_len < 1:
        raise InputError(f"--seq-len {seq_len}: must be a positive number of tokens")
    if data in DATASETS:
        ds = DATASETS[data]
        path, to_runs, description = ds.path, ds.to_runs, ds.description
        lr_grid = lr_grid or ds.lr_grid
        batch_grid = batch_grid or ds.batch_grid
    else:
        path = Path(data)
        if not path.exists() and path.suffix == "":
            names = ", ".join(DATASETS)
            raise InputError(f"--data {data!r}: neither a bundled dataset ({names}) nor an existing file")
        to_runs, description = _blog, f"run table {path}"
        require_file(path)                          # before pandas loads: a typo answers at once
    grids = _parse_grid(lr_grid, "--lr-grid"), _parse_grid(batch_grid, "--batch-grid")
    from bayes_scaling.inputs.runtable import apply_columns, read_table, validate_runs

    source = str(path) if data not in DATASETS else data
    frame = to_runs(apply_columns(read_table(path), mapping, source))
    if batch_unit == "sequences":
        frame = _sequences_to_tokens(frame, seq_len, source)
    return LoadedRuns(
        runs=validate_runs(frame, source=source),
        source=source,
        sha256=file_sha256(path),
        lr_grid=grids[0],
        batch_grid=grids[1],
        description=description,
    )


def _sequences_to_tokens(frame: pd.DataFrame, seq_len: int | None, source: str) -> pd.DataFrame:
    """B (sequences per step) → B × seq_len tokens, with ``seq_len`` or the table's own column."""
    import pandas as pd

    if seq_len is None and "seq_len" not in frame.columns:
        raise InputError(f"--batch-unit sequences: {source} has no seq_len column; give --seq-len (tokens per sequence)")
    length = seq_len if seq_len is not None else pd.to_numeric(frame["seq_len"], errors="coerce")
    frame = frame.assign(B=pd.to_numeric(frame["B"], errors="coerce") * length)
    return frame.assign(seq_len=length) if seq_len is not None else frame


def _parse_grid(spec: str | None, flag: str) -> Grid | None:
    """Parse a declared grid, naming the option it came from in any error."""
    if not spec:
        return None
    try:
        return Grid.parse(spec)
    except InputError as err:
        raise InputError(f"{flag}: {err}") from None
