"""Exact posterior draws of a normal linear regression: no sampler, no compile.

    y ~ Normal(X·β, σ² I),   β ~ Normal(m₀, diag(s₀²)),   σ ~ any prior with a log density on σ > 0

Given σ the model is conjugate: y | σ ~ Normal(X·m₀, σ² I + X S₀ Xᵀ) once β is integrated out, and

    β | σ, y ~ Normal(m, S),   S = (XᵀX/σ² + S₀⁻¹)⁻¹,   m = S·(Xᵀy/σ² + S₀⁻¹ m₀).

So σ is drawn from its one-dimensional marginal posterior p(σ | y) ∝ p(σ)·p(y | σ), evaluated on a
grid of log σ (where the eigenvalues λ of X S₀ Xᵀ make each evaluation O(n):
log det = Σ log(σ² + λ), quadratic form Σ (Uᵀr)²/(σ² + λ)), and then β given each σ. The draws are
independent: there is nothing to tune, no chain to mix and no divergence to count.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: log σ grid of the marginal posterior: a coarse pass over COARSE_RANGE, then GRID_POINTS where its
#: density is above MASS_CUT of its peak (its steps are far below the posterior's width: the draws are exact to
#: Monte-Carlo error, ``tests/test_conjugate.py``).
COARSE_RANGE = (np.log(1e-6), np.log(1e3))
COARSE_POINTS = 4000
GRID_POINTS = 4000
MASS_CUT = 1e-12
#: The most posterior mass either end step of the coarse grid may hold: more, and σ's posterior runs
#: beyond the grid (an error); less, and what lies beyond is negligible (a prior ∝ σ near 0 leaves ~1e-10).
END_MASS = 1e-9


class OffGrid(ValueError):
    """σ's posterior is not inside the grid: e.g. data a law fits exactly (every cell's best value the
    same), whose likelihood grows without bound as σ → 0."""


def normal_regression_draws(X: np.ndarray, y: np.ndarray, m0: np.ndarray, s0: np.ndarray,
                            log_prior_sigma: Callable[[np.ndarray], np.ndarray], n_draws: int,
                            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_draws`` independent posterior draws (β (n_draws, k), σ (n_draws,)) of the module's model.
    ``log_prior_sigma`` maps an array of σ to its log prior density (up to a constant)."""
    X, y, m0, s0 = (np.asarray(v, dtype=float) for v in (X, y, m0, s0))
    r = y - X @ m0
    lam, U = np.linalg.eigh((X * s0**2) @ X.T)
    lam = np.clip(lam, 0.0, None)
    ur2 = (U.T @ r) ** 2

    def log_post(log_sigma: np.ndarray) -> np.ndarray:
        """log p(log σ | y) up to a constant: the prior on σ, its Jacobian σ, the marginal likelihood."""
        var = np.exp(2.0 * log_sigma)[:, None] + lam[None, :]
        loglik = -0.5 * (np.log(var).sum(axis=1) + (ur2[None, :] / var).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = log_prior_sigma(np.exp(log_sigma)) + log_sigma + loglik
        return np.where(np.isfinite(lp), lp, -np.inf)

    coarse = np.linspace(*COARSE_RANGE, COARSE_POINTS)
    lp = log_post(coarse)
    if not np.isfinite(lp).any():
        raise OffGrid("the posterior of σ has no mass between 1e-6 and 1e3")
    mass = np.exp(lp - lp.max())
    mass /= mass.sum()
    if max(mass[0], mass[-1]) > END_MASS:
        raise OffGrid("the posterior of σ reaches the end of its grid (1e-6 or 1e3)")
    keep = np.flatnonzero(lp >= lp.max() + np.log(MASS_CUT))
    step = coarse[1] - coarse[0]
    grid = np.linspace(coarse[keep[0]] - step, coarse[keep[-1]] + step, GRID_POINTS + 1)
    mid = 0.5 * (grid[:-1] + grid[1:])
    lp = log_post(mid)
    w = np.exp(lp - lp.max())
    cdf = np.concatenate([[0.0], np.cumsum(w)])
    cdf /= cdf[-1]
    log_sigma = np.interp(rng.uniform(size=n_draws), cdf, grid)       # inverse CDF, linear within a step
    sigma = np.exp(log_sigma)

    # β | σ from the Cholesky factor L of the precision P = L Lᵀ: m = P⁻¹ h, β = m + L⁻ᵀ z
    prec0 = 1.0 / s0**2
    prec = (X.T @ X)[None, :, :] / sigma[:, None, None] ** 2 + np.diag(prec0)[None, :, :]
    L = np.linalg.cholesky(prec)
    h = (X.T @ y)[None, :] / sigma[:, None] ** 2 + (prec0 * m0)[None, :]
    mean = np.linalg.solve(prec, h[:, :, None])[:, :, 0]
    Lt = np.swapaxes(L, 1, 2)
    beta = mean + np.linalg.solve(Lt, rng.standard_normal(mean.shape)[:, :, None])[:, :, 0]
    return beta, sigma
