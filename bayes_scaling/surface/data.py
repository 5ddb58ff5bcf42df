"""The arrays of the full-surface model: every run of a sweep, with the window rule.

A run i in (N, D) cell j(i) enters as (log η_i, log B_i, y_i). The bowl is fitted
*inside a window* of ``window`` nats above the cell's best measured loss:

    U_j = min_i loss_i + window,     y_i = loss_i if loss_i ≤ U_j,   else y_i = U_j (censored)

A run above the window — including every diverged run, whose loss is unknown — is not
dropped: it is a right-censored observation, "the loss here is above U_j", which keeps
the bowl from wandering where runs failed, without asking it to fit the size of a
blow-up. One compiled model serves every table of the same shape (simulated tables);
a backtest fits :meth:`SurfaceData.subset` of the training cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.runtable import QUANTITIES, best_runs
from bayes_scaling.optimum.spec import Centers

#: Default window (nats above the cell's best loss). StepLaw's bowls rise ~0.01–0.05 nats over
#: ±2 grid steps and then steepen into instability: a smooth bowl fitted to a wider window lets
#: the far runs pull its minimum away from the near ones (``benchmarks/surface_window.py``).
WINDOW = 0.03
#: A cell needs at least this many ok runs to say where its bowl is.
MIN_RUNS_PER_CELL = 5


@dataclass(frozen=True)
class SurfaceData:
    """Run-level and cell-level arrays of one run table (cells sorted by N, then D)."""

    runs: pd.DataFrame          # the runs, with columns cell, slot (its place in the cell), censored, y, upper
    cells: pd.DataFrame         # one row per cell: N, D, n_index, best_lr, best_B, min_loss, n_runs
    n_levels: np.ndarray
    window: float

    @property
    def max_runs(self) -> int:
        """The most runs in one cell (the width of the model's cell × slot layout)."""
        return int(self.runs["slot"].max()) + 1

    @property
    def cell_names(self) -> list[str]:
        return [f"N={n:.3g},D={d:.3g}" for n, d in zip(self.cells["N"], self.cells["D"])]

    def centers(self, quantity: str) -> Centers:
        """Centring constants of the cells (log-mean N, D and best q), as ``Centers.of`` for best runs."""
        col = QUANTITIES[quantity]
        return Centers(float(np.log(self.cells["N"]).mean()), float(np.log(self.cells["D"]).mean()),
                       float(np.log(self.cells[f"best_{col}"]).mean()))

    def subset(self, keep: np.ndarray) -> SurfaceData:
        """The cells selected by a boolean mask, with their runs (cells and N levels re-indexed)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self.cells),) or not keep.any():
            raise ValueError("keep must be a non-empty boolean mask over the cells")
        new_index = np.cumsum(keep) - 1
        cells = self.cells[keep].reset_index(drop=True)
        levels = np.sort(cells["N"].unique())
        cells["n_index"] = np.searchsorted(levels, cells["N"])
        runs = self.runs[keep[self.runs["cell"].to_numpy()]].reset_index(drop=True)
        runs["cell"] = new_index[runs["cell"].to_numpy()]
        runs["slot"] = runs.groupby("cell").cumcount()
        return SurfaceData(runs=runs, cells=cells, n_levels=levels, window=self.window)


def surface_data(runs: pd.DataFrame, *, window: float = WINDOW, source: str = "<table>") -> SurfaceData:
    """Arrays of a validated run table (``runtable.validate_runs``) for the surface model."""
    if not window > 0:
        raise InputError(f"--window must be > 0 nats, got {window:g}")
    runs = runs.reset_index(drop=True)
    n_ok = (runs["status"] == "ok").groupby([runs["N"], runs["D"]]).sum()
    thin = n_ok[n_ok < MIN_RUNS_PER_CELL]
    if len(thin):
        (n, d), k = thin.index[0], int(thin.iloc[0])
        raise InputError(
            f"{source}: cell N={n:g}, D={d:g} has {k} ok run(s); a run-level kind (surface, gp, akima) needs a "
            f"sweep (>= {MIN_RUNS_PER_CELL} ok runs per cell) — use a best-run model for best-runs-only tables"
        )
    best = best_runs(runs, source=source).frame.sort_values(["N", "D"], ignore_index=True)
    runs = runs[runs.set_index(["N", "D"]).index.isin(best.set_index(["N", "D"]).index)].reset_index(drop=True)
    levels = np.sort(best["N"].unique())
    cells = pd.DataFrame({
        "N": best["N"], "D": best["D"], "n_index": np.searchsorted(levels, best["N"]),
        "best_lr": best["lr"], "best_B": best["B"], "min_loss": best["loss"],
        "n_runs": best["n_runs"],
    })
    key = pd.MultiIndex.from_frame(cells[["N", "D"]])
    cell = key.get_indexer(pd.MultiIndex.from_frame(runs[["N", "D"]]))
    upper = cells["min_loss"].to_numpy()[cell] + window
    loss = runs["loss"].to_numpy(dtype=float)
    censored = (runs["status"] != "ok").to_numpy() | ~(loss <= upper)
    runs = runs.assign(cell=cell, censored=censored, y=np.where(censored, upper, loss), upper=upper)
    runs = runs.sort_values("cell", kind="stable", ignore_index=True)
    runs["slot"] = runs.groupby("cell").cumcount()
    return SurfaceData(runs=runs, cells=cells, n_levels=levels, window=window)
