"""What a model costs before and while it samples: its cold compile and one log-density + gradient.

    python benchmarks/bench_cold_compile.py [--models quantized,hierarchical] [--laws chinchilla]
        [--ref COMMIT] [--repeats 1]

Per model kind of the optima (on blog-partII's lr best runs) and per loss law (on its own bundled
table), each in a fresh process with an empty PyTensor/numba cache (as after a fresh install):
the seconds ``inference.numba_cache.compile_pymc_model`` takes to compile it (numba, both nutpie
callbacks), and then the best of 20 × 1000 calls of its compiled log-density + gradient (PyTensor's
numba function, microseconds per call) — what every leapfrog step pays. With ``--ref`` the same runs
from a git worktree of COMMIT, alternating with this checkout. The machine is shared: compare runs of
one invocation only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from checkouts import checkouts

CHILD = r"""
import sys, time, timeit
import numpy as np
import pytensor, pytensor.tensor as pt
import nutpie  # noqa: F401 (imported before timing, as the commands do)
from bayes_scaling.inference.numba_cache import compile_pymc_model
what, name = sys.argv[1], sys.argv[2]
if what == "model":
    from bayes_scaling.inputs.datasets import load_runs
    from bayes_scaling.optimum.spec import Centers, registry
    data = load_runs("blog-partII").best().quantity("lr")
    model = registry()[name].build(data, Centers.of(data))
else:
    from bayes_scaling.laws.base import registry
    model = registry()[name].from_data(registry()[name].default_data)[0].model()
t0 = time.perf_counter()
compile_pymc_model(model)
compile_s = time.perf_counter() - t0
logp = model.logp()
fn = pytensor.function(model.value_vars, [logp, *pt.grad(logp, model.value_vars)], mode="NUMBA", trust_input=True)
point = model.initial_point()
args = [np.asarray(point[v.name]) for v in model.value_vars]
args += [i.variable.get_value(borrow=True) for i in fn.maker.inputs if i.shared]
jit = fn.vm.jit_fn
jit(*args)
per_call = min(timeit.repeat(lambda: jit(*args), number=1000, repeat=20)) * 1000
print(f"{compile_s:.2f} {per_call:.2f}")
"""


def measure(tree: Path, what: str, name: str) -> tuple[float, float]:
    """(cold compile seconds, microseconds per log-density + gradient) in a fresh process and cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}", PYTHONPATH=str(tree))
        out = subprocess.run([sys.executable, "-c", CHILD, what, name], cwd=tree, env=env, check=True,
                             capture_output=True, text=True).stdout.split()
    return float(out[-2]), float(out[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="quantized,hierarchical", help="kinds of the optima (comma-separated)")
    p.add_argument("--laws", default="chinchilla", help="loss laws (comma-separated; none: '')")
    p.add_argument("--ref", help="a commit to time beside this checkout (from a temporary git worktree)")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    items = [("model", m) for m in args.models.split(",") if m] + [("law", law) for law in args.laws.split(",") if law]
    with checkouts(args.ref) as trees:
        print(f"{'item':<22}{'tree':<16}{'run':>4}{'cold compile s':>16}{'logp+grad us':>14}", flush=True)
        for what, name in items:
            for k in range(args.repeats):
                for label, tree in trees.items():
                    compile_s, per_call = measure(tree, what, name)
                    print(f"{what + ' ' + name:<22}{label:<16}{k + 1:>4}{compile_s:>16.1f}{per_call:>14.2f}",
                          flush=True)

if __name__ == "__main__":
    main()
