"""PyTensor twins of the interval-censored log-probabilities in ``math`` (for NUTS).

A best grid value says only that the latent optimum fell in its grid cell (lo, hi), natural
log, ±∞ at the grid's edges. For z ~ Normal(μ, σ) (``math.censored.interval_logp``) and for
z = μ + σ·T, T ~ StudentT₄ (``math.student_t.t4_interval_logp``):

    log p = log( F((hi − μ)/σ) − F((lo − μ)/σ) )

Both use the "double where" trick: ±∞ edges are replaced by finite stand-ins and the open
cells switch to their one-sided formula, so gradients never see inf·0. The tests hold each
twin equal to its NumPy original, value and gradient.
"""

from __future__ import annotations

import pymc as pm
import pytensor.tensor as pt

from bayes_scaling.math.bivariate import Ops, pair_logp
from bayes_scaling.math.student_t import t4_interval_logp, t4_logsf


#: How far beyond the other bound an open edge's standardised bound is put: Φ(−40) ≈ 4e-350
#: underflows to 0 against any Φ(b), b ≥ −40 − |a|, so the open side adds nothing.
FAR = 40.0


def _open_edges(value, lo, hi):
    has_lo, has_hi = pt.isfinite(lo), pt.isfinite(hi)
    return has_lo, has_hi, pt.switch(has_lo, lo, value - 1.0), pt.switch(has_hi, hi, value + 1.0)


def interval_logp_pt(value: pt.TensorVariable, mu: pt.TensorVariable, sigma: pt.TensorVariable,
                     lo: pt.TensorVariable, hi: pt.TensorVariable) -> pt.TensorVariable:
    """log P(lo < z < hi), z ~ Normal(mu, sigma) (``value`` only fixes the shape).

    Two normal log-CDFs per cell, whatever its edges: an open edge's standardised bound is put
    ``FAR`` beyond the other bound (and beyond 0), where its CDF is below 1e-340 of the other's —
    exactly nothing in float64, value and gradient — so one formula serves closed and open cells."""
    has_lo, has_hi, lo_safe, hi_safe = _open_edges(value, lo, hi)
    a_fin = (lo_safe - mu) / sigma
    b_fin = (hi_safe - mu) / sigma
    a = pt.switch(has_lo, a_fin, pt.minimum(b_fin, 0.0) - FAR)
    b = pt.switch(has_hi, b_fin, pt.maximum(a_fin, 0.0) + FAR)
    flip = a > 0                       # both CDFs in their accurate lower tail
    std = pm.Normal.dist()
    return pm.math.logdiffexp(pm.logcdf(std, pt.switch(flip, -a, b)), pm.logcdf(std, pt.switch(flip, -b, a)))


def t4_interval_logp_pt(value: pt.TensorVariable, mu: pt.TensorVariable, sigma: pt.TensorVariable,
                        lo: pt.TensorVariable, hi: pt.TensorVariable) -> pt.TensorVariable:
    """log P(lo < z < hi), z = mu + sigma·T, T ~ StudentT(ν = 4) (``value`` only fixes the shape)."""
    has_lo, has_hi, lo_safe, hi_safe = _open_edges(value, lo, hi)
    a = (lo_safe - mu) / sigma
    b = (hi_safe - mu) / sigma
    both = t4_interval_logp(a, b, xp=pt)
    upper_open = t4_logsf(a, xp=pt)          # P(T > a)
    lower_open = t4_logsf(-b, xp=pt)         # P(T < b)
    return pt.switch(has_lo & has_hi, both, pt.switch(has_hi, lower_open, pt.switch(has_lo, upper_open, 0.0)))


def _max_logsumexp(v):
    top = pt.max(v, axis=-1, keepdims=True)
    return top[..., 0] + pt.log(pt.sum(pt.exp(v - top), axis=-1))


#: ``math.bivariate``'s array functions in PyTensor: Φ via erfc, Φ⁻¹ via erfcinv (both with gradients)
PYTENSOR = Ops(pt.switch, pt.isfinite, pt.clip, pt.sqrt, lambda x: 0.5 * pt.erfc(-x / 2.0**0.5),
               lambda p: -(2.0**0.5) * pt.erfcinv(2.0 * p), _max_logsumexp, pt.shape_padright,
               lambda mu, sigma, lo, hi: interval_logp_pt(mu, mu, sigma, lo, hi))


def pair_logp_pt(value: pt.TensorVariable, mu1, s1, lo1, hi1, mu2, s2, lo2, hi2, r) -> pt.TensorVariable:
    """log P(lo₁ < z₁ < hi₁, lo₂ < z₂ < hi₂), (z₁, z₂) Normal with means μ, scales s, correlation r
    (``math.bivariate.pair_logp``; ``value`` only fixes the shape)."""
    return pair_logp(mu1 + 0.0 * value, s1, lo1, hi1, mu2, s2, lo2, hi2, r, PYTENSOR)
