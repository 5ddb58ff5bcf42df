"""Figures of a fit: trace, per-N slope forest, the fan of η*/B* vs D, PPC, pooled vs per-N.

Each function takes fitted :class:`~bayes_scaling.api.OptimumFit` objects, draws with
matplotlib (Agg) or ArviZ's plotting layer, saves one PNG atomically and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bayes_scaling.api import OptimumFit  # noqa: E402
from bayes_scaling.io import atomic_path  # noqa: E402
from bayes_scaling.predict import latent_draws  # noqa: E402
from bayes_scaling.runtable import QUANTITIES, BestRuns, QuantityData  # noqa: E402

LABEL = {"lr": "optimal learning rate η*", "batch_size": "optimal batch size B* (tokens)"}
MODEL_STYLE = {"ols": dict(color="0.3", ls="--"), "pooled": dict(color="tab:gray"),
               "quantized": dict(color="tab:blue"), "hierarchical": dict(color="tab:red")}


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def plot_trace(fit: OptimumFit, path: str | Path) -> Path:
    """Trace and marginal of the law's parameters (not the raw non-centred z's)."""
    names = [v for v in ("a", "b", "c", "sigma", "tau_c", "tau_a") if v in fit.posterior]
    pc = az.plot_trace_dist(fit.idata, var_names=names, backend="matplotlib")
    fig = pc.viz["chart"].item() if "chart" in pc.viz else plt.gcf()
    fig.suptitle(f"{fit.model} · {fit.quantity}: trace (left: marginals, right: chains)", y=1.02)
    return _save(fig, path)


def plot_slopes_forest(fits: dict[str, OptimumFit], path: str | Path, *, ci_prob: float = 0.9) -> Path:
    """Forest of the per-N slopes c_n on log D, with the population mean c (ArviZ forest)."""
    hier = fits["hierarchical"]
    pc = az.plot_forest(hier.idata, var_names=["c_n", "c"], combined=True, ci_probs=[0.5, ci_prob],
                        backend="matplotlib")
    fig = pc.viz["chart"].item() if "chart" in pc.viz else plt.gcf()
    fig.suptitle(f"{hier.quantity}: slope of log q* on log D per model size (hierarchical), "
                 f"population mean c last", y=1.02)
    return _save(fig, path)


def _smooth_predictive(fit: OptimumFit, N: np.ndarray, D: np.ndarray, seed: int) -> np.ndarray:
    """Predictive draws (S, T) along a curve with one noise draw per posterior draw.

    Same marginal at every point as ``fit.log_draws`` but common random numbers across
    the curve, so the band edges are smooth instead of jittering point to point.
    """
    if fit.ols is not None:
        return fit.log_draws(N, D)
    mu = fit.log_draws(N, D, seed=seed, noise=False)
    sigma = fit.posterior["sigma"].values.reshape(-1, 1)
    return mu + sigma * np.random.default_rng(seed).standard_normal((mu.shape[0], 1))


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


def plot_fan(fits: dict[str, OptimumFit], best: BestRuns, quantity: str, targets: list[tuple[float, float]],
             path: str | Path, *, model: str = "hierarchical", ci_prob: float = 0.9) -> Path:
    """The optimum vs D per model size: data with grid cells, 50/ci bands, targets, OLS beside."""
    model = model if model in fits else next(m for m in ("hierarchical", "quantized", "pooled", "ols") if m in fits)
    fit = fits[model]
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
        ax.plot(grid, q[2], color=colors[i], lw=1.5, label=f"N = {n:.2g}")
        _cell_bars(ax, frame, col, colors[i], n)
        if "ols" in fits and model != "ols":
            point = np.exp(fits["ols"].ols.predict_log(np.log(np.full(grid.size, n)), np.log(grid))[0])
            ax.plot(grid, point, color=colors[i], ls=":", lw=1)
    for j, (n, d) in enumerate(targets):
        pred = fit.predict([n], [d], ci_prob=ci_prob).iloc[0]
        c = "crimson"
        ax.errorbar([d], [pred["median"]], yerr=[[pred["median"] - pred["lo"]], [pred["hi"] - pred["median"]]],
                    fmt="D", color=c, capsize=5, ms=7, label=f"N = {n:.2g} (extrapolated, {ci_prob:.0%})")
        if "ols" in fits:
            point = float(fits["ols"].predict([n], [d]).iloc[0]["point"])
            ax.scatter([d], [point], marker="x", color="k", s=60, zorder=4,
                       label="OLS point" if j == 0 else None)
    ax.set(xscale="log", yscale="log", xlabel="training tokens D", ylabel=LABEL[quantity],
           title=f"{LABEL[quantity]} vs D — {model} model (bands 50 % / {ci_prob:.0%}; "
                 f"bars: grid cell of the best run; dotted: OLS)")
    ax.title.set_fontsize(9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    return _save(fig, path)


def plot_ppc(fit: OptimumFit, data: QuantityData, path: str | Path, *, ci_prob: float = 0.9) -> Path:
    """Posterior predictive of each cell's optimum against the grid cell that was observed."""
    draws = latent_draws(fit.posterior, fit.centers, fit.n_levels, data.log_N, data.log_D,
                         rng=np.random.default_rng(0), noise=True) if fit.ols is None else fit.log_draws(
        np.exp(data.log_N), np.exp(data.log_D))
    tail = (1 - ci_prob) / 2
    lo, med, hi = np.quantile(draws, [tail, 0.5, 1 - tail], axis=0)
    p_cell = np.mean((draws > data.lo) & (draws < data.hi), axis=0)
    order = np.lexsort((data.log_D, data.log_N))
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(max(7, 0.28 * len(x)), 4.5))
    span = 1.0
    cell_lo = np.where(np.isfinite(data.lo), data.lo, np.minimum(lo, data.y) - span)
    cell_hi = np.where(np.isfinite(data.hi), data.hi, np.maximum(hi, data.y) + span)
    ax.bar(x, (cell_hi - cell_lo)[order], bottom=cell_lo[order], width=0.7, color="tab:orange", alpha=0.35,
           label="observed grid cell (open cells shaded to the edge)")
    ax.errorbar(x, med[order], yerr=[(med - lo)[order], (hi - med)[order]], fmt="o", ms=3, color="tab:blue",
                label=f"posterior predictive {ci_prob:.0%}")
    for xi, p in zip(x, p_cell[order]):
        ax.text(xi, cell_hi[order][xi] + 0.05, f"{p:.2f}", ha="center", fontsize=6, rotation=90)
    ax.set_xticks(x, [data.cell[i] for i in order], rotation=90, fontsize=6)
    ax.set_ylabel(f"log {data.name}")
    ax.set_title(f"{fit.model} · {data.name}: predictive vs observed cell (numbers: P(observed cell))", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_pooled_vs_per_n(fits: dict[str, OptimumFit], path: str | Path, *, N_target: float = 4e9,
                         D_target: float = 1e11, ci_prob: float = 0.9) -> Path:
    """Per-N slopes vs the pooled slope, and what each implies at the target."""
    hier, pooled = fits["hierarchical"], fits["quantized"]
    tail = (1 - ci_prob) / 2
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    c_pool = pooled.posterior["c"].values.ravel()
    lo, hi = np.quantile(c_pool, [tail, 1 - tail])
    ax1.axvspan(lo, hi, color=MODEL_STYLE["quantized"]["color"], alpha=0.2, label=f"pooled slope c ({ci_prob:.0%})")
    c_n = hier.posterior["c_n"].stack(s=("chain", "draw")).transpose("N_level", "s").values
    for k, n in enumerate(hier.n_levels):
        q = np.quantile(c_n[k], [tail, 0.25, 0.5, 0.75, 1 - tail])
        ax1.hlines(k, q[0], q[4], color="tab:red", lw=1.2)
        ax1.hlines(k, q[1], q[3], color="tab:red", lw=4)
        ax1.plot(q[2], k, "o", color="white", mec="tab:red")
    pop = hier.posterior["c"].values.ravel()
    q = np.quantile(pop, [tail, 0.5, 1 - tail])
    k = len(hier.n_levels)
    ax1.hlines(k, q[0], q[2], color="k", lw=1.2)
    ax1.plot(q[1], k, "D", color="k")
    ax1.set_yticks(range(k + 1), [f"N = {n:.2g}" for n in hier.n_levels] + ["population c"])
    ax1.set_xlabel(f"slope of log {hier.quantity}* on log D")
    ax1.set_title("per-N slopes (hierarchical) vs pooled slope", fontsize=9)
    ax1.legend(fontsize=7, loc="lower right")
    for name, fit in (("quantized (pooled slope)", pooled), ("hierarchical (per-N slopes)", hier)):
        draws = fit.log_draws([N_target], [D_target])[:, 0] / np.log(10)
        color = MODEL_STYLE[fit.model]["color"]
        ax2.hist(draws, bins=60, density=True, alpha=0.45, color=color, label=name)
        for v in np.quantile(draws, [tail, 1 - tail]):
            ax2.axvline(v, color=color, ls="--", lw=1)
    ax2.set_xlabel(f"log10 {hier.quantity}* at N = {N_target:.2g}, D = {D_target:.2g}")
    ax2.set_title(f"predictive at the target (dashed: {ci_prob:.0%} interval)", fontsize=9)
    ax2.legend(fontsize=7)
    return _save(fig, path)


def write_all(out_dir: str | Path, fits: dict[str, dict[str, OptimumFit]], best: BestRuns,
              targets: list[tuple[float, float]], *, ci_prob: float = 0.9) -> list[Path]:
    """Every plot the fitted models support, as plots/<kind>_<quantity>.png: per quantity the fan,
    the PPC and trace of the main model (hierarchical, else quantized, else pooled), a trace of
    any other fit that failed its convergence checks, the per-N slope forest and pooled vs per-N."""
    out = Path(out_dir)
    paths = []
    for q, fq in fits.items():
        data = best.quantity(q)
        paths.append(plot_fan(fq, best, q, targets, out / f"fan_{q}.png", ci_prob=ci_prob))
        main = next((fq[m] for m in ("hierarchical", "quantized", "pooled") if m in fq), None)
        for m in ("pooled", "quantized", "hierarchical"):   # the main fit's trace, and any that failed its checks
            if m in fq and (fq[m] is main or not fq[m].diagnostics.ok):
                paths.append(plot_trace(fq[m], out / f"trace_{m}_{q}.png"))
        if main is not None:
            paths.append(plot_ppc(main, data, out / f"ppc_{main.model}_{q}.png", ci_prob=ci_prob))
        if "hierarchical" in fq:
            paths.append(plot_slopes_forest(fq, out / f"forest_slopes_{q}.png", ci_prob=ci_prob))
            if "quantized" in fq:
                n_t, d_t = targets[0]
                paths.append(plot_pooled_vs_per_n(fq, out / f"pooled_vs_per_n_{q}.png", N_target=n_t,
                                                  D_target=d_t, ci_prob=ci_prob))
    return paths
