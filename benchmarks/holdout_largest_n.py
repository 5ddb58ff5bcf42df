"""Honest extrapolation check: leave the largest N out, predict its optima, see where the truth falls.

    python benchmarks/holdout_largest_n.py [--data blog-partII] [--draws 1000] [--out holdout.csv]

Every model is fitted on the table without its largest model size and predicts the
optimum (lr and batch size) of each held-out cell. The "truth" of a cell is its
measured best grid value, i.e. a grid *cell* (lo, hi), open-ended at the grid's edges:
we report the predictive probability of that cell (p_cell: the out-of-sample score
the models should win on), the predictive quantile (PIT) of the grid value, whether
the 90 % interval contains the grid value, whether it overlaps the grid cell, the log
error of the median, and the interval's width (hi/lo). OLS intervals come from the row bootstrap of the fitted line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.spec import registry
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.inputs.runtable import QUANTITIES, BestRuns
from bayes_scaling.inference.config import SamplerConfig


def holdout_largest_n(best: BestRuns, config: SamplerConfig, ci_prob: float = 0.9) -> pd.DataFrame:
    frame = best.frame
    held = frame["N"] == frame["N"].max()
    train = BestRuns(frame=frame[~held].reset_index(drop=True), source=best.source)
    test = frame[held]
    fitter = Fitter(config)
    tail = (1 - ci_prob) / 2
    rows = []
    for q, col in QUANTITIES.items():
        data = train.quantity(q)
        for model in registry():
            fit = fitter.fit(model, data)
            draws = fit.log_draws(test["N"].to_numpy(), test["D"].to_numpy(), seed=config.seed)
            lo, med, hi = np.quantile(draws, [tail, 0.5, 1 - tail], axis=0)
            y = np.log(test[col].to_numpy())
            cell_lo, cell_hi = test[f"{col}_lo"].to_numpy(), test[f"{col}_hi"].to_numpy()
            for j in range(len(test)):
                rows.append({
                    "quantity": q, "model": model, "N": test["N"].iloc[j], "D": test["D"].iloc[j],
                    "measured": float(np.exp(y[j])), "median": float(np.exp(med[j])),
                    "lo": float(np.exp(lo[j])), "hi": float(np.exp(hi[j])),
                    "log_error": float(med[j] - y[j]), "pit": float(np.mean(draws[:, j] < y[j])),
                    "covers_value": bool(lo[j] <= y[j] <= hi[j]),
                    "overlaps_cell": bool(hi[j] >= cell_lo[j] and lo[j] <= cell_hi[j]),
                    "p_cell": float(np.mean((draws[:, j] > cell_lo[j]) & (draws[:, j] < cell_hi[j]))),
                    "width": float(np.exp(hi[j] - lo[j])),
                    "diverged": bool(fit.diagnostics is not None and fit.diagnostics.divergences > 0),
                })
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    return (table.groupby(["quantity", "model"], sort=False)
            .agg(cells=("N", "size"), mean_abs_log_error=("log_error", lambda e: np.abs(e).mean()),
                 covers_value=("covers_value", "mean"), overlaps_cell=("overlaps_cell", "mean"),
                 mean_p_cell=("p_cell", "mean"), mean_pit=("pit", "mean"), median_width=("width", "median"))
            .reset_index())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="blog-partII")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the per-cell table here (CSV)")
    args = p.parse_args()
    loaded = load_runs(args.data)
    best = loaded.best()
    table = holdout_largest_n(best, SamplerConfig(draws=args.draws, tune=args.tune, seed=args.seed, target_accept=0.99))
    pd.set_option("display.width", 200)
    print(f"{args.data}: held out N = {best.frame['N'].max():.3g} ({(best.frame['N'] == best.frame['N'].max()).sum()} cells)")
    print(table[["quantity", "model", "D", "measured", "median", "lo", "hi", "p_cell", "pit", "covers_value", "overlaps_cell"]]
          .to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print()
    print(summarize(table).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
