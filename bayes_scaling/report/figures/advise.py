"""The advisor's answer in two panels: each candidate's expected shrinkage against its cost, and
the expected interval width at every target as the greedy set grows (the chosen set marked)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_advice(table: pd.DataFrame, path: pd.DataFrame, ci_prob: float = 0.9) -> plt.Figure:
    """Left: mean shrinkage of each candidate alone vs its FLOPs (chosen ones filled, numbered by the
    order the greedy search added them). Right: expected interval (hi/lo ratio) at every law × target
    against FLOPs spent along the greedy path; the refit-checked end point as a star."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    alone = table.groupby("candidate", sort=False).agg(flops=("flops", "first"), shrinkage=("shrinkage", "mean"),
                                                      chosen=("chosen", "first"), order=("order", "first"))
    left.scatter(alone["flops"], alone["shrinkage"], facecolors=np.where(alone["chosen"], "C3", "none"),
                 edgecolors="C3", s=40, label="candidate (filled: chosen)")
    for r in alone[alone["chosen"]].itertuples():
        left.annotate(f"#{r.order}", (r.flops, r.shrinkage), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.axhline(0.0, color="k", lw=0.5)
    left.set(xscale="log", xlabel="cost of the sweep (FLOPs)", ylabel="expected shrinkage of the log width, alone",
             title="each candidate alone (mean over laws and targets)")
    left.legend(fontsize=8)
    ips = path[path["estimate"] == "importance sampling"]
    checked = path[path["estimate"] != "importance sampling"]
    for i, ((model, q, tn, td), rows) in enumerate(ips.groupby(["model", "quantity", "target_N", "target_D"], sort=False)):
        rows = rows.sort_values("step")
        x = np.maximum(rows["flops_spent"], rows["flops_spent"][rows["flops_spent"] > 0].min() / 3
                       if (rows["flops_spent"] > 0).any() else 1.0)
        right.plot(x, rows["width"], "o-", color=f"C{i}", ms=4, label=f"{q} at ({tn:.2g}, {td:.2g}) {model}")
        done = checked[(checked["model"] == model) & (checked["quantity"] == q) & (checked["target_N"] == tn)
                       & (checked["target_D"] == td)]
        if not done.empty:
            right.plot(x.iloc[-1], done["width"].iloc[0], "*", color=f"C{i}", ms=12)
    right.set(xscale="log", yscale="log", xlabel="FLOPs spent on the chosen sweeps (first point: none)",
              ylabel=f"expected {ci_prob:.0%} interval (hi/lo)", title="greedy path (★: checked by exact refits)")
    right.legend(fontsize=7)
    return fig
