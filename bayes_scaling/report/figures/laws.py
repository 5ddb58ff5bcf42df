"""Plots of the loss laws: iso-FLOP curves with posterior bands, N*(C)/D*(C) fans,
tokens per parameter against the 20-tokens/param rule, Kaplan's limits, critical batch.

Every band is the equal-tailed ``ci_prob`` interval of the law's mean over posterior
draws; every line is the posterior median. :func:`save_law_plots` writes the figures a law
lists in its ``figures`` (``FIGURES`` maps each name to its drawing function).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bayes_scaling.inputs.loss_tables import assign_budgets
from bayes_scaling.laws.base import TOKENS_PER_PARAM_RULE, LawFit
from bayes_scaling.math.draws import quantiles
from bayes_scaling.report.figures.save import save_figure
from models.flops import six_n


def _budget_grid(fits: list[LawFit]) -> np.ndarray:
    lo = min(f.law.table["C"].min() if "C" in f.law.table else 1e18 for f in fits)
    return np.logspace(np.log10(lo), 25, 60)


def plot_isoflop_curves(fit: LawFit, ax: plt.Axes | None = None, ci_prob: float = 0.9) -> plt.Axes:
    """Loss against N per budget: data, posterior median curve and band, latent/implied minima."""
    ax = ax or plt.subplots(figsize=(6, 4.5), layout="constrained")[1]
    law = fit.law
    table = assign_budgets(law.table)
    budgets = law.isoflop_budgets()
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(budgets)))
    for budget, color in zip(budgets, colors):
        runs = table[np.isclose(table["budget"], budget)]
        grid = np.logspace(np.log10(runs["N"].min()) - 0.1, np.log10(runs["N"].max()) + 0.1, 80)
        draws = law.isoflop_curve(fit.posterior, budget, grid)
        n_opt = law.isoflop_minimum(fit.posterior, budget)
        n_opt = None if n_opt is None else np.median(n_opt)
        med, lo, hi = quantiles(draws, ci_prob)
        ax.scatter(runs["N"], runs["loss"], s=12, color=color, zorder=3)
        ax.plot(grid, med, color=color, lw=1.2, label=f"{budget:.2g}")
        ax.fill_between(grid, lo, hi, color=color, alpha=0.25, lw=0)
        if n_opt is not None:
            ax.axvline(n_opt, color=color, lw=0.6, ls=":")
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss", title=f"iso-FLOP curves ({law.name}, {ci_prob:.0%} bands)")
    ax.legend(title="C (FLOPs)", fontsize=7, title_fontsize=7, ncol=2)
    return ax


def plot_optimal_fans(fits: dict[str, LawFit], axes=None, ci_prob: float = 0.9, budgets: np.ndarray | None = None):
    """N*(C) and D*(C) fans (median and band) per law, with the 20-tokens/param rule dashed."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")[1]
    budgets = budgets if budgets is not None else _budget_grid(list(fits.values()))
    for label, fit in fits.items():
        N, D = fit.law.optimal(fit.posterior, budgets)
        for ax, draws in zip(axes, (N, D)):
            med, lo, hi = quantiles(draws, ci_prob)
            (line,) = ax.plot(budgets, med, label=label)
            ax.fill_between(budgets, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    rule_N = np.sqrt(budgets / six_n(TOKENS_PER_PARAM_RULE))
    for ax, rule, name in zip(axes, (rule_N, TOKENS_PER_PARAM_RULE * rule_N), ("N*", "D*")):
        ax.plot(budgets, rule, "k--", lw=1, label=f"{TOKENS_PER_PARAM_RULE:g} tokens/param")
        ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel=name,
               title=f"{name}(C), {ci_prob:.0%} bands")
        ax.legend(fontsize=8)
    return axes


def plot_tokens_per_param(fits: dict[str, LawFit], ax=None, ci_prob: float = 0.9, budgets: np.ndarray | None = None):
    """D*/N* against C per law, with the 20-tokens/param rule."""
    ax = ax or plt.subplots(figsize=(6, 4.2), layout="constrained")[1]
    budgets = budgets if budgets is not None else _budget_grid(list(fits.values()))
    for label, fit in fits.items():
        N, D = fit.law.optimal(fit.posterior, budgets)
        med, lo, hi = quantiles(D / N, ci_prob)
        (line,) = ax.plot(budgets, med, label=label)
        ax.fill_between(budgets, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    ax.axhline(TOKENS_PER_PARAM_RULE, color="k", ls="--", lw=1, label=f"{TOKENS_PER_PARAM_RULE:g} tokens/param rule")
    ax.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="tokens per parameter D*/N*",
           title=f"tokens per parameter, {ci_prob:.0%} bands")
    ax.legend(fontsize=8)
    return ax


