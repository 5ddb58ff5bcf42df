"""The compute plan against the budget: fans of every planned quantity with the published rules."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bayes_scaling.math.draws import quantiles
from bayes_scaling.planning.plan import QUANTITIES, Plan, references

#: Quantities drawn on a linear axis (their intervals span a few per cent, a log axis shows no tick).
LINEAR = ("tokens_per_param", "loss")


def plot_plan(plan: Plan, curve: Plan, ci_prob: float = 0.9) -> plt.Figure:
    """Six panels against C: fans of ``curve`` (a plan over a budget grid), the requested
    budgets of ``plan`` with their intervals, and the published rules dashed."""
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), layout="constrained")
    labels = {"N_opt": "N* (parameters)", "D_opt": "D* (tokens)", "tokens_per_param": "tokens per parameter",
              "loss": "expected loss", "lr": "learning rate", "batch_size": "batch size (tokens)"}
    for ax, q in zip(axes.ravel(), QUANTITIES):
        med, lo, hi = quantiles(np.stack([curve.draws[float(C)][q] for C in curve.budgets], axis=1), ci_prob)
        ax.plot(curve.budgets, med, color="C0", label="posterior median")
        ax.fill_between(curve.budgets, lo, hi, color="C0", alpha=0.25, lw=0, label=f"{ci_prob:.0%} interval")
        rows = plan.table[plan.table["quantity"] == q]
        ax.errorbar(rows["compute"], rows["median"], yerr=[rows["median"] - rows["lo"], rows["hi"] - rows["median"]],
                    fmt="o", color="k", ms=4, capsize=3, label="planned budgets")
        ref = [references(C).get(q) for C in curve.budgets]
        if ref[0] is not None:
            ax.plot(curve.budgets, [r[0] for r in ref], "k--", lw=1, label=ref[0][1])
        # a ratio that moves by a few per cent (tokens/param) and a loss read better on a linear axis
        ax.set(xscale="log", yscale="linear" if q in LINEAR else "log", xlabel="compute C (FLOPs)", ylabel=labels[q])
        ax.legend(fontsize=7)
    fig.suptitle("compute plan: loss-law and lr/batch posteriors propagated draw by draw")
    return fig
