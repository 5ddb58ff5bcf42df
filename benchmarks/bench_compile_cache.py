"""nutpie's compile against ours with the C callbacks cached on disk (``inference.numba_cache``).

    python benchmarks/bench_compile_cache.py [--kinds quantized,hierarchical] [--repeats 2] [--cold]

Each compile runs in a fresh process (the cache is for the next process: a rerun, a fold, a
worker), on blog-partII's lr cells, after one unmeasured compile of each kind by each route so
that PyTensor's own numba cache and ours hold the graph (ours then loads the stored model whole:
no graph rewriting, no compiling). The two routes alternate, and the
seconds of the compile call alone are printed with their medians and ratio. ``--cold``: each
compile instead starts from an empty PyTensor/numba cache (as after a fresh install), which
is what writing the callbacks to the cache must not slow down.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = """
import time
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.spec import Centers, ModelOptions
import nutpie
from bayes_scaling.inference import numba_cache
loaded = load_runs("blog-partII")
data = loaded.best()
q = data.quantity("lr")
model = specs.get({kind!r}).build(q, Centers.of(q), ModelOptions())
compile = numba_cache.compile_pymc_model if {ours} else nutpie.compile_pymc_model
t0 = time.perf_counter()
compile(model)
print(time.perf_counter() - t0)
"""


def seconds(kind: str, ours: bool, cold: bool = False) -> float:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}") if cold else None
        out = subprocess.run([sys.executable, "-c", CHILD.format(kind=kind, ours=ours)], capture_output=True,
                             text=True, check=True, env=env)
    return float(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default="quantized,hierarchical")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cold", action="store_true", help="every compile from an empty cache")
    args = p.parse_args()
    ours_label = "ours, cold (writes the cache)" if args.cold else "ours from the cache (record + callbacks)"
    for kind in args.kinds.split(","):
        if not args.cold:
            seconds(kind, True), seconds(kind, False)                    # both caches hold the graph
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for ours in (True, False):
                times[ours].append(seconds(kind, ours, args.cold))
        theirs, cached = np.median(times[False]), np.median(times[True])
        print(f"{kind:<14} nutpie's compile{', cold' if args.cold else ''} {theirs:5.2f} s   {ours_label} "
              f"{cached:5.2f} s   ratio {theirs / cached:.2f}x  (median of {args.repeats}, each in a fresh process)")


if __name__ == "__main__":
    main()
