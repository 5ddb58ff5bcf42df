"""The loss bowl of one sweep cell around its optimum, for NumPy (``xp=np``) or PyTensor (``xp=pt``).

At offsets u = log η − log η*, v = log B − log B* from the cell's optimum:

    f(u, v) = s·½(h_η ũ² + 2ρ√(h_η h_B) ũṽ + h_B ṽ²),
    ũ = sign(u)·√g_η(u),   g(u) = 2(e^{βu} − 1 − βu)/β²   (and ṽ likewise with β_B),

quadratic at its minimum (curvatures h > 0, |ρ| < 1: positive definite in (ũ, ṽ); ũ is
monotone in u) and asymmetric through the LINEX transform g: for β > 0 the loss rises
exponentially above the optimum (the divergence cliff of a too-high learning rate) and only
linearly below it.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np


def bowl(u, v, s, h, rho, beta, xp: ModuleType = np):
    """f(u, v) of the module docstring. ``h`` and ``beta`` are pairs (η, B); every argument broadcasts."""
    ut, vt = linex_root(u, beta[0], xp), linex_root(v, beta[1], xp)
    return 0.5 * s * (h[0] * ut**2 + 2.0 * rho * xp.sqrt(h[0] * h[1]) * ut * vt + h[1] * vt**2)


def linex_root(u, beta, xp: ModuleType = np):
    """sign(u)·√g(u), g(u) = 2(e^{βu} − 1 − βu)/β²: ≈ u near 0, monotone, smooth."""
    beta = xp.where(xp.abs(beta) < 1e-6, 1e-6, beta)
    x = beta * u
    return xp.sign(u) * xp.sqrt(2.0 * xp.maximum(xp.expm1(x) - x, 0.0)) / xp.abs(beta)
