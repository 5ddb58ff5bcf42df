"""This checkout and, with a ref, a temporary git worktree of another commit: what the benchmarks that
time two versions back to back run in (``bench_phases.py``, ``bench_cold_compile.py``)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def checkouts(ref: str | None) -> Iterator[dict[str, Path]]:
    """{"this checkout": ROOT[, ref: a worktree of ref]}; the worktree is removed on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this checkout": ROOT}
        if ref:
            subprocess.run(["git", "worktree", "add", "--detach", f"{tmp}/ref", ref], cwd=ROOT, check=True,
                           capture_output=True)
            trees[ref] = Path(f"{tmp}/ref")
        try:
            yield trees
        finally:
            if ref:
                subprocess.run(["git", "worktree", "remove", "--force", f"{tmp}/ref"], cwd=ROOT, capture_output=True)
