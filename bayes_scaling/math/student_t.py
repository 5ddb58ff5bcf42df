"""Student-t with ν = 4 degrees of freedom in closed form, for NumPy (``xp=np``) or PyTensor (``xp=pt``).

ν = 4 is the heavy-tailed noise the project uses where a Normal would let one odd point
drag a fit (a run's loss in the surface model, a cell's optimum about its law): its
CDF needs no special function, so censoring costs nothing and gradients stay exact.

    log P(T > t)  = log((1−s)²(2+s)/4),  s = |t|/√(4+t²)   (upper tail; log1p of its
                    complement below 0), with 1−s = 4/(√(4+t²)(√(4+t²)+|t|)) computed
                    without cancellation
    log P(a < T < b) = log(P(T > a) − P(T > b)),  by the tail in which both are accurate
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

NU = 4.0


def t4_logsf(t, xp: ModuleType = np):
    """log P(T > t) for T ~ StudentT(ν=4), closed form and stable in both tails."""
    r = xp.sqrt(4.0 + t**2)
    one_minus_s = 4.0 / (r * (r + xp.abs(t)))
    upper = one_minus_s**2 * (3.0 - one_minus_s) / 4.0
    return xp.where(t >= 0, xp.log(upper), xp.log1p(-upper))


def t4_interval_logp(a, b, xp: ModuleType = np):
    """log P(a < T < b) for T ~ StudentT(ν=4), a < b (±inf allowed), as log S(lo) + log1p(−S(hi)/S(lo))
    with both survival functions S taken in the tail where they are small: (lo, hi) = (a, b) when
    the cell lies mostly above 0, else its mirror image (−b, −a) (T is symmetric)."""
    flip = a + b > 0                      # the cell lies mostly above 0: use the upper tail
    lo = xp.where(flip, a, -b)
    hi = xp.where(flip, b, -a)
    s_lo, s_hi = t4_logsf(lo, xp), t4_logsf(hi, xp)
    return s_lo + xp.log1p(-xp.exp(s_hi - s_lo))


def t4_logpdf(t, xp: ModuleType = np):
    """log density of StudentT(ν=4) at t: log(3/8) − (5/2)·log(1 + t²/4)."""
    return np.log(3.0 / 8.0) - 2.5 * xp.log1p(t**2 / 4.0)
