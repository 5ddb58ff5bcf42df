"""The surface model's bowls drawn over the measured losses of every sweep cell."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bayes_scaling.math.draws import stacked
from bayes_scaling.report.figures.save import save_figure
from bayes_scaling.surface.fit import SurfaceFit
from bayes_scaling.surface.predict import loss_draws


def write_figures(fit, directory: str | Path) -> list[Path]:
    """The figures a run-level fit lists in its ``figures``, as ``directory/<figure>.png``."""
    return [FIGURES[name](fit, Path(directory) / f"{name}.png") for name in fit.figures]


def plot_bowls(sf: SurfaceFit, path: str | Path) -> Path:
    """Per-cell panels: measured loss vs log₂ η at the 3 batch sizes nearest the fitted B*,
    with the fitted mean loss (posterior median) and the fitted η* (line, 90 % band)."""
    d = sf.data
    log_opt = stacked(sf.posterior, "log_opt")
    n = len(d.cells)
    cols = int(np.ceil(np.sqrt(n)))
    rows_ = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows_, cols, figsize=(3.2 * cols, 2.6 * rows_), squeeze=False)
    for j, ax in enumerate(axes.flat):
        if j >= n:
            ax.axis("off")
            continue
        runs = d.runs[d.runs["cell"] == j]
        cell = d.cells.iloc[j]
        log_eta = np.log(runs["lr"].to_numpy())
        grid = np.exp(np.linspace(log_eta.min(), log_eta.max(), 80))
        b_star = np.median(log_opt[:, 1, j])
        sizes = np.unique(runs["B"])
        for color, bsz in zip(("C0", "C1", "C2"), np.sort(sizes[np.argsort(np.abs(np.log(sizes) - b_star))[:3]])):
            at = runs[np.isclose(runs["B"], bsz)]
            exact = ~at["censored"].to_numpy()
            ax.plot(np.log2(at["lr"])[exact], at["y"][exact], "o", ms=3, color=color, label=f"B={bsz:.3g}")
            ax.plot(np.log2(at["lr"])[~exact], at["y"][~exact], "^", ms=3, mfc="none", color=color)
            curve = loss_draws(sf, np.full(grid.size, cell["N"]), np.full(grid.size, cell["D"]),
                               np.full(grid.size, bsz), grid, noise=False)
            ax.plot(np.log2(grid), np.median(curve, axis=0), "-", lw=1, color=color)
        eta = log_opt[:, 0, j] / np.log(2)
        ax.axvline(np.median(eta), color="k", lw=0.8)
        ax.axvspan(*np.quantile(eta, [0.05, 0.95]), color="k", alpha=0.1, lw=0)
        lmin = cell["min_loss"]
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
