"""``akima`` — the interpolation baseline many practitioners use (Porian et al. 2024): per sweep cell,

    η*_j = argmin over log η of an Akima interpolant of loss along η, at the cell's best B
    B*_j = argmin over log B of an Akima interpolant of loss along B, at the cell's best η

(searched on a fine grid inside the swept range; a column with fewer than 3 ok runs keeps the
best run's value), then the OLS law through those continuous optima (``optimum.specs.ols``: row
bootstrap of the line plus a resampled residual). It needs full sweeps; it is a baseline for the
backtest, not a posterior.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_scaling.inputs.runtable import QUANTITIES, BestRuns, best_runs
from bayes_scaling.optimum.fit import Fitter, OptimumFit

#: Points of the fine search grid of each interpolant.
SEARCH_POINTS = 400


def akima_argmin(x: np.ndarray, loss: np.ndarray) -> float:
    """The argmin (in x) of an Akima interpolant through (x, loss), x sorted; the best point if < 3 points."""
    from scipy.interpolate import Akima1DInterpolator

    order = np.argsort(x)
    x, loss = x[order], loss[order]
    if x.size < 3:
        return float(x[np.argmin(loss)])
    grid = np.linspace(x[0], x[-1], SEARCH_POINTS)
    return float(grid[np.argmin(Akima1DInterpolator(x, loss)(grid))])


def interpolated_optima(runs: pd.DataFrame, best: BestRuns) -> pd.DataFrame:
    """One row per cell: N, D and the interpolated η*, B* (natural units) beside the best run's."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for cell in best.frame.itertuples():
        here = ok[(ok["N"] == cell.N) & (ok["D"] == cell.D)]
        at_b = here[np.isclose(np.log(here["B"]), np.log(cell.B))]
        at_lr = here[np.isclose(np.log(here["lr"]), np.log(cell.lr))]
        rows.append({"N": cell.N, "D": cell.D,
                     "lr": float(np.exp(akima_argmin(np.log(at_b["lr"].to_numpy()), at_b["loss"].to_numpy()))),
                     "B": float(np.exp(akima_argmin(np.log(at_lr["B"].to_numpy()), at_lr["loss"].to_numpy()))),
                     "best_lr": cell.lr, "best_B": cell.B})
    return pd.DataFrame(rows)


@dataclass
class AkimaFit:
    """The interpolated optima of every cell and the OLS law through them, per optimum."""

    cells: pd.DataFrame
    fits: dict[str, OptimumFit]
    wall_s: float
    method: str = "Akima interpolation per cell + OLS (row bootstrap + residual)"
    approximate: bool = False
    diagnostics: None = None
    figures: tuple[str, ...] = ()

    def as_optimum_fits(self) -> dict[str, OptimumFit]:
        return self.fits

    def write_artifacts(self, stage, *, ci_prob: float) -> None:
        from bayes_scaling.io import write_csv

        write_csv(stage / "akima_cells.csv", self.cells)

    def to_netcdf(self, path) -> None:
        """The interpolated optima of the cells (the laws' draws are saved with every optimum fit)."""
        import xarray as xr

        from bayes_scaling.io import write_datatree

        write_datatree(path, xr.DataTree(xr.Dataset.from_dataframe(self.cells)))


def fit_akima(runs: pd.DataFrame, config, *, source: str = "<table>", n_boot: int = 2000) -> AkimaFit:
    """The baseline on a validated full-sweep run table."""
    from bayes_scaling.errors import InputError

    t0 = time.perf_counter()
    best = best_runs(runs, source=source)
    if (best.frame["n_runs"] < 3).any():
        raise InputError(f"{source}: the akima baseline interpolates each cell's sweep; a cell has fewer than 3 runs")
    cells = interpolated_optima(runs, best)
    fitter = Fitter(config, n_boot=n_boot)
    fits = {}
    for q, col in QUANTITIES.items():
        data = best.quantity(q)
        data = type(data)(**{**data.__dict__, "y": np.log(cells[col].to_numpy(float))})
        fit = fitter.fit("ols", data)
        fit.model = "akima"
        fits[q] = fit
    return AkimaFit(cells=cells, fits=fits, wall_s=time.perf_counter() - t0)
