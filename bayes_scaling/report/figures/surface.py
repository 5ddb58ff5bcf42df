"""The surface model's bowls drawn over the measured losses of every sweep cell."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bayes_scaling.math.bowl import bowl
from bayes_scaling.math.draws import stacked
from bayes_scaling.report.figures.save import save_figure
from bayes_scaling.surface.fit import SurfaceFit


def write_figures(fit, directory: str | Path) -> list[Path]:
    """The figures a run-level fit lists in its ``figures``, as ``directory/<figure>.png``."""
    return [FIGURES[name](fit, Path(directory) / f"{name}.png") for name in fit.figures]


def plot_bowls(sf: SurfaceFit, path: str | Path, *, n_draws: int = 200) -> Path:
    """Per-cell panels: measured loss vs log₂ η at the 3 batch sizes nearest the fitted B*,
    with the fitted bowl (posterior median) and the fitted η* (line, 90 % band)."""
    post, d = sf.posterior, sf.data
    S = stacked(post, "a").shape[0]
    pick = np.linspace(0, S - 1, min(n_draws, S)).astype(int)
    p = {k: stacked(post, k)[pick] for k in ("log_opt", "log_h", "rho", "beta", "delta_s", "l_star")}
    n = len(d.cells)
    cols = int(np.ceil(np.sqrt(n)))
    rows_ = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows_, cols, figsize=(3.2 * cols, 2.6 * rows_), squeeze=False)
    for j, ax in enumerate(axes.flat):
        if j >= n:
            ax.axis("off")
            continue
        runs = d.runs[d.runs["cell"] == j]
        log_eta = np.log(runs["lr"].to_numpy())
        grid = np.linspace(log_eta.min(), log_eta.max(), 80)
        b_star = np.median(p["log_opt"][:, 1, j])
        sizes = np.unique(runs["B"])
        near = sizes[np.argsort(np.abs(np.log(sizes) - b_star))[:3]]
        for color, bsz in zip(("C0", "C1", "C2"), np.sort(near)):
            at = runs[np.isclose(runs["B"], bsz)]
            exact = ~at["censored"].to_numpy()
            ax.plot(np.log2(at["lr"])[exact], at["y"][exact], "o", ms=3, color=color, label=f"B={bsz:.3g}")
            ax.plot(np.log2(at["lr"])[~exact], at["y"][~exact], "^", ms=3, mfc="none", color=color)
            curve = p["l_star"][:, j, None] + bowl(
                grid[None, :] - p["log_opt"][:, 0, j, None], np.log(bsz) - p["log_opt"][:, 1, j, None],
                np.exp(p["delta_s"][:, j, None]), np.exp(p["log_h"].T[..., None]), p["rho"][:, None],
                p["beta"].T[..., None])
            ax.plot(grid / np.log(2), np.median(curve, axis=0), "-", lw=1, color=color)
        eta = p["log_opt"][:, 0, j] / np.log(2)
        ax.axvline(np.median(eta), color="k", lw=0.8)
        ax.axvspan(*np.quantile(eta, [0.05, 0.95]), color="k", alpha=0.1, lw=0)
        lmin = d.cells["min_loss"].iloc[j]
        ax.set_ylim(lmin - 0.2 * d.window, lmin + 1.1 * d.window)
        ax.set_title(d.cell_names[j], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    fig.supxlabel("log₂ learning rate  (○ exact, △ censored: above the window, drawn at its top)")
    fig.supylabel("final loss")
    fig.suptitle(f"surface model ({sf.method}, slopes={sf.slopes}): fitted bowls over measured losses", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


#: Figure name (as a run-level fit lists it in ``figures``) → function (fit, path) → path.
FIGURES = {"surface_bowls": plot_bowls}
