"""Which law form do the data support for extrapolation, and how wide is its honest interval?

    python benchmarks/law_forms.py [--data blog-partII,steplaw-dense] [--draws 1000 --tune 1000 --chains 4]
                                   [--models ...] [--out results/law_forms]

For each table and optimum: every Bayesian best-run kind of the registry (and the OLS baseline)
fitted; compared by LOO and by leave-one-N-out, leave-largest-N-out and leave-largest-D-out
(``optimum.compare``: stacking weights, the recommendation); the width (hi/lo) of the 90 %
interval of the optimum at N = 4e9, D = 1e11 and at the compute-optimal (N*, D*) of a 1e21-FLOP
plan (the Chinchilla law's median N*, D* = C/6N*); the held-out cells' coverage (the interval
overlaps the observed grid cell / contains the observed grid value); and the prior-driven
parameters (``optimum.sensitivity``). Writes law_forms.csv and held_out.csv and prints one table
per (table, optimum). Runtime on the 2-core machine: ~15–25 min at the defaults.
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
from bayes_scaling.optimum.compare import compare
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.sensitivity import sensitivity
from bayes_scaling.optimum.spec import registry

TARGET = (4e9, 1e11)
BUDGET = 1e21


def plan_target(config: SamplerConfig) -> tuple[float, float]:
    """The median compute-optimal (N*, D*) of the Chinchilla law at BUDGET FLOPs (C = 6ND)."""
    fit = fit_law(ParametricLaw(load_chinchilla()), config)
    N, D = fit.law.optimal(fit.posterior, np.array([BUDGET]))
    return float(np.median(N)), float(np.median(D))


def study(data: str, models: list[str], config: SamplerConfig, targets: list[tuple[float, float]]):
    loaded = load_runs(data)
    best = loaded.best()
    fitter = Fitter(config)
    rows, held = [], []
    for q in QUANTITIES:
        qd = best.quantity(q)
        t0 = time.perf_counter()
        fits = {m: fitter.fit(m, qd) for m in ["ols"] + models}
        result = compare({m: fits[m] for m in models}, qd, fitter, cv=("lono", "largest-n", "largest-d"))
        print(f"  {data} / {q}: fitted and cross-validated {len(models)} kinds in {time.perf_counter() - t0:.0f} s",
              flush=True)
        table = result.table.set_index("model")
        preds = {m: f.predict([t[0] for t in targets], [t[1] for t in targets]) for m, f in fits.items()}
        if result.stacked is not None:
            preds["stacked"] = result.stacked.predict([t[0] for t in targets], [t[1] for t in targets])
        for m, pred in preds.items():
            row = {"data": data, "quantity": q, "model": m, "recommended": m == result.recommended,
                   "median_target": pred["median"].iloc[0], "width_target": pred["hi"].iloc[0] / pred["lo"].iloc[0],
                   "width_plan": pred["hi"].iloc[1] / pred["lo"].iloc[1]}
            if m in table.index:
                r = table.loc[m]
                row.update({k: r[k] for k in ("elpd_loo", "se", "weight", "lono_elpd", "lono_se", "lono_weight",
                                               "largest_n_elpd", "cover_largest_n", "hit_largest_n",
                                               "largest_d_elpd", "cover_largest_d", "hit_largest_d")})
                flagged = sensitivity(fits[m], [targets[0]])
                row["prior_driven"] = ", ".join(flagged.loc[flagged["prior_driven"], "variable"])
            if m == "stacked":
                row["weights"] = result.stacked.describe()
                cells = result.held_out
                for scheme, key in (("largest-n", "largest_n"), ("largest-d", "largest_d")):
                    sub = cells[cells["scheme"] == scheme]
                    w = sub["model"].map(result.stacked.weights).fillna(0.0)
                    row[f"cover_{key}"] = float((sub["overlaps"] * w).sum() / w.sum()) if w.sum() else np.nan
                    row[f"hit_{key}"] = float((sub["contains"] * w).sum() / w.sum()) if w.sum() else np.nan
            rows.append(row)
        held.append(result.held_out.assign(data=data))
        print(f"    recommended: {result.recommended} — {result.reason}", flush=True)
    return pd.DataFrame(rows), pd.concat(held, ignore_index=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="blog-partII,steplaw-dense")
    p.add_argument("--models", default=",".join(n for n, s in registry().items() if s.bayesian))
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/law_forms"))
    args = p.parse_args()
    config = SamplerConfig(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
    targets = [TARGET, plan_target(config)]
    print(f"targets: N={TARGET[0]:.3g}, D={TARGET[1]:.3g} and the {BUDGET:.0e}-FLOP plan's "
          f"N*={targets[1][0]:.3g}, D*={targets[1][1]:.3g}", flush=True)
    parts = [study(d, args.models.split(","), config, targets) for d in args.data.split(",")]
    table = pd.concat([t for t, _ in parts], ignore_index=True)
    write_csv(args.out / "law_forms.csv", table)
    write_csv(args.out / "held_out.csv", pd.concat([h for _, h in parts], ignore_index=True))
    cols = ["model", "recommended", "width_target", "width_plan", "lono_elpd", "lono_se", "lono_weight",
            "cover_largest_n", "hit_largest_n", "cover_largest_d", "hit_largest_d", "prior_driven"]
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.2f}".format):
        for (d, q), block in table.groupby(["data", "quantity"], sort=False):
            print(f"\n{d} / {q}")
            print(block[[c for c in cols if c in block]].to_string(index=False))
    print(f"\nwrote {args.out / 'law_forms.csv'}, {args.out / 'held_out.csv'}")


if __name__ == "__main__":
    main()
