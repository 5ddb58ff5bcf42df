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

