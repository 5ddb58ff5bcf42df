"""Shared test fixtures: a notebook runner and the repository root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


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
