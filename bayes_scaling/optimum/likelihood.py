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

from bayes_scaling.math.student_t import t4_interval_logp, t4_logsf


def _open_edges(value, lo, hi):
    has_lo, has_hi = pt.isfinite(lo), pt.isfinite(hi)
    return has_lo, has_hi, pt.switch(has_lo, lo, value - 1.0), pt.switch(has_hi, hi, value + 1.0)


def interval_logp_pt(value: pt.TensorVariable, mu: pt.TensorVariable, sigma: pt.TensorVariable,
                     lo: pt.TensorVariable, hi: pt.TensorVariable) -> pt.TensorVariable:
    """log P(lo < z < hi), z ~ Normal(mu, sigma) (``value`` only fixes the shape)."""
    has_lo, has_hi, lo_safe, hi_safe = _open_edges(value, lo, hi)
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
