"""Figures of the optimum laws: trace, per-N slope forest, the fan of η*/B* vs D, PPC, pooled vs per-N.

Each function takes fitted :class:`~bayes_scaling.optimum.fit.OptimumFit` objects, draws with
matplotlib, saves one PNG through ``save.save_figure`` and returns its path. What a kind looks
like and which figures it gets come from its spec (``style``, ``main_priority``,
``level_slopes``, ``pooled_partner``, ``trace_vars``), never from a list of names here.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bayes_scaling.inputs.runtable import QUANTITIES, BestRuns, QuantityData
from bayes_scaling.math.draws import quantiles, stacked
from bayes_scaling.optimum.fit import OptimumFit
from bayes_scaling.report.figures.save import engineering, fixed_margins, save_figure
from bayes_scaling.report.jobs import run_jobs

#: Characters per line of a 10-inch figure's 9-point title.
TITLE_CHARS = 110
LABEL = {"lr": "optimal learning rate η*", "batch_size": "optimal batch size B* (tokens)"}
SYMBOL = {"lr": "η*", "batch_size": "B*"}
#: What each law parameter of a trace plot is, for its panel title.
PARAM_LABEL = {"a": "a: log q* at the table's centre", "b": "b: slope on log N", "c": "c: slope on log D",
               "sigma": "σ: scatter of the cells about the law", "tau_c": "τ_c: spread of the per-N slopes",
               "tau_a": "τ_a: spread of the per-N intercepts"}


def _style(fit: OptimumFit) -> dict:
    return dict(fit.spec.style) if fit.model == fit.spec.name else {"color": "tab:green"}


def plot_trace(fit: OptimumFit, path: str | Path) -> Path:
    """Per law parameter: its marginal per chain (left) and the chains' traces (right), each panel titled."""
    post = fit.posterior
    names = [v for v in fit.spec.trace_vars if v in post]
    diag = textwrap.wrap(fit.diagnostics.describe(), TITLE_CHARS) if fit.diagnostics else []
    title = [f"{fit.model} · {fit.quantity}: trace", *diag]           # a failed fit's checks may take two lines
    header = 0.2 * len(title) + 0.35                                     # inches: the title, then the first panel's
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 1.9 * len(names) + header - 0.15), squeeze=False)
    fixed_margins(fig, left=0.7, right=0.15, top=header, bottom=0.5, wspace=0.9, hspace=0.5)
    for (ax_d, ax_t), name in zip(axes, names):
        values = post[name].transpose("chain", "draw").values
        for k, chain in enumerate(values):
            ax_d.hist(chain, bins=40, density=True, histtype="step", color=f"C{k}", lw=1)
            ax_t.plot(chain, color=f"C{k}", lw=0.5, alpha=0.8)
        ax_d.set_title(PARAM_LABEL.get(name, name), fontsize=8, loc="left")
        ax_t.set_title(f"{name} by draw, one colour per chain", fontsize=8, loc="left")
        ax_d.set_ylabel("density", fontsize=7)
        ax_t.set_ylabel(name, fontsize=7)
        for ax in (ax_d, ax_t):
            ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("value", fontsize=8)
    axes[-1, 1].set_xlabel("draw", fontsize=8)
    fig.suptitle("\n".join(title), fontsize=9, y=1 - 0.08 / fig.get_figheight())
    return save_figure(fig, path, crop=False)


def _interval_rows(ax, rows: list[tuple[str, np.ndarray]], ci_prob: float, color: str) -> None:
    """One horizontal row per (label, draws): the ci_prob interval, the 50 % interval, the median."""
    tail = (1 - ci_prob) / 2
    for k, (_, draws) in enumerate(rows):
        q = np.quantile(draws, [tail, 0.25, 0.5, 0.75, 1 - tail])
        ax.hlines(k, q[0], q[4], color=color, lw=1.2)
        ax.hlines(k, q[1], q[3], color=color, lw=4)
        ax.plot(q[2], k, "o", color="white", mec=color)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()


