"""Does the surface fit of StepLaw diverge? Divergences, R-hat, ESS and σ_q per seed, two versions side by side.

    python benchmarks/surface_divergences.py [--seeds 0,1,2] [--ref COMMIT] [--data steplaw-dense]

Fits the full-surface model (4 × 1000 draws, the model's own target acceptance) to every run of
``--data`` once per seed, in a fresh process per fit, in this checkout and — with ``--ref`` — in a
git worktree of that commit, alternating. Prints one line per fit: wall seconds (compile included),
divergent transitions, max R-hat, min bulk ESS, and the 5 % / 50 % quantiles of each optimum's law
scatter σ_q and its smallest draw (where a funnel's neck shows: at stop 26, in the two seeds examined
by hand, every divergence of the Gamma-prior version sat at σ_B ≈ 0.004).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from checkouts import checkouts

FIT = """
import json, sys, time
import numpy as np
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.surface.fit import fit_surface
seed, data = int(sys.argv[1]), sys.argv[2]
runs = load_runs(data).runs
t0 = time.perf_counter()
sf = fit_surface(runs, SamplerConfig(seed=seed), source=data)
wall = time.perf_counter() - t0
d = sf.diagnostics
sigma = sf.posterior["sigma"].transpose("chain", "draw", "quantity").values.reshape(-1, 2)
print(json.dumps({"wall_s": wall, "divergences": int(d.divergences), "max_rhat": float(d.max_rhat),
                  "min_ess_bulk": float(d.min_ess_bulk), "sigma_q05": np.quantile(sigma, 0.05, axis=0).tolist(),
                  "sigma_q50": np.median(sigma, axis=0).tolist(), "sigma_min": sigma.min(axis=0).tolist()}))
"""


def fit(tree, seed: int, data: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", FIT, str(seed), data], cwd=tree, env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[0, 1, 2])
    p.add_argument("--ref", default=None, help="a commit to fit beside this checkout (a git worktree)")
    p.add_argument("--data", default="steplaw-dense")
    args = p.parse_args()
    with checkouts(args.ref) as trees:
        for seed in args.seeds:
            for name, tree in trees.items():
                r = fit(tree, seed, args.data)
                sig = " ".join(f"{q} {a:.3f}/{b:.3f}/{c:.3f}" for q, a, b, c in
                               zip(("lr", "B"), r["sigma_min"], r["sigma_q05"], r["sigma_q50"]))
                print(f"seed {seed}  {name:<14} {r['wall_s']:6.1f} s  divergences {r['divergences']:3d}  "
                      f"R-hat {r['max_rhat']:.3f}  ESS bulk {r['min_ess_bulk']:5.0f}  σ_q min/q05/q50: {sig}",
                      flush=True)


if __name__ == "__main__":
    main()
