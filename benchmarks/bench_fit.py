"""Wall time of each model, as a ratio to the OLS bootstrap, and of the default command.

    python benchmarks/bench_fit.py [--datasets blog-partII,steplaw-dense] [--samplers nutpie,pymc] [--no-cli]

Part 1 fits every model to both optima of each dataset's best runs with each sampler
(4 chains x 1000 draws; each kind's own tuning steps, 1000 or, hierarchical, 500) in one process and reports seconds and the ratio to
the OLS 10,000-resample bootstrap timed in the same run. "first" includes compiling the
model (nutpie: numba; PyMC: C); "second" is the other optimum, which reuses it.
Part 2 times the default command ``python -m bayes_scaling.fit`` end to end as a user
runs it: cold (empty PyTensor/numba compile cache, as after a fresh install) and warm
(cache filled by the cold run); then warm without plots, without exact LOO refits, and
``--models ols`` (imports, data, OLS bootstrap: the floor every run pays), and a rerun with
``--cache`` whose fits are stored (with and without plots), as ratios to that floor; with ``--plan``, ``plan --compute 1e21`` cold (its own empty cache) and warm. Timings on a shared 2-core machine are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import pandas as pd

from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.optimum.spec import registry
from bayes_scaling.inference.config import SamplerConfig


def time_models(dataset: str, sampler: str) -> list[dict]:
    loaded = load_runs(dataset)
    best = loaded.best()
    fitter = Fitter(SamplerConfig(sampler=sampler, target_accept=0.99))
    rows = []
    t0 = time.perf_counter()
    for q in ("lr", "batch_size"):
        fitter.fit("ols", best.quantity(q))
    ols_s = (time.perf_counter() - t0) / 2
    rows.append({"dataset": dataset, "sampler": "-", "model": "ols", "first_s": ols_s, "second_s": ols_s,
                 "divergences": 0, "max_rhat": float("nan")})
    for model in [name for name, spec in registry().items() if spec.bayesian]:
        times, div, rhat = [], 0, 0.0
        for q in ("lr", "batch_size"):
            fit = fitter.fit(model, best.quantity(q))
            times.append(fit.wall_s)
            div += fit.diagnostics.divergences
            rhat = max(rhat, fit.diagnostics.max_rhat)
        rows.append({"dataset": dataset, "sampler": sampler, "model": model, "first_s": times[0],
                     "second_s": times[1], "divergences": div, "max_rhat": rhat})
    for r in rows:
        r["first_x_ols"] = r["first_s"] / ols_s
        r["second_x_ols"] = r["second_s"] / ols_s
    return rows


def time_cli(extra: list[str], env: dict[str, str], command: str = "fit") -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"bayes_scaling.{command}", "--out", f"{out}/{command}", *extra],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="blog-partII,steplaw-dense")
    p.add_argument("--samplers", default="nutpie,pymc")
    p.add_argument("--no-cli", dest="cli", action="store_false", help="skip part 2")
    p.add_argument("--cli-only", action="store_true", help="skip part 1")
    p.add_argument("--plan", action="store_true", help="also time `plan --compute 1e21`, cold and warm")
    args = p.parse_args()
    pd.set_option("display.width", 160)
    if not args.cli_only:
        rows = [r for d in args.datasets.split(",") for s in args.samplers.split(",") for r in time_models(d, s)]
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if args.cli:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")   # holds the numba cache too
            runs = {"cold": time_cli([], env), "warm": time_cli([], env),
                    "warm, --no-plots": time_cli(["--no-plots"], env),
                    "warm, --max-refits 0 (PSIS only)": time_cli(["--max-refits", "0"], env),
                    "warm, --models ols --no-plots (floor)": time_cli(["--models", "ols", "--no-plots"], env)}
            store = os.path.join(cache, "fits")                  # the opt-in store of finished fits
            time_cli(["--cache", store], env)
            runs["rerun with --cache (its fits stored)"] = time_cli(["--cache", store], env)
            runs["rerun with --cache, --no-plots"] = time_cli(["--cache", store, "--no-plots"], env)
        if args.plan:
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")
                runs["plan --compute 1e21, cold"] = time_cli(["--compute", "1e21"], env, "plan")
                runs["plan --compute 1e21, warm"] = time_cli(["--compute", "1e21"], env, "plan")
        floor = runs["warm, --models ols --no-plots (floor)"]
        print("\ndefault command (blog-partII, 4 models x 2 optima, LOO and cross-validation refits, plots):")
        goals = {"cold": "   goal 20 s", "warm": "   goal 8 s", "plan --compute 1e21, cold": "   goal 30 s"}
        for name, sec in runs.items():
            print(f"  {name:<40} {sec:6.1f} s  {sec / floor:5.1f}x floor{goals.get(name, '')}")

if __name__ == "__main__":
    main()
