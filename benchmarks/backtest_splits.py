"""Per split and optimum, what a backtest's held-out cells say of one kind: coverage, bias, width, regret.

    python -m bayes_scaling.backtest --data steplaw-dense --models gp --law-form curved --out DIR
    python benchmarks/backtest_splits.py DIR [DIR ...] [--model gp]

Reads each DIR/backtest.csv (written by the backtest command) and prints, for ``--model``'s rows
(default gp: the best grid run), per split (largest-n, largest-d, each-n) and optimum: the share of
held-out cells inside the interval, the mean log₂(predicted / measured best run), the median natural-log
width and the mean loss regret (nats), and the same over all splits. Where the ranking of the backtest
command says *whether* a kind covers, this says *where* it does not.
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
        return pd.Series({"cells": len(g), "cover": g["covered"].mean(), "bias_log2": g["log_ratio"].mean() / np.log(2),
                          "median_width": g["width_log"].median(), "regret": g["regret"].mean()})

    split = rows.groupby(["split", "quantity"]).apply(summary, include_groups=False)
    every = rows.groupby("quantity").apply(summary, include_groups=False)
    every.index = pd.MultiIndex.from_product([["all"], every.index], names=["split", "quantity"])
    return pd.concat([split, every])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", type=Path, help="output directories of the backtest command")
    p.add_argument("--model", default="gp", help="the kind's rows to read (default gp, its best grid run)")
    args = p.parse_args()
    for d in args.dirs:
        form = json.loads((d / "manifest.json").read_text()).get("law_form", "straight")
        print(f"\n{d} ({args.model}, law form {form}):")
        print(by_split(pd.read_csv(d / "backtest.csv"), args.model).to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
