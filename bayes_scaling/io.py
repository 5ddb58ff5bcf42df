"""Atomic writes: every artifact appears whole or not at all.

Each writer writes to a temporary file in the destination directory and then
``os.replace``-s it into place, so a crash, a Ctrl-C or a validation error never
leaves a half-written CSV, netCDF or JSON behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike[str], owned: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a hidden staging directory beside ``out``; publish it only if the block succeeds.

    A new ``out`` appears by one rename, complete or not at all. Into an existing ``out``,
    each top-level entry produced replaces its namesake (directories whole), the names in
    ``owned`` that this run did not produce are removed (no stale artifact survives), and
    every other file is left alone. On an exception the staging directory is deleted.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if not out.exists():
        os.replace(stage, out)
        return
    produced = {p.name for p in stage.iterdir()}
    for name in produced | set(owned):
        old = out / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
    for src in stage.iterdir():
        os.replace(src, out / src.name)
    shutil.rmtree(stage, ignore_errors=True)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (numpy scalars are converted)."""
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV (no index) atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_parquet(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a DataFrame as Parquet atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_datatree(path: str | os.PathLike[str], tree: xr.DataTree) -> None:
    """Write an ArviZ DataTree as netCDF (h5netcdf engine) atomically."""
    with atomic_path(path) as tmp:
        _netcdf_safe(tree).to_netcdf(tmp, engine="h5netcdf")


def _netcdf_safe(tree: xr.DataTree) -> xr.DataTree:
    """Drop object-dtype variables (e.g. nutpie's divergence messages) netCDF cannot store."""
    def clean(ds: xr.Dataset) -> xr.Dataset:
        bad = [name for name, var in ds.data_vars.items() if var.dtype == object]
        return ds.drop_vars(bad)

    return tree.map_over_datasets(clean)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
