"""Shared test fixtures: a notebook runner and the repository root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def loud_progress():
    """Each test starts with progress on: a command run in-process with ``--quiet`` sets a global
    that would otherwise silence the progress a later test in the same worker checks."""
    from bayes_scaling import progress

    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def execute_notebook(path: Path, *, timeout: int = 900, env: dict[str, str] | None = None) -> None:
    """Execute a notebook top to bottom in its own directory; any cell error fails the test.

    ``env`` entries are exported to the kernel (e.g. a SMALL=1 switch that shrinks a
    notebook's sweep or draws for CI); the executed notebook is not written back.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: What every command's manifest.json records (the one command contract).
MANIFEST_KEYS = {"command", "data", "seed", "sampler", "diagnostics", "wall_time_s", "versions", "files"}


def assert_manifest(out: Path, command: str) -> dict:
    """The run's manifest holds the contract's keys, names the files really written, and every data
    source it used has a sha256."""
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert MANIFEST_KEYS <= set(manifest), MANIFEST_KEYS - set(manifest)
    assert manifest["command"].startswith(f"python -m bayes_scaling.{command}")
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert sorted(manifest["files"]) == written
    sources = [manifest["data"]] if "sha256" in manifest["data"] else list(manifest["data"].values())
    assert all(len(s["sha256"]) == 64 for s in sources)
    assert {"pymc", "arviz", "numpy", "python"} <= set(manifest["versions"])
    return manifest