def plot_kaplan_limits(fit: LawFit, axes=None, ci_prob: float = 0.9):
    """Kaplan's limits L(N) (D → ∞) and L(D) (N → ∞) over the data."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")[1]
    table = fit.law.table
    for ax, col in zip(axes, ("N", "D")):
        grid = np.logspace(np.log10(table[col].min()), np.log10(table[col].max()), 60)
        inf = np.full_like(grid, np.inf)
        draws = fit.law.loss(fit.posterior, grid, inf) if col == "N" else fit.law.loss(fit.posterior, inf, grid)
        med, lo, hi = quantiles(draws, ci_prob)
        ax.scatter(table[col], table["loss"], s=8, color="0.5", label="runs")
        ax.plot(grid, med, color="C3", label=f"L({col})")
        ax.fill_between(grid, lo, hi, color="C3", alpha=0.25, lw=0)
        ax.set(xscale="log", xlabel=col, ylabel="loss", title=f"Kaplan limit L({col}), {ci_prob:.0%} band")
        ax.legend(fontsize=8)
    return axes


def plot_critical_batch(fit: LawFit, axes=None, ci_prob: float = 0.9):
    """Left: steps vs examples per target loss with the fitted hyperbolas. Right: B_crit(L)."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")[1]
    law, table = fit.law, fit.law.table
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(law.targets)))
    for j, (target, color) in enumerate(zip(law.targets, colors)):
        runs = table[table["target_loss"] == target]
        B = np.logspace(np.log10(runs["batch_size"].min()) - 0.5, np.log10(runs["batch_size"].max()) + 0.5, 80)
        med, lo, hi = quantiles(law.steps(fit.posterior, j, B), ci_prob)
        axes[0].scatter(runs["steps"], runs["examples"], s=14, color=color)
        axes[0].plot(med, med * B, color=color, label=f"L = {target:g}")
        axes[0].fill_betweenx(med * B, lo, hi, color=color, alpha=0.25, lw=0)
    axes[0].set(xscale="log", yscale="log", xlabel="steps S", ylabel="examples E (tokens)",
                title="(S/S_min − 1)(E/E_min − 1) = 1")
    axes[0].legend(fontsize=8)
    params = law.params(fit.posterior)
    L = np.linspace(law.targets.min() * 0.95, law.targets.max() * 1.05, 60)
    curve = params["B_star"][:, None] / L[None, :] ** (1 / params["alpha_B"][:, None])
    med, lo, hi = quantiles(curve, ci_prob)
    axes[1].plot(L, med, color="C3", label="B*/L^(1/α_B)")
    axes[1].fill_between(L, lo, hi, color="C3", alpha=0.25, lw=0)
    per_target = np.stack([params[f"B_crit[L={t:g}]"] for t in law.targets], axis=1)
    m, lo_t, hi_t = quantiles(per_target, ci_prob)
    axes[1].errorbar(law.targets, m, yerr=[m - lo_t, hi_t - m], fmt="o", color="k", ms=4, label="B_crit per target")
    axes[1].set(yscale="log", xlabel="target loss L", ylabel="critical batch (tokens)", title=f"B_crit(L), {ci_prob:.0%} band")
    axes[1].legend(fontsize=8)
    return axes


def _isoflop_figure(fit: LawFit, ci_prob: float) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.5, 4.8), layout="constrained")
    plot_isoflop_curves(fit, ax, ci_prob)
    return fig


def _pair_figure(draw):
    def figure(fit: LawFit, ci_prob: float) -> plt.Figure:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
        draw(fit, axes, ci_prob)
        return fig
    return figure


def _allocation_figure(fit: LawFit, ci_prob: float) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), layout="constrained")
    plot_optimal_fans({fit.law.name: fit}, axes[:2], ci_prob)
    plot_tokens_per_param({fit.law.name: fit}, axes[2], ci_prob)
    return fig


#: Figure name (as a law lists it in ``Law.figures``) → function (fit, ci_prob) → Figure.
FIGURES = {
    "isoflop_curves": _isoflop_figure,
    "kaplan_limits": _pair_figure(plot_kaplan_limits),
    "critical_batch": _pair_figure(plot_critical_batch),
    "optimal_allocation": _allocation_figure,
}


def save_law_plots(fit: LawFit, directory: Path, ci_prob: float = 0.9) -> list[Path]:
    """The figures ``fit``'s law lists, written as ``directory/<figure>.png``."""
    return [save_figure(FIGURES[name](fit, ci_prob), Path(directory) / f"{name}.png") for name in fit.law.figures]
