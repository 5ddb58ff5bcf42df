"""A backtest at a glance: held-out errors with their intervals per model, and the loss regret."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayes_scaling.evaluation.backtest import ranking
from bayes_scaling.report.figures.save import save_figure


def plot_backtest(table: pd.DataFrame, path: str | Path) -> Path:
    """Held-out log ratio (with its interval) per model and optimum, and the loss regret."""
    models = list(ranking(table)["model"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(models) * max(1, table["split"].nunique()) + 2.5))
    for ax, q in zip(axes[:2], ("lr", "batch_size")):
        sub = table[table["quantity"] == q]
        for y, m in enumerate(models):
            s = sub[sub["model"] == m]
            jitter = y + np.linspace(-0.3, 0.3, len(s)) if len(s) > 1 else np.full(len(s), y)
            ax.errorbar(s["log_ratio"], jitter,
                        xerr=[s["log_ratio"] - np.log(s["lo"] / s["measured"]), np.log(s["hi"] / s["measured"]) - s["log_ratio"]],
                        fmt="o", ms=3, lw=0.8, capsize=0)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(models)), models)
        ax.set_xlabel(f"log(predicted / measured) {'η*' if q == 'lr' else 'B*'}  "
                      f"(bars: {table['ci_prob'].iloc[0]:.0%} interval)")
    sub = table[table["quantity"] == "lr"]
    axes[2].boxplot([sub[sub["model"] == m]["regret"].to_numpy() for m in models], orientation="horizontal",
                    tick_labels=models)
    axes[2].set_xlabel("loss regret at the predicted (η, B) (nats)")
    fig.suptitle("backtest on held-out cells: " + ", ".join(sorted(table["split"].unique())))
    fig.tight_layout()
    return save_figure(fig, path)
