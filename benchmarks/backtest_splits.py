"""Per split and optimum, what a backtest's held-out cells say of one kind: coverage, bias, width, regret.

    python -m bayes_scaling.backtest --data steplaw-dense --models gp --law-form curved --out DIR
    python benchmarks/backtest_splits.py DIR [DIR ...] [--model gp] [--run-windows 0.03,0.1]

Reads each DIR/backtest.csv (written by the backtest command) and prints, for ``--model``'s rows
(default gp: the best grid run), per split (largest-n, largest-d, each-n) and optimum: the share of
held-out cells inside the interval, the mean log₂(predicted / measured best run) with its standard error
over the cells (``bias_se``: sd/√n; a cell held out in two splits counts twice, so read it as rough), the
median natural-log width and the mean loss regret (nats), and the same over all splits. Where the ranking of the backtest
command says *whether* a kind covers, this says *where* it does not.

With ``--run-windows``, for a kind that predicts run losses (``surface``) it also reads DIR/run_losses.csv
and scores the held-out runs within each window (nats above their cell's best loss; the backtest
command scores those within ``RUN_SCORE_WINDOW``), per split: R² of the predicted median (pooled, and
within cells), the 90 % coverage and the median width — so that what the bowl says *inside* the window
it was fitted to (``surface.data.WINDOW``) is told from its extrapolation beyond it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def by_split(table: pd.DataFrame, model: str) -> pd.DataFrame:
    rows = table[table["model"] == model]
    if rows.empty:
        raise SystemExit(f"no rows of model {model!r} (it has: {', '.join(sorted(table['model'].unique()))})")

    def summary(g: pd.DataFrame) -> pd.Series:
        log2 = g["log_ratio"] / np.log(2)
        return pd.Series({"cells": len(g), "cover": g["covered"].mean(), "bias_log2": log2.mean(),
                          "bias_se": log2.std(ddof=1) / np.sqrt(len(g)) if len(g) > 1 else np.nan,
                          "median_width": g["width_log"].median(), "regret": g["regret"].mean()})

    split = rows.groupby(["split", "quantity"]).apply(summary, include_groups=False)
    every = rows.groupby("quantity").apply(summary, include_groups=False)
    every.index = pd.MultiIndex.from_product([["all"], every.index], names=["split", "quantity"])
    return pd.concat([split, every])


def runs_by_window(runs: pd.DataFrame, model: str, windows: list[float]) -> pd.DataFrame:
    """Run-loss scores (``evaluation.backtest.run_scores``) per score window and split, for ``model``."""
    from bayes_scaling.evaluation.backtest import run_scores

    rows = runs[runs["model"] == model]
    out = []
    for w in windows:
        kept = rows.assign(scored=rows["above_best"] <= w)
        for split, g in [("all", kept), *kept.groupby("split")]:
            if not g["scored"].any():
                continue
            score = run_scores(g).drop(columns="model").iloc[0]
            out.append({"window": w, "split": split, **score.to_dict()})
    return pd.DataFrame(out).set_index(["window", "split"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", type=Path, help="output directories of the backtest command")
    p.add_argument("--model", default="gp", help="the kind's rows to read (default gp, its best grid run)")
    p.add_argument("--run-windows", type=lambda v: [float(x) for x in v.split(",")], default=None,
                   help="score the held-out run losses (run_losses.csv) within each of these nats of the best")
    args = p.parse_args()
    for d in args.dirs:
        form = json.loads((d / "manifest.json").read_text()).get("law_form", "straight")
        print(f"\n{d} ({args.model}, law form {form}):")
        print(by_split(pd.read_csv(d / "backtest.csv"), args.model).to_string(float_format=lambda x: f"{x:.3f}"))
        if args.run_windows:
            print(f"held-out run losses ({args.model}), by score window (nats above the cell's best) and split:")
            table = runs_by_window(pd.read_csv(d / "run_losses.csv"), args.model, args.run_windows)
            print(table.to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
