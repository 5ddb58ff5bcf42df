"""Posterior-predictive draws of an optimum at new (N, D) — pure NumPy over posterior draws.

For draw s and target t (centred logs x_N, x_D as in ``optimum_models``):

    log q*_st = a_s + b_s·x_N,t + c_{s,n(t)}·x_D,t [+ a_{s,n(t)}] + σ_s·ε_st

where, in the hierarchical model, c_{s,n} is the slope of model size n when N_t is one
of the fitted sizes, and a fresh population draw c_s + τ_c,s·ζ_st otherwise (same for
the offsets a_n). ``noise=False`` drops σ·ε (the law's mean; used for LOO refits).

:func:`observed_logp` scores the fitted cells themselves (the models' pointwise
log-likelihood, for LOO), in NumPy: it needs no compiled PyTensor function, which
costs seconds per model, more on a cold compile cache.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.stats import norm

from bayes_scaling.likelihood import interval_logp_np
from bayes_scaling.optimum_models import SIGMA_FLOOR, Centers
from bayes_scaling.runtable import QuantityData

#: A target N within this log distance of a fitted size uses that size's own slope.
SAME_N_ATOL = 1e-6


def stacked(posterior: xr.Dataset, name: str) -> np.ndarray:
    """Variable ``name`` with (chain, draw) flattened into the first axis."""
    v = posterior[name]
    return v.values.reshape((-1,) + v.shape[2:])


def latent_draws(
    posterior: xr.Dataset,
    centers: Centers,
    n_levels: np.ndarray,
    log_N: np.ndarray,
    log_D: np.ndarray,
    *,
    rng: np.random.Generator,
    noise: bool = True,
    paired: bool = False,
) -> np.ndarray:
    """Draws of log q* at the targets (log_N, log_D).

    Default: every draw at every target, shape (S, T). ``paired=True``: the targets
    have one entry per posterior draw (T = S) and draw s is evaluated at target s
    only, shape (S,) — for propagating another posterior's (N, D) draw by draw.
    """
    log_N = np.atleast_1d(np.asarray(log_N, dtype=float))
    log_D = np.atleast_1d(np.asarray(log_D, dtype=float))
    a, b, c = (stacked(posterior, k) for k in ("a", "b", "c"))
    S = a.shape[0]
    if paired and log_N.size != S:
        raise ValueError(f"paired prediction needs one target per draw ({S}), got {log_N.size}")
    # rows: draws; columns: targets (one column, the draw's own target, when paired)
    x_N = (log_N - centers.log_N)[:, None] if paired else (log_N - centers.log_N)[None, :]
    x_D = (log_D - centers.log_D)[:, None] if paired else (log_D - centers.log_D)[None, :]
    shape = (S, 1) if paired else (S, log_N.size)
    slope = np.broadcast_to(c[:, None], shape)
    offset = np.zeros(shape)
    if "c_n" in posterior:
        group = match_levels(log_N, n_levels)
        group = group[:, None] if paired else np.broadcast_to(group[None, :], shape)
        slope = _per_level(stacked(posterior, "c_n"), stacked(posterior, "tau_c"), c, group, rng)
        if "a_n" in posterior:
            offset = _per_level(stacked(posterior, "a_n"), stacked(posterior, "tau_a"), np.zeros(S), group, rng)
    mu = a[:, None] + b[:, None] * x_N + slope * x_D + offset
    if noise:
        mu = mu + stacked(posterior, "sigma")[:, None] * rng.standard_normal(shape)
    return mu[:, 0] if paired else mu


def match_levels(log_N: np.ndarray, n_levels: np.ndarray) -> np.ndarray:
    """Index of the fitted size equal to each target N, or -1 for a new size."""
    dist = np.abs(np.asarray(log_N)[:, None] - np.log(np.asarray(n_levels, dtype=float))[None, :])
    return np.where(dist.min(axis=1) < SAME_N_ATOL, dist.argmin(axis=1), -1)


def _per_level(per_level: np.ndarray, tau: np.ndarray, mean: np.ndarray, group: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """(S, T) per-target values: the fitted level's draw, or a fresh population draw."""
    S = per_level.shape[0]
    fresh = mean[:, None] + tau[:, None] * rng.standard_normal(group.shape)
    known = per_level[np.arange(S)[:, None], np.clip(group, 0, None)]
    return np.where(group >= 0, known, fresh)


def observed_logp(model: str, posterior: xr.Dataset, centers: Centers, n_levels: np.ndarray,
                  data: QuantityData, *, cell_probability: bool = True) -> np.ndarray:
    """log p_i(θ_s), shape (S, n): each posterior draw's log-likelihood of each observed cell.

    ``cell_probability=True``: log P(observed grid cell) = log(Φ((hi_i − μ_i)/s) − Φ((lo_i − μ_i)/s)),
    s = √(σ² + σ_sel²) for the censored models (their likelihood) and s = σ for ``pooled``;
    ``False``: the pooled model's own likelihood, the density log Normal(y_i | μ_i, σ).
    """
    mu = latent_draws(posterior, centers, n_levels, data.log_N, data.log_D, rng=np.random.default_rng(0), noise=False)
    sigma = stacked(posterior, "sigma")[:, None]
    if model == "pooled" and not cell_probability:
        return norm.logpdf(data.y[None, :], mu, sigma)
    if model != "pooled":
        sigma = np.sqrt(sigma**2 + SIGMA_FLOOR**2)
    return interval_logp_np(mu, sigma, data.lo[None, :], data.hi[None, :])


def summarize(draws: np.ndarray, ci_prob: float) -> dict[str, np.ndarray]:
    """Median, mean and equal-tailed ``ci_prob`` interval over axis 0."""
    tail = (1.0 - ci_prob) / 2.0
    lo, med, hi = np.quantile(draws, [tail, 0.5, 1.0 - tail], axis=0)
    return {"median": med, "mean": draws.mean(axis=0), "lo": lo, "hi": hi}
