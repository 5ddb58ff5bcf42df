"""Simulated sweeps with a known law, quantized exactly like a real grid search.

    log q*_i = A + b·log N_i + c·log D_i + (c_n(i) − c)·x_D,i + d·x_N,i·x_D,i + e·x_N,i² + f·x_D,i² + σ·ε_i,
    c_n = c + τ_c·ζ_n

(x_N, x_D = log N, log D minus their means over the cells: a size's own slope, the interaction
and the curvatures pivot about the table's centre, as in the models.)

Each cell reports the grid point nearest (in log space) to its latent optimum, so the
data carry the same quantization and open edge cells as a real best-runs table.
Used by the tests (parameter recovery) and the calibration benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_scaling.inputs.grids import Grid
from bayes_scaling.inputs.runtable import BestRuns


@dataclass(frozen=True)
class TrueLaw:
    """Ground truth of one optimum's law (raw, uncentred logs)."""

    intercept: float
    b: float
    c: float
    sigma: float
    tau_c: float = 0.0
    d: float = 0.0       # N×D interaction: the slope on log D moves by d per unit of log N
    e: float = 0.0       # curvature in log N
    f: float = 0.0       # curvature in log D


def simulate_best_runs(
    lr_law: TrueLaw,
    batch_law: TrueLaw,
    *,
    sizes: np.ndarray,
    tokens: np.ndarray,
    lr_grid: Grid,
    batch_grid: Grid,
    seed: int = 0,
    rho: float = 0.0,
) -> tuple[BestRuns, pd.DataFrame]:
    """A BestRuns table on sizes × tokens (tokens may be (len(sizes), k) per size); ``rho`` correlates
    the two laws' cell scatter ε (corr(ε_lr, ε_B) = ρ, the ``joint`` kind's truth).

    Returns the table and the latent truth per cell (columns N, D, lr_star, B_star, c_lr, c_B).
    """
    rng = np.random.default_rng(seed)
    sizes = np.asarray(sizes, dtype=float)
    tokens = np.asarray(tokens, dtype=float)
    if tokens.ndim == 1:
        tokens = np.broadcast_to(tokens, (sizes.size, tokens.size))
    N = np.repeat(sizes, tokens.shape[1])
    D = tokens.ravel()
    group = np.repeat(np.arange(sizes.size), tokens.shape[1])
    rows = {"run_id": [f"sim-{i}" for i in range(N.size)], "N": N, "D": D, "loss": np.nan, "status": "ok", "n_runs": 1}
    truth = {"N": N, "D": D}
    eps_lr = None
    for law, col, grid in ((lr_law, "lr", lr_grid), (batch_law, "B", batch_grid)):
        slopes = law.c + law.tau_c * rng.standard_normal(sizes.size)
        x_N = np.log(N) - np.log(N).mean()
        x_D = np.log(D) - np.log(D).mean()  # per-N slopes pivot about the table's centre, as in the model
        eps = rng.standard_normal(N.size)
        if eps_lr is None:
            eps_lr = eps
        else:                     # the batch's scatter, correlated with the lr's: ρ·ε_lr + √(1 − ρ²)·ε
            eps = rho * eps_lr + np.sqrt(1.0 - rho**2) * eps
        z = (law.intercept + law.b * np.log(N) + law.c * np.log(D) + (slopes[group] - law.c) * x_D
             + law.d * x_N * x_D + law.e * x_N**2 + law.f * x_D**2 + law.sigma * eps)
        log_grid = np.log(grid.values)
        k = np.abs(z[:, None] - log_grid[None, :]).argmin(axis=1)
        bounds = np.array([grid.log_bounds(grid.values[j]) for j in k])
        rows[col] = grid.values[k]
        rows[f"{col}_lo"], rows[f"{col}_hi"] = bounds[:, 0], bounds[:, 1]
        truth[f"{col}_star"] = np.exp(z)
        truth[f"c_{col}"] = slopes[group]
    return BestRuns(frame=pd.DataFrame(rows), source="simulated"), pd.DataFrame(truth)
