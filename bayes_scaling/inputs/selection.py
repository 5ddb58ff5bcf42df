"""The selection jitter σ_sel of best runs, estimated from full sweeps.

The best run of a cell is not at the cell's smooth optimum: loss noise moves the argmin of the
measured runs, and the grid rounds it. Per cell, a quadratic in (u, v) = (log η, log B) fitted by
least squares to the runs within ``WINDOW`` nats of the cell's best loss gives a smooth argmin
(u*, v*); then, over cells, for each optimum

    σ_sel² = s² − Δ²/12,     s = 1.4826·MAD(log best − log argmin),   Δ = the grid's log step

(the best grid value's distance from the smooth optimum, less the rounding a uniform position
within a grid cell adds), floored at ``inputs.grids.SELECTION_JITTER``. A cell whose quadratic is
not a bowl (its Hessian not positive definite) or whose argmin falls outside its swept range is
left out; with fewer than ``MIN_CELLS`` cells left, or for best-runs-only tables, the default
stays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_scaling.inputs.grids import SELECTION_JITTER

WINDOW = 0.05
MIN_RUNS = 8
MIN_CELLS = 4


def smooth_argmin(cell: pd.DataFrame, window: float = WINDOW) -> tuple[float, float] | None:
    """(log η*, log B*) of a quadratic bowl fitted to a cell's ok runs near its best loss, or None."""
    ok = cell[(cell["status"] == "ok") & np.isfinite(cell["loss"])]
    near = ok[ok["loss"] <= ok["loss"].min() + window]
    if len(near) < MIN_RUNS or near["lr"].nunique() < 3 or near["B"].nunique() < 3:
        return None
    u, v = np.log(near["lr"].to_numpy(float)), np.log(near["B"].to_numpy(float))
    u0, v0 = u.mean(), v.mean()
    du, dv = u - u0, v - v0
    X = np.column_stack([np.ones_like(du), du, dv, du**2, du * dv, dv**2])
    beta = np.linalg.lstsq(X, near["loss"].to_numpy(float), rcond=None)[0]
    H = np.array([[2 * beta[3], beta[4]], [beta[4], 2 * beta[5]]])
    if np.any(np.linalg.eigvalsh(H) <= 0):
        return None
    du_star, dv_star = np.linalg.solve(H, -beta[1:3])
    us, vs = u0 + du_star, v0 + dv_star
    all_u, all_v = np.log(ok["lr"].to_numpy(float)), np.log(ok["B"].to_numpy(float))
    if not (all_u.min() <= us <= all_u.max() and all_v.min() <= vs <= all_v.max()):
        return None
    return float(us), float(vs)


def selection_jitter(runs: pd.DataFrame, best: pd.DataFrame) -> dict[str, float] | None:
    """σ_sel per optimum ("lr", "batch_size") from a full-sweep table (see the module docstring);
    None for a best-runs-only table or too few usable cells."""
    if (best["n_runs"] < MIN_RUNS).all():
        return None
    offsets, steps = {"lr": [], "batch_size": []}, {"lr": [], "batch_size": []}
    for row in best.itertuples():
        cell = runs[(runs["N"] == row.N) & (runs["D"] == row.D)]
        star = smooth_argmin(cell)
        if star is None:
            continue
        for q, col, s in (("lr", "lr", star[0]), ("batch_size", "B", star[1])):
            offsets[q].append(np.log(getattr(row, col)) - s)
            steps[q].append(np.median(np.diff(np.log(np.unique(cell[col].to_numpy(float))))))
    if len(offsets["lr"]) < MIN_CELLS:
        return None
    out = {}
    for q, d in offsets.items():
        d = np.asarray(d)
        s = 1.4826 * np.median(np.abs(d - np.median(d)))
        out[q] = float(np.sqrt(max(s**2 - np.median(steps[q]) ** 2 / 12, SELECTION_JITTER**2)))
    return out