def plot_slopes_forest(fit: OptimumFit, path: str | Path, *, ci_prob: float = 0.9) -> Path:
    """Forest of the per-N slopes on log D, each row labelled with its model size, the population mean last."""
    per_n = fit.spec.level_slopes(fit.posterior, fit.centers, fit.n_levels)
    rows = [(f"N = {engineering(n)}", per_n[:, k]) for k, n in enumerate(fit.n_levels)]
    rows.append(("population mean c", stacked(fit.posterior, "c")))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.6))
    _interval_rows(ax, rows, ci_prob, _style(fit).get("color", "tab:red"))
    ax.axvline(np.median(rows[-1][1]), color="0.5", lw=0.8, ls=":")
    ax.set_xlabel(f"slope of log {SYMBOL[fit.quantity]} on log D  (thin: {ci_prob:.0%}, thick: 50 %, dot: median)")
    ax.set_title(f"{fit.quantity}: slope on log D per model size ({fit.model})", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, crop=False)


def _smooth_predictive(fit: OptimumFit, N: np.ndarray, D: np.ndarray, seed: int) -> np.ndarray:
    """Predictive draws (S, T) along a curve with one scatter draw per posterior draw.

    Same marginal at every point as ``fit.log_draws`` but common random numbers across
    the curve, so the band edges are smooth instead of jittering point to point.
    """
    mu = fit.log_draws(N, D, seed=seed, noise=False)
    return mu + fit.spec.scatter(fit.posterior, np.random.default_rng(seed), (mu.shape[0], 1))


def _cell_bars(ax, frame, col, color, n):
    """Best grid values as points with bars over their grid cell; open cells as arrows."""
    rows = frame[frame["N"] == n]
    y = rows[col].to_numpy()
    lo = np.exp(rows[f"{col}_lo"].to_numpy())
    hi = np.exp(rows[f"{col}_hi"].to_numpy())
    D = rows["D"].to_numpy()
    closed_lo = np.isfinite(rows[f"{col}_lo"].to_numpy())
    closed_hi = np.isfinite(rows[f"{col}_hi"].to_numpy())
    ax.vlines(D, np.where(closed_lo, lo, y), np.where(closed_hi, hi, y), color=color, lw=2, alpha=0.8)
    ax.scatter(D, y, color=color, zorder=3, s=18)
    ax.scatter(D[~closed_lo], y[~closed_lo] / 1.25, marker="v", color=color, s=30, zorder=3)
    ax.scatter(D[~closed_hi], y[~closed_hi] * 1.25, marker="^", color=color, s=30, zorder=3)


def main_fit(fq: dict[str, OptimumFit]) -> OptimumFit | None:
    """The fit the fan and PPC show: the Bayesian kind of highest ``main_priority`` (else the baseline)."""
    ranked = sorted(fq.values(), key=lambda f: (f.bayesian, f.spec.main_priority), reverse=True)
    return ranked[0] if ranked else None


def _baseline(fq: dict[str, OptimumFit]) -> OptimumFit | None:
    return next((f for f in fq.values() if getattr(f.spec, "point", None) is not None), None)


