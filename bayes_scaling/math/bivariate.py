"""The probability that a bivariate Normal falls in a rectangle, in log space: the likelihood of one
(N, D) cell's two grid cells (η* and B*) when the two optima scatter about their laws together.

For standardised bounds (±∞ at open grid edges) and correlation r:

    log P(a₁ < X < b₁, a₂ < Y < b₂) = log P(a₁ < X < b₁) + log E[ P(a₂ < Y < b₂ | X) ]
    Y | X = t ~ Normal(r·t, √(1 − r²)),  X ~ Normal(0, 1) truncated to (a₁, b₁)

X is the coordinate whose own cell is the less probable (the tighter constraint goes first, as in
the GHK simulator: otherwise a wide X cell leaves the nodes far from where a tail Y cell's mass is).
The expectation is a Gauss–Legendre sum (nodes clustered at both ends) over the truncated Normal's
quantile u ∈ (0, 1), t(u) = Φ⁻¹(Φ(a₁) + u·(Φ(b₁) − Φ(a₁))), in which the integrand is smooth even
when the cell lies far in a tail (a fixed grid of t-nodes misses the mass piled against the nearer edge). The X cell is
mirrored to (−b₁, −a₁), with r → −r, when it lies above 0, so that Φ(a₁) ≤ ½ and the quantiles stay
in Φ's accurate lower tail; bounds are clipped to ±CLIP (Φ(−35) ≈ 1e−268 is still a float).

One function serves NumPy (``NUMPY``) and PyTensor (``optimum.likelihood.PYTENSOR``, for NUTS):
``Ops`` names the few array functions it needs. ``tests/test_joint.py`` holds it to Owen's-T
exact rectangles (``math.censored.bvn_cdf``) and the two backends to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from bayes_scaling.math.censored import interval_logp

#: Gauss–Legendre nodes of the expectation (tests, |r| ≤ 0.95: |error| < 2e−5 in log-probability where
#: P > e⁻⁵, < 5e−4 down to P = e⁻²⁷)
NODES = 16
CLIP = 35.0
_X, _W = np.polynomial.legendre.leggauss(NODES)
_V, _WV = (_X + 1.0) / 2.0, _W / 2.0
#: u = v²(3 − 2v) on the Gauss–Legendre nodes v: clusters them at u = 0 and 1, where an open cell's
#: t(u) runs off to ±∞ (without it the error falls only algebraically with the nodes: 32 gave 2e−4)
U_NODES, LOG_WEIGHTS = _V**2 * (3.0 - 2.0 * _V), np.log(_WV * 6.0 * _V * (1.0 - _V))


@dataclass(frozen=True)
class Ops:
    """The array functions ``rectangle_logp`` uses, for one backend."""

    where: Callable
    isfinite: Callable
    clip: Callable
    sqrt: Callable
    ndtr: Callable            # Φ
    ndtri: Callable           # Φ⁻¹
    logsumexp: Callable       # over the last axis
    expand: Callable          # x[..., None]
    interval: Callable        # (μ, σ, lo, hi) ↦ log P(lo < Normal(μ, σ) < hi), ±∞ bounds allowed


NUMPY = Ops(np.where, np.isfinite, np.clip, np.sqrt, ndtr, ndtri, lambda v: logsumexp(v, axis=-1),
            lambda x: np.asarray(x)[..., None], interval_logp)


def standardize(bound, mu, scale, ops: Ops = NUMPY):
    """(bound − μ)/scale, keeping ±∞ bounds infinite without an ∞ in any gradient (the double where)."""
    finite = ops.isfinite(bound)
    return ops.where(finite, (ops.where(finite, bound, 0.0) - mu) / scale, bound)


def rectangle_logp(a1, b1, a2, b2, r, ops: Ops = NUMPY):
    """log P(a₁ < X < b₁, a₂ < Y < b₂) for a standard bivariate Normal (X, Y) with correlation r
    (|r| < 1), elementwise over broadcast inputs; bounds standardised (``standardize``), ±∞ allowed."""
    swap = ops.interval(0.0, 1.0, a2, b2) < ops.interval(0.0, 1.0, a1, b1)
    a1, b1, a2, b2 = ops.where(swap, a2, a1), ops.where(swap, b2, b1), ops.where(swap, a1, a2), ops.where(swap, b1, b2)
    flip = a1 > 0
    lo1, hi1 = ops.where(flip, -b1, a1), ops.where(flip, -a1, b1)
    r = ops.where(flip, -r, r)
    first = ops.interval(0.0, 1.0, lo1, hi1)
    p_lo, p_hi = ops.ndtr(ops.clip(lo1, -CLIP, CLIP)), ops.ndtr(ops.clip(hi1, -CLIP, CLIP))
    t = ops.clip(ops.ndtri(ops.expand(p_lo) + U_NODES * ops.expand(p_hi - p_lo)), -CLIP, CLIP)
    mean = ops.expand(r) * t
    given = ops.interval(mean, ops.expand(ops.sqrt(1.0 - r**2)), ops.expand(a2) + 0.0 * t, ops.expand(b2) + 0.0 * t)
    return first + ops.logsumexp(LOG_WEIGHTS + given)


def pair_logp(mu1, s1, lo1, hi1, mu2, s2, lo2, hi2, r, ops: Ops = NUMPY):
    """log P(lo₁ < z₁ < hi₁, lo₂ < z₂ < hi₂) for (z₁, z₂) Normal with means μ, scales s and correlation r:
    one cell's two grid cells, natural-log bounds (±∞ at the grid's edges)."""
    return rectangle_logp(standardize(lo1, mu1, s1, ops), standardize(hi1, mu1, s1, ops),
                          standardize(lo2, mu2, s2, ops), standardize(hi2, mu2, s2, ops), r, ops)
