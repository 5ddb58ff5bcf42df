"""The baseline everyone uses: OLS of log q on log N and log D, with a row bootstrap.

    log q_i = β0 + β1·log N_i + β2·log D_i + e_i          (least squares)

The interval of a prediction is the percentile interval of the fitted line over
``n_boot`` resamples of the cells (rows) with replacement — the blog's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_scaling.runtable import QuantityData

N_BOOT = 10_000


@dataclass(frozen=True)
class OLSFit:
    """Point coefficients (β0, β1, β2) and their bootstrap replicates (n_boot, 3)."""

    coef: np.ndarray
    boot_coef: np.ndarray

    def predict_log(self, log_N: np.ndarray, log_D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point prediction (T,), bootstrap predictions (n_boot, T)) of log q."""
        X = _design(np.atleast_1d(log_N), np.atleast_1d(log_D))
        return X @ self.coef, self.boot_coef @ X.T


def _design(log_N: np.ndarray, log_D: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(log_N, dtype=float), log_N, log_D])


def fit_ols(data: QuantityData, *, n_boot: int = N_BOOT, seed: int = 0) -> OLSFit:
    """OLS on the best grid values and ``n_boot`` row-bootstrap refits (vectorised).

    A resample whose design is rank-deficient (e.g. a single N drawn) is solved by
    the pseudo-inverse, i.e. the minimum-norm least-squares solution.
    """
    X = _design(data.log_N, data.log_D)
    y = data.y
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    Xb, yb = X[idx], y[idx]                       # (R, n, 3), (R, n)
    boot = np.einsum("rij,rj->ri", np.linalg.pinv(Xb), yb)
    return OLSFit(coef=coef, boot_coef=boot)
