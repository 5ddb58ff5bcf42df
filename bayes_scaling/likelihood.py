"""Interval-censored Normal log-likelihood, stable in log space, in NumPy and PyTensor.

A best grid value says only that the latent optimum z ~ Normal(μ, σ) fell in its
grid cell (lo, hi) (natural log; lo = −∞ / hi = +∞ for the edge cells):

    log p = log( Φ((hi − μ)/σ) − Φ((lo − μ)/σ) )

Computed as log Φ(b) + log1mexp(log Φ(a) − log Φ(b)) with a = (lo−μ)/σ, b = (hi−μ)/σ,
reflected to (−b, −a) when a > 0 so both CDFs stay in their accurate lower tail; an
open cell reduces to log Φ(b) or log Φ(−a). The PyTensor version uses the
"double where" trick (finite stand-ins for ±∞) so gradients never see inf·0.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import log_ndtr


def interval_logp_np(mu: np.ndarray, sigma: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
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


def interval_logp_pt(value: pt.TensorVariable, mu: pt.TensorVariable, sigma: pt.TensorVariable,
                     lo: pt.TensorVariable, hi: pt.TensorVariable) -> pt.TensorVariable:
    """PyTensor twin of :func:`interval_logp_np` (``value`` only fixes the shape)."""
    has_lo, has_hi = pt.isfinite(lo), pt.isfinite(hi)
    lo_safe = pt.switch(has_lo, lo, value - 1.0)
    hi_safe = pt.switch(has_hi, hi, value + 1.0)
    a = (lo_safe - mu) / sigma
    b = (hi_safe - mu) / sigma
    flip = a > 0
    a2 = pt.switch(flip, -b, a)
    b2 = pt.switch(flip, -a, b)
    std = pm.Normal.dist()
    both = pm.math.logdiffexp(pm.logcdf(std, b2), pm.logcdf(std, a2))
    upper_open = pm.logcdf(std, -a)
    lower_open = pm.logcdf(std, b)
    return pt.switch(has_lo & has_hi, both, pt.switch(has_hi, lower_open, pt.switch(has_lo, upper_open, 0.0)))
