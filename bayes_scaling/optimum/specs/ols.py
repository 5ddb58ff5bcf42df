"""``ols`` — the baseline everyone uses: least squares of log q on log N and log D, with a row bootstrap.

    log q_i = β0 + β1·log N_i + β2·log D_i + e_i          (least squares on the best grid values)

A prediction is the fitted line of one of ``n_boot`` resamples of the cells (rows) with
replacement — the blog's recipe for the line's uncertainty — plus a residual e drawn from the
full fit's residuals inflated by √(n/(n − 3)) (the residual bootstrap): a *prediction* interval of
a cell's optimum, comparable to the Bayesian kinds' (law + scatter), where the blog's interval is
the line's alone. Its draws are kept like a posterior (one chain, ``n_boot`` draws of a, b, c on
the centred scale; the residuals in its attributes), so the baseline predicts, reports and saves
through the same code as every Bayesian kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bayes_scaling.optimum.spec import Centers, OptimumSpec, register

if TYPE_CHECKING:
    import xarray as xr

    from bayes_scaling.inputs.runtable import QuantityData
    from bayes_scaling.optimum.fit import Fitter

N_BOOT = 10_000


@dataclass(frozen=True)
class OLSFit:
    """Point coefficients (β0, β1, β2) and their bootstrap replicates (n_boot, 3), raw logs."""

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


def _centred(coef: np.ndarray, centers: Centers) -> dict[str, np.ndarray]:
    """Raw (β0, β1, β2) → the centred law's (a, b, c): a = β0 + β1·m_N + β2·m_D."""
    coef = np.atleast_2d(coef)
    return {"a": coef[:, 0] + coef[:, 1] * centers.log_N + coef[:, 2] * centers.log_D,
            "b": coef[:, 1], "c": coef[:, 2]}


@register
class OLS(OptimumSpec):
    name = "ols"
    summary = ("log q* = β0 + β1 log N + β2 log D by least squares on the best grid values; "
               "interval from 10,000 row-bootstrap refits (the usual baseline)")
    formula = "log q_i = β0 + β1·log N_i + β2·log D_i + e_i (least squares; row bootstrap)"
    style = {"color": "0.3", "ls": "--"}
    default = True
    bayesian = False
    trace_vars = ()
    interval = ("prediction interval: the least-squares line of a resampled set of cells (row bootstrap) "
                "+ a resampled residual ×√(n/(n−3))")

    def priors(self):
        """Least squares has no priors."""
        return {}

    def scatter(self, posterior, rng, shape):
        """A residual of the full fit, resampled, inflated by √(n/(n − 3)) (zero for n ≤ 3 cells)."""
        residuals = np.asarray(posterior.attrs.get("residuals", [0.0]), dtype=float)
        return rng.choice(residuals, size=shape)

    def fit(self, data: QuantityData, centers: Centers, fitter: Fitter):
        import xarray as xr

        ols = fit_ols(data, n_boot=fitter.n_boot, seed=fitter.config.seed)
        draws = _centred(ols.boot_coef, centers)
        n = len(data.y)
        resid = (data.y - ols.predict_log(data.log_N, data.log_D)[0]) * (np.sqrt(n / (n - 3)) if n > 3 else 0.0)
        post = xr.Dataset({k: (("chain", "draw"), v[None, :]) for k, v in draws.items()},
                          coords={"chain": [0], "draw": np.arange(len(ols.boot_coef))},
                          attrs={"residuals": resid.tolist()})
        tree = xr.DataTree.from_dict({"posterior": post})
        tree.attrs["ols_point"] = json.dumps([float(v[0]) for v in _centred(ols.coef, centers).values()])
        return tree, None

    def point(self, idata: xr.DataTree, centers: Centers, log_N: np.ndarray, log_D: np.ndarray) -> np.ndarray:
        """The full-data least-squares line at the targets (the "OLS point" everyone quotes)."""
        a, b, c = json.loads(idata.attrs["ols_point"])
        return a + b * (np.asarray(log_N) - centers.log_N) + c * (np.asarray(log_D) - centers.log_D)
