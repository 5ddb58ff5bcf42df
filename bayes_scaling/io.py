"""Atomic writes: every artifact appears whole or not at all, readable by colleagues.

Each writer writes to a temporary file in the destination directory, fsyncs it and then
``os.replace``-s it into place, so a crash, a Ctrl-C or a validation error never leaves a
half-written CSV, netCDF or JSON behind. Temporary files and staging directories are
created private (``mkstemp``/``mkdtemp``) and get the permissions the process's umask
gives any new file (0644 / 0755 under umask 022) before they are published, so outputs
on a shared file system are as readable as a plain ``open(path, "w")`` would make them.

This module is light (no NumPy, pandas or xarray at import): the trainer's workers use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: Read size when hashing a file (the whole file is never held in memory).
HASH_CHUNK = 1 << 20


def umask() -> int:
    """The process's current umask (read without changing it for longer than a call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publishable(path: Path, *, directory: bool = False) -> None:
    """Give a private temp file (0600) or staging dir (0700) the mode umask gives new ones."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; fsync it and rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _publishable(tmp_path)
        _fsync(tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_out_dir(out: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Check that ``out`` can become an output directory *before* any work is done.

    An existing non-directory, a parent path through a file, or a place the process may not
    write in is an InputError naming ``flag``; nothing is created.
    """
    from bayes_scaling.errors import InputError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out}: exists and is not a directory")
    probe = out if out.exists() else out.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{flag} {out}: {probe} is a file, not a directory")
    try:
        tempfile.TemporaryDirectory(dir=probe).cleanup()
    except OSError as err:
        raise InputError(f"{flag} {out}: cannot write in {probe} ({err.strerror or type(err).__name__})") from None
    return out


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
        _publishable(stage, directory=True)  # mkdtemp made it 0700; what it holds got the umask already
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


def require_file(path: str | os.PathLike[str], what: str = "a CSV or Parquet file") -> Path:
    """``path`` as a Path if it is an existing file; else an InputError naming it (no heavy import needed)."""
    from bayes_scaling.errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected {what}")
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, read in chunks (a 200k-run table is never read whole for it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
