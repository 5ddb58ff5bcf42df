"""A Gaussian process through one sweep cell's losses, and the posterior of where its minimum lies.

    loss_i = m + f(x_i) + ε_i,   f ~ GP(0, k),   ε_i ~ Normal(0, σ_n),   x = (log η, log B)
    k(x, x') = s²·(1 + √3·r)·e^{−√3·r},   r = ‖(x − x') / ℓ‖   (Matérn-3/2, one length ℓ per axis)

The hyperparameters (ℓ_η, ℓ_B, s, σ_n, m) are set by maximising the marginal likelihood (type-II
maximum likelihood, a few L-BFGS starts), so the noise is the cell's own. The argmin is then
drawn: joint posterior draws of f on a grid over the box of the runs, and each draw's minimiser
(:func:`argmin_draws`). Its spread is the cell's uncertainty about its optimum — wide along a
flat valley, narrow across a sharp one — with no bowl shape assumed. Pure NumPy/SciPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Bounds of the hyperparameters, in natural-log units of (log η, log B) and nats of loss.
LENGTH_BOUNDS = (0.05, 20.0)
AMPLITUDE_BOUNDS = (1e-4, 2.0)
NOISE_BOUNDS = (2e-4, 0.05)
#: Starting length scales of the optimiser (the best of these starts is kept).
LENGTH_STARTS = (0.5, 1.0, 2.0)
#: Added to covariance diagonals so that Cholesky factors exist at near-duplicate points.
JITTER = 1e-9


def matern32(a: np.ndarray, b: np.ndarray, lengths: np.ndarray, amplitude: float) -> np.ndarray:
    """k(a_i, b_j) of the module docstring, shape (len(a), len(b))."""
    d = (a[:, None, :] - b[None, :, :]) / lengths
    r = np.sqrt(3.0 * np.sum(d**2, axis=-1))
    return amplitude**2 * (1.0 + r) * np.exp(-r)


@dataclass(frozen=True)
class CellGP:
    """A GP fitted to one cell's runs: inputs ``x`` (n, 2), losses ``y`` and the ML-II hyperparameters."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    amplitude: float
    noise: float
    mean: float

    def _factor(self) -> np.ndarray:
        k = matern32(self.x, self.x, self.lengths, self.amplitude)
        return np.linalg.cholesky(k + (self.noise**2 + JITTER) * np.eye(len(self.y)))

    def posterior(self, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (G,) and covariance (G, G) of f + m at the points ``grid`` (G, 2), noise-free."""
        chol = self._factor()
        cross = matern32(self.x, grid, self.lengths, self.amplitude)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, self.y - self.mean))
        v = np.linalg.solve(chol, cross)
        return self.mean + cross.T @ alpha, matern32(grid, grid, self.lengths, self.amplitude) - v.T @ v


def neg_log_marginal(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """−log p(y | θ), θ = (log ℓ_η, log ℓ_B, log s, log σ_n, m), up to the constant n/2·log 2π."""
    lengths, amplitude, noise, mean = np.exp(theta[:2]), np.exp(theta[2]), np.exp(theta[3]), theta[4]
    k = matern32(x, x, lengths, amplitude) + (noise**2 + JITTER) * np.eye(len(y))
    try:
        chol = np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        return 1e10
    z = np.linalg.solve(chol, y - mean)
    return float(0.5 * z @ z + np.log(np.diag(chol)).sum())


def fit_cell_gp(x: np.ndarray, y: np.ndarray) -> CellGP:
    """ML-II hyperparameters of the GP through (x, y): the best of :data:`LENGTH_STARTS` L-BFGS-B runs."""
    from scipy.optimize import minimize

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    log = np.log
    bounds = [(log(LENGTH_BOUNDS[0]), log(LENGTH_BOUNDS[1]))] * 2 + [
        (log(AMPLITUDE_BOUNDS[0]), log(AMPLITUDE_BOUNDS[1])), (log(NOISE_BOUNDS[0]), log(NOISE_BOUNDS[1])),
        (float(y.min()) - 1.0, float(y.max()) + 1.0)]
    best = None
    for start in LENGTH_STARTS:
        theta0 = np.array([log(start), log(start), log(float(np.clip(y.std(), 2e-3, 1.0))), log(2e-3), float(y.mean())])
        res = minimize(neg_log_marginal, theta0, args=(x, y), method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    t = best.x
    return CellGP(x, y, np.exp(t[:2]), float(np.exp(t[2])), float(np.exp(t[3])), float(t[4]))


def box_grid(x: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid (points², 2) over the bounding box of ``x``, the two axes' spacings)."""
    axes = [np.linspace(x[:, k].min(), x[:, k].max(), points) for k in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    return grid, np.array([a[1] - a[0] if points > 1 else 0.0 for a in axes])


def _cholesky(cov: np.ndarray, scale: float) -> np.ndarray:
    """Cholesky factor of a posterior covariance, with a jitter of 1e-8·``scale`` raised ×10 until it exists."""
    eye = np.eye(len(cov))
    for power in range(-8, -2):
        try:
            return np.linalg.cholesky(cov + 10.0**power * scale * eye)
        except np.linalg.LinAlgError:
            continue
    raise np.linalg.LinAlgError("the GP posterior covariance is not positive definite")


def argmin_draws(gp: CellGP, *, draws: int = 400, points: int = 30,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(draws (S, 2) of the minimiser of f over the runs' box, draws (S,) of the minimum m + f there,
    the grid's spacings (2,)): joint posterior draws of f on a ``points`` × ``points`` grid."""
    rng = rng or np.random.default_rng(0)
    grid, spacing = box_grid(gp.x, points)
    mean, cov = gp.posterior(grid)
    chol = _cholesky(cov, gp.amplitude**2)
    f = mean[None, :] + rng.standard_normal((draws, len(grid))) @ chol.T
    at = f.argmin(axis=1)
    return grid[at], f[np.arange(draws), at], spacing