def plot_fan(fits: dict[str, OptimumFit], best: BestRuns, quantity: str, targets: list[tuple[float, float]],
             path: str | Path, *, model: str | None = None, ci_prob: float = 0.9) -> Path:
    """The optimum vs D per model size: data with grid cells, 50/ci bands, targets, the OLS line beside."""
    fit = fits[model] if model in fits else main_fit(fits)
    baseline = _baseline(fits)
    col = QUANTITIES[quantity]
    frame = best.frame
    sizes = np.sort(frame["N"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(sizes)))
    d_max = max([frame["D"].max()] + [t[1] for t in targets]) * 1.5
    grid = np.geomspace(frame["D"].min() / 1.5, d_max, 60)
    tail = (1 - ci_prob) / 2
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, n in enumerate(sizes):
        draws = np.exp(_smooth_predictive(fit, np.full(grid.size, n), grid, seed=i))
        q = np.quantile(draws, [tail, 0.25, 0.5, 0.75, 1 - tail], axis=0)
        ax.fill_between(grid, q[0], q[4], color=colors[i], alpha=0.12, lw=0)
        ax.fill_between(grid, q[1], q[3], color=colors[i], alpha=0.25, lw=0)
        ax.plot(grid, q[2], color=colors[i], lw=1.5, label=f"N = {engineering(n)}")
        _cell_bars(ax, frame, col, colors[i], n)
        if baseline is not None and baseline is not fit:
            point = np.exp(baseline.spec.point(baseline.idata, baseline.centers, np.log(np.full(grid.size, n)),
                                               np.log(grid)))
            ax.plot(grid, point, color=colors[i], ls=":", lw=1)
    for j, (n, d) in enumerate(targets):
        pred = fit.predict([n], [d], ci_prob=ci_prob).iloc[0]
        ax.errorbar([d], [pred["median"]], yerr=[[pred["median"] - pred["lo"]], [pred["hi"] - pred["median"]]],
                    fmt="D", color="crimson", capsize=5, ms=7,
                    label=f"N = {engineering(n)} (extrapolated, {ci_prob:.0%})")
        if baseline is not None:
            point = float(baseline.predict([n], [d]).iloc[0]["point"])
            ax.scatter([d], [point], marker="x", color="k", s=60, zorder=4, label="OLS point" if j == 0 else None)
    ax.set(xscale="log", yscale="log", xlabel="training tokens D", ylabel=LABEL[quantity],
           title=f"{LABEL[quantity]} vs D — {fit.model} model (bands 50 % / {ci_prob:.0%}; "
                 f"bars: grid cell of the best run; dotted: OLS)")
    ax.title.set_fontsize(9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    return save_figure(fig, path)


def _cell_label(log_N: float, log_D: float) -> str:
    return f"{engineering(np.exp(log_N))}\n{engineering(np.exp(log_D))}"


def plot_ppc(fit: OptimumFit, data: QuantityData, path: str | Path, *, ci_prob: float = 0.9) -> Path:
    """Posterior predictive of each cell's optimum against the grid cell that was observed, with
    P(observed cell) written in a row of its own above the panel."""
    draws = fit.log_draws(np.exp(data.log_N), np.exp(data.log_D))
    tail = (1 - ci_prob) / 2
    lo, med, hi = np.quantile(draws, [tail, 0.5, 1 - tail], axis=0)
    p_cell = np.mean((draws > data.lo) & (draws < data.hi), axis=0)
    order = np.lexsort((data.log_D, data.log_N))
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(max(8, 0.42 * len(x)), 5.2))
    span = 1.0
    cell_lo = np.where(np.isfinite(data.lo), data.lo, np.minimum(lo, data.y) - span)
    cell_hi = np.where(np.isfinite(data.hi), data.hi, np.maximum(hi, data.y) + span)
    ax.bar(x, (cell_hi - cell_lo)[order], bottom=cell_lo[order], width=0.7, color="tab:orange", alpha=0.35,
           label="observed grid cell (open cells shaded to the edge)")
    ax.errorbar(x, med[order], yerr=[(med - lo)[order], (hi - med)[order]], fmt="o", ms=3, color="tab:blue",
                label=f"posterior predictive {ci_prob:.0%}")
    for xi, p in zip(x, p_cell[order]):   # above the axes, in axes coordinates: never on a bar, never clipped
        ax.annotate(f"{p:.2f}", (xi, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(x, [_cell_label(data.log_N[i], data.log_D[i]) for i in order], fontsize=6)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_xlabel("cell: N (top) and D (bottom)", fontsize=8)
    ax.set_ylabel(f"log {data.name}")
    ax.set_title(f"{fit.model} · {data.name}: predictive vs observed cell (numbers above: P(observed cell))",
                 fontsize=9, pad=24)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_pooled_vs_per_n(per_n: OptimumFit, pooled: OptimumFit, path: str | Path, *, N_target: float = 4e9,
                         D_target: float = 1e11, ci_prob: float = 0.9) -> Path:
    """Per-N slopes vs the pooled slope, and what each implies at the target."""
    tail = (1 - ci_prob) / 2
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    lo, hi = np.quantile(stacked(pooled.posterior, "c"), [tail, 1 - tail])
    ax1.axvspan(lo, hi, color=_style(pooled).get("color"), alpha=0.2, label=f"pooled slope c ({ci_prob:.0%})")
    slopes = per_n.spec.level_slopes(per_n.posterior, per_n.centers, per_n.n_levels)
    rows = [(f"N = {engineering(n)}", slopes[:, k]) for k, n in enumerate(per_n.n_levels)]
    rows.append(("population c", stacked(per_n.posterior, "c")))
    _interval_rows(ax1, rows, ci_prob, _style(per_n).get("color", "tab:red"))
    ax1.set_xlabel(f"slope of log {SYMBOL[per_n.quantity]} on log D")
    ax1.set_title(f"per-N slopes ({per_n.model}) vs pooled slope ({pooled.model})", fontsize=9)
    ax1.legend(fontsize=7, loc="lower right")
    for fit in (pooled, per_n):
        draws = fit.log_draws([N_target], [D_target])[:, 0] / np.log(10)
        color = _style(fit).get("color")
        ax2.hist(draws, bins=60, density=True, alpha=0.45, color=color, label=fit.model)
        for v in quantiles(draws, ci_prob)[1:]:
            ax2.axvline(v, color=color, ls="--", lw=1)
    ax2.set_xlabel(f"log10 {SYMBOL[per_n.quantity]} at N = {engineering(N_target)}, D = {engineering(D_target)}")
    ax2.set_title(f"predictive at the target (dashed: {ci_prob:.0%} interval)", fontsize=9)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, crop=False)


def write_all(out_dir: str | Path, fits: dict[str, dict[str, OptimumFit]], best: BestRuns,
              targets: list[tuple[float, float]], *, ci_prob: float = 0.9, main: dict[str, str] | None = None,
              workers: int = 1) -> list[Path]:
    """Draw :func:`figure_jobs`' figures, here or in ``workers`` forked processes (``report.jobs``); their paths."""
    return run_jobs(figure_jobs(out_dir, fits, best, targets, ci_prob=ci_prob, main=main), workers)


def figure_jobs(out_dir: str | Path, fits: dict[str, dict[str, OptimumFit]], best: BestRuns,
                targets: list[tuple[float, float]], *, ci_prob: float = 0.9,
                main: dict[str, str] | None = None) -> list[tuple]:
    """The jobs (function, args, kwargs) that draw every figure the fitted kinds support, as
    plots/<figure>_<quantity>.png: per quantity the fan, the
    PPC and trace of the main fit (``main[quantity]`` — the recommended kind — where it is one of the
    fits, else ``main_fit``), a trace of any other fit that failed its convergence checks, and for
    the main per-N kind its slope forest and, when its pooled partner was fitted too, pooled vs per-N.
    Each is independent of the others (matplotlib's text layout, not arithmetic, is most of their time)."""
    out = Path(out_dir)
    jobs = []
    for q, fq in fits.items():
        data = best.quantity(q)
        chosen = (main or {}).get(q)
        jobs.append((plot_fan, (fq, best, q, targets, out / f"fan_{q}.png"), {"model": chosen, "ci_prob": ci_prob}))
        main_q = fq[chosen] if chosen in fq else main_fit(fq)
        main_q = main_q if main_q is not None and main_q.bayesian else None
        for m, fit in fq.items():   # the main fit's trace, and any that failed its checks
            if fit.bayesian and (fit is main_q or not fit.diagnostics.ok):
                jobs.append((plot_trace, (fit, out / f"trace_{m}_{q}.png"), {}))
        if main_q is not None:
            jobs.append((plot_ppc, (main_q, data, out / f"ppc_{main_q.model}_{q}.png"), {"ci_prob": ci_prob}))
        per_n = [f for f in fq.values() if f.model == f.spec.name
                 and f.spec.level_slopes(f.posterior, f.centers, f.n_levels) is not None]
        if per_n:
            top = max(per_n, key=lambda f: f.spec.main_priority)
            jobs.append((plot_slopes_forest, (top, out / f"forest_slopes_{q}.png"), {"ci_prob": ci_prob}))
            if top.spec.pooled_partner in fq:
                n_t, d_t = targets[0]
                jobs.append((plot_pooled_vs_per_n, (top, fq[top.spec.pooled_partner], out / f"pooled_vs_per_n_{q}.png"),
                             {"N_target": n_t, "D_target": d_t, "ci_prob": ci_prob}))
    return jobs


