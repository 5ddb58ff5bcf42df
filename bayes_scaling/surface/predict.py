"""The surface model's posterior predictive in NumPy: the loss of any run, the best run of any sweep.

For posterior draw s and a target cell (N, D):

    a fitted cell j (same N, D):  (log η*, log B*, L*, θ)_s = draw s of cell j
    a new cell:   log q* = law_q(N, D) + σ_q·ε        (a fresh per-N slope for a new N: ``OptimumSpec.predictive``)
                  θ_p = μ_p + τ_p·z_p,  L* = L_law(N, D) + σ_L*·ε'        (ε, ε', z ~ Normal(0, 1))

and a run at (η, B) in that cell has loss  L* + f_θ(log η − log η*, log B − log B*) + s·T₄,
s² = σ² + (γ·f)² (``surface.model``). Runs of one cell share the cell's draw, so a sweep's
losses are predicted jointly; the *best run a sweep would find* is the argmin over its
configurations of one such joint draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bayes_scaling.math.bowl import valley_bowl
from bayes_scaling.math.draws import stacked
from bayes_scaling.math.student_t import NU
from bayes_scaling.optimum.spec import SAME_N_ATOL
from bayes_scaling.surface.model import LOSS_LAW_PREFIX, OPTIMA, SHAPE

if TYPE_CHECKING:
    import xarray as xr

    from bayes_scaling.surface.fit import SurfaceFit


@dataclass(frozen=True)
class CellDraws:
    """Draws of the cell-level quantities of T target cells."""

    log_opt: np.ndarray      # (S, 2, T): log η*, log B*
    l_star: np.ndarray       # (S, T)
    shape: np.ndarray        # (S, len(SHAPE), T)
    gamma: np.ndarray        # (S, 1)

    def theta(self, name: str) -> np.ndarray:
        return self.shape[:, SHAPE.index(name), :]


def loss_law_posterior(posterior: xr.Dataset) -> xr.Dataset:
    """The loss law's variables with their ``loss_law::`` prefix removed (what ``Law.loss`` reads)."""
    names = [v for v in posterior.data_vars if v.startswith(LOSS_LAW_PREFIX)]
    return posterior[names].rename({v: v[len(LOSS_LAW_PREFIX):] for v in names})


def fitted_cell(sf: SurfaceFit, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Index of the fitted cell with the same (N, D) as each target, or -1 for a cell not fitted."""
    cells = np.log(sf.data.cells[["N", "D"]].to_numpy(float))
    target = np.log(np.column_stack([N, D]))
    dist = np.abs(target[:, None, :] - cells[None, :, :]).max(axis=2)
    return np.where(dist.min(axis=1) < SAME_N_ATOL, dist.argmin(axis=1), -1)


def cell_draws(sf: SurfaceFit, N, D, rng: np.random.Generator) -> CellDraws:
    """Draws of (log η*, log B*, L*, θ) at target cells (N, D): a fitted cell's own, or fresh ones."""
    N, D = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (N, D))
    post = sf.posterior
    log_opt, l_star, shape = stacked(post, "log_opt"), stacked(post, "l_star"), stacked(post, "shape")
    S, T = l_star.shape[0], N.size
    j = fitted_cell(sf, N, D)
    known = j >= 0
    fresh_opt = np.stack([fit.log_draws(N, D, seed=int(rng.integers(2**31)), noise=True)
                          for fit in (sf.as_optimum_fits()[q] for q in OPTIMA)], axis=1)        # (S, 2, T)
    law = sf.loss_law()
    fresh_l = (law.loss(loss_law_posterior(post), N, D)
               + stacked(post, "sigma_lstar")[:, None] * rng.standard_normal((S, T)))
    mu, tau = stacked(post, "shape_mu"), stacked(post, "shape_tau")
    fresh_shape = mu[:, :, None] + tau[:, :, None] * rng.standard_normal((S, len(SHAPE), T))
    jj = np.clip(j, 0, None)
    return CellDraws(
        log_opt=np.where(known[None, None, :], log_opt[:, :, jj], fresh_opt),
        l_star=np.where(known[None, :], l_star[:, jj], fresh_l),
        shape=np.where(known[None, None, :], shape[:, :, jj], fresh_shape),
        gamma=stacked(post, "gamma")[:, None],
    )


def mean_and_scale(cd: CellDraws, cell: np.ndarray, log_lr: np.ndarray, log_B: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(S, n) mean loss L* + f and noise scale s of runs at (log η, log B) in target cells ``cell``."""
    h = (np.exp(cd.theta("log_h_lr")[:, cell]), np.exp(cd.theta("log_h_B")[:, cell]))
    kappa = (cd.theta("kappa_lr")[:, cell], cd.theta("kappa_B")[:, cell])
    f = valley_bowl(log_lr[None, :] - cd.log_opt[:, 0, cell], log_B[None, :] - cd.log_opt[:, 1, cell], h, kappa,
                    cd.theta("k1")[:, cell], cd.theta("k2")[:, cell])
    scale = np.sqrt(np.exp(2.0 * cd.theta("log_sigma")[:, cell]) + (cd.gamma * f) ** 2)
    return cd.l_star[:, cell] + f, scale


def loss_draws(sf: SurfaceFit, N, D, B, lr, *, seed: int = 0, noise: bool = True) -> np.ndarray:
    """(S, n) posterior-predictive draws of the final loss of runs (N, D, B, lr); runs of one (N, D)
    share their cell's draw. ``noise=False``: the mean loss L* + f."""
    mean, loss = run_draws(sf, N, D, B, lr, seed=seed)
    return loss if noise else mean


def run_draws(sf: SurfaceFit, N, D, B, lr, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean loss L* + f, a run's loss: the mean plus its noise), each (S, n), from one draw of each cell."""
    N, D, B, lr = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (N, D, B, lr))
    if not N.size == D.size == B.size == lr.size:
        raise ValueError(f"one value of N, D, B, lr per run: got {N.size}, {D.size}, {B.size}, {lr.size}")
    rng = np.random.default_rng(seed)
    keys, cell = np.unique(np.column_stack([N, D]), axis=0, return_inverse=True)
    cd = cell_draws(sf, keys[:, 0], keys[:, 1], rng)
    mean, scale = mean_and_scale(cd, cell.ravel(), np.log(lr), np.log(B))
    return mean, mean + scale * rng.standard_t(NU, size=mean.shape)


def best_run_draws(sf: SurfaceFit, N: float, D: float, B, lr, *, seed: int = 0) -> np.ndarray:
    """(S, 2) draws of η and B of the best run a sweep of configurations in cell (N, D) would find —
    run k at (B[k], lr[k]), paired, not a grid — the argmin of one joint predictive draw of the
    sweep's losses. Each draw is one of the configurations, exactly (no log/exp round trip)."""
    B, lr = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (B, lr))
    losses = loss_draws(sf, np.full(B.size, N), np.full(B.size, D), B, lr, seed=seed)
    k = losses.argmin(axis=1)
    return np.column_stack([lr[k], B[k]])
