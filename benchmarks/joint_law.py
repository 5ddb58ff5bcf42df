"""Are η* and B* coupled across cells, and what does drawing them jointly change in a plan?

    python benchmarks/joint_law.py [--data blog-partII,steplaw-dense] [--budget 1e21]
                                   [--draws 1000 --tune 1000 --chains 4] [--out results/joint_law]

For each table: the ``joint`` kind fitted (both optima's laws with LKJ-correlated cell scatter; its
ρ with a 90 % interval, and its diagnostics) and ``quantized`` fitted to each optimum alone. Then
a compute plan at ``--budget`` FLOPs (Chinchilla loss law, C = 6ND) with each: the 90 % interval
widths (hi/lo) of the planned lr and batch size, the correlation of their planned draws, and the
width of the lr *given* the batch size (the interval of the lr's residual about its linear
regression on log B over the draws): what a user who has fixed the batch learns about the lr.
For independently drawn optima the last equals the lr's own width. Writes joint_law.csv.
Runtime on the 2-core machine: ~3–5 min at the defaults.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.inputs.loss_tables import load_chinchilla
from bayes_scaling.inputs.runtable import QUANTITIES
from bayes_scaling.io import write_csv
from bayes_scaling.laws.base import fit_law
from bayes_scaling.laws.chinchilla import ParametricLaw
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.planning.plan import make_plan

CI = 0.9


def width(log_x: np.ndarray) -> float:
    lo, hi = np.quantile(log_x, [(1 - CI) / 2, (1 + CI) / 2])
    return float(np.exp(hi - lo))


def plan_row(data: str, kind: str, plan, budget: float, fit) -> dict:
    d = plan.draws[budget]
    log_lr, log_b = np.log(d["lr"]), np.log(d["batch_size"])
    slope = np.cov(log_lr, log_b)[0, 1] / log_b.var()
    row = {"data": data, "kind": kind, "budget": budget, "lr_width": width(log_lr), "batch_width": width(log_b),
           "corr_planned": float(np.corrcoef(log_lr, log_b)[0, 1]),
           "lr_width_given_batch": width(log_lr - slope * (log_b - log_b.mean())),
           "max_rhat": fit.diagnostics.max_rhat, "divergences": fit.diagnostics.divergences,
           "wall_s": fit.wall_s}
    if fit.spec.couples:
        rho = stacked(fit.posterior, "rho")
        row.update(rho_median=float(np.median(rho)), rho_lo=float(np.quantile(rho, 0.05)),
                   rho_hi=float(np.quantile(rho, 0.95)))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="blog-partII,steplaw-dense")
    p.add_argument("--budget", type=float, default=1e21)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("results/joint_law"))
    args = p.parse_args(argv)
    config = SamplerConfig(draws=args.draws, tune=args.tune, chains=args.chains, seed=1)
    loss_fit = fit_law(ParametricLaw(load_chinchilla()), config, log_likelihood=False)
    rows = []
    for data in args.data.split(","):
        loaded = load_runs(data)
        best = loaded.best()
        fitter = Fitter(config)
        t0 = time.perf_counter()
        joint = fitter.fit("joint", best.quantity("lr"))
        alone = {q: fitter.fit("quantized", best.quantity(q)) for q in QUANTITIES}
        print(f"  {data}: fitted joint and quantized ×2 in {time.perf_counter() - t0:.0f} s", flush=True)
        for kind, fits in (("joint", {"lr": joint, "batch_size": joint}), ("quantized", alone)):
            plan = make_plan([args.budget], loss_fit, fits, seed=0)
            rows.append(plan_row(data, kind, plan, args.budget, fits["lr"]))
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "joint_law.csv", table)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
