"""Where the default command's time goes: the seconds at each of its progress lines, this checkout
against another commit, run alternately on one warm compile cache.

    python benchmarks/bench_phases.py [--ref COMMIT] [--repeats 2] [-- FIT ARGS...]

Runs ``python -m bayes_scaling.fit`` (plus FIT ARGS) from this checkout and, with ``--ref``, from a git
worktree of COMMIT, one after the other, ``--repeats`` times, after one unreported warm-up run of
each (both share one PyTensor/numba compile cache, so every reported run is warm). Per run it
prints the seconds to the start of writing ("writing tables…": imports, data, fits, scores) and
from there to the exit (tables, posteriors, figures), and the total. The machine is shared: compare
runs of one invocation only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkouts import checkouts


def stamped(cwd: Path, extra: list[str], env: dict[str, str]) -> dict[str, float]:
    """One run of the fit command from ``cwd``: seconds to its 'writing' line and to its exit."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bayes_scaling.fit", "--out", f"{out}/fit", *extra], cwd=cwd,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        writing = float("nan")
        for line in proc.stderr:
            if "writing tables" in line:
                writing = time.perf_counter() - t0
        if proc.wait() != 0:
            raise SystemExit(f"the fit command failed in {cwd}")
        total = time.perf_counter() - t0
    return {"to writing": writing, "writing to exit": total - writing, "total": total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", help="a commit to time beside this checkout (from a temporary git worktree)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("extra", nargs="*", help="arguments for the fit command (after --)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, checkouts(args.ref) as trees:
        env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp}/cache")
        for tree in trees.values():
            stamped(tree, args.extra, env)                          # warm-up: fills the compile cache
        for k in range(args.repeats):
            for name, tree in trees.items():
                t = stamped(tree, args.extra, env)
                print(f"run {k + 1}  {name:<14} " + "  ".join(f"{key} {v:5.1f} s" for key, v in t.items()),
                      flush=True)

if __name__ == "__main__":
    main()
