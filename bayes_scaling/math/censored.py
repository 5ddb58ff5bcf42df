"""Interval-censored Normal log-probability, stable in log space (NumPy).

A best grid value says only that the latent optimum z ~ Normal(μ, σ) fell in its grid
cell (lo, hi) (natural log; lo = −∞ / hi = +∞ for the edge cells):

    log p = log( Φ((hi − μ)/σ) − Φ((lo − μ)/σ) )

computed as log Φ(b) + log1mexp(log Φ(a) − log Φ(b)) with a = (lo−μ)/σ, b = (hi−μ)/σ,
reflected to (−b, −a) when a > 0 so both CDFs stay in their accurate lower tail; an open
cell reduces to log Φ(b) or log Φ(−a). Its PyTensor twin (for NUTS) is
``optimum.likelihood.interval_logp_pt``; ``tests/test_likelihood.py`` holds them equal.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr


def interval_logp(mu, sigma, lo, hi) -> np.ndarray:
    """log P(lo < z < hi) for z ~ Normal(mu, sigma), elementwise, broadcasting."""
    mu, sigma, lo, hi = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (mu, sigma, lo, hi)))
    a = (lo - mu) / sigma
    b = (hi - mu) / sigma
    flip = a > 0
    a2 = np.where(flip, -b, a)
    b2 = np.where(flip, -a, b)
    lb, la = log_ndtr(b2), log_ndtr(a2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return lb + np.log1p(-np.exp(la - lb))



def bvn_cdf(h, k, rho) -> np.ndarray:
    """Φ₂(h, k; ρ) = P(X < h, Y < k) for standard bivariate normal (X, Y) with correlation ρ (|ρ| < 1),
    by Owen's T: Φ₂ = ½Φ(h) + ½Φ(k) − T(h, a_h) − T(k, a_k) − β, a_h = (k − ρh)/(h√(1−ρ²)),
    a_k = (h − ρk)/(k√(1−ρ²)), β = ½ when h·k < 0 (Owen 1956); ±∞ limits handled."""
    from scipy.special import ndtr, owens_t

    h, k, rho = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (h, k, rho)))
    finite = np.isfinite(h) & np.isfinite(k)
    hf = np.where(finite, h, 1.0)
    kf = np.where(finite, k, 1.0)
    hf = np.where(hf == 0.0, 1e-12, hf)            # the formula's a → ±∞ at 0; T is continuous there
    kf = np.where(kf == 0.0, 1e-12, kf)
    root = np.sqrt(1.0 - rho**2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        body = (0.5 * ndtr(hf) + 0.5 * ndtr(kf) - owens_t(hf, (kf - rho * hf) / (hf * root))
                - owens_t(kf, (hf - rho * kf) / (kf * root)) - 0.5 * (hf * kf < 0))
    edge = np.where((h == -np.inf) | (k == -np.inf), 0.0,
                    np.where(h == np.inf, ndtr(np.where(np.isfinite(k), k, 50.0)), ndtr(np.where(np.isfinite(h), h, 50.0))))
    return np.where(finite, np.clip(body, 0.0, 1.0), edge)


def repeat_logp(mu, scale, rho, lo_old, hi_old, lo_new, hi_new) -> np.ndarray:
    """log P(u₂ ∈ (lo_new, hi_new) | u₁ ∈ (lo_old, hi_old)) for two looks u₁, u₂ ~ Normal(μ, scale) at one
    latent optimum, correlated ρ = σ²/scale² (they share the cell's scatter, not the selection jitter):
    the likelihood of re-sweeping a cell that was already swept. Rectangle of a bivariate normal over
    the single cell probability."""
    a1, b1 = (np.asarray(lo_old) - mu) / scale, (np.asarray(hi_old) - mu) / scale
    a2, b2 = (np.asarray(lo_new) - mu) / scale, (np.asarray(hi_new) - mu) / scale
    joint = bvn_cdf(b1, b2, rho) - bvn_cdf(a1, b2, rho) - bvn_cdf(b1, a2, rho) + bvn_cdf(a1, a2, rho)
    single = interval_logp(mu, scale, lo_old, hi_old)
    with np.errstate(divide="ignore"):
        return np.minimum(np.log(np.clip(joint, 1e-300, None)) - single, 0.0)
