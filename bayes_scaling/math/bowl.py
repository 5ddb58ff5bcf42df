"""Loss bowls of one sweep cell around its optimum, for NumPy (``xp=np``) or PyTensor (``xp=pt``).

At offsets u = log η − log η*, v = log B − log B* from the cell's optimum:

    valley_bowl:  f(u, v) = ½ h_η·e^{κ_η·sign(u')}·u'² + ½ h_B·e^{κ_B·sign(v)}·v²,   u' = u − k₁v − k₂v²

— the surface model's bowl: a *curved* valley, whose best log η at batch offset v is k₁v + k₂v²
(concave in log B for k₂ < 0, as every StepLaw cell is), and along each axis a curvature that
differs by e^{2κ} between the two sides of the minimum (StepLaw: half a grid step up in η costs
several times what half a step down does). f is C¹ (its gradient is continuous at the minimum).

    bowl:  f(u, v) = s·½(h_η ũ² + 2ρ√(h_η h_B) ũṽ + h_B ṽ²),   ũ = sign(u)·√g(u; β_η), ṽ likewise,
           g(x; β) = 2(e^{βx} − 1 − βx)/β²

— the straight-valley LINEX bowl with one correlation ρ (what ``evaluation.calibration``
simulates): quadratic at its minimum, for β > 0 exponential above it and linear below.
Both are 0 at (0, 0) and positive elsewhere (h > 0, |ρ| < 1).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np


def valley_bowl(u, v, h, kappa, k1, k2, xp: ModuleType = np):
    """f(u, v) of the curved valley (module docstring). ``h`` and ``kappa`` are pairs (η, B); every
    argument broadcasts."""
    w = u - k1 * v - k2 * v**2
    return 0.5 * (h[0] * xp.exp(kappa[0] * xp.sign(w)) * w**2 + h[1] * xp.exp(kappa[1] * xp.sign(v)) * v**2)


def bowl(u, v, s, h, rho, beta, xp: ModuleType = np):
    """f(u, v) of the straight-valley bowl (module docstring). ``h`` and ``beta`` are pairs (η, B)."""
    ut, vt = linex_root(u, beta[0], xp), linex_root(v, beta[1], xp)
    return 0.5 * s * (h[0] * ut**2 + 2.0 * rho * xp.sqrt(h[0] * h[1]) * ut * vt + h[1] * vt**2)


def linex_root(u, beta, xp: ModuleType = np):
    """sign(u)·√g(u), g(u) = 2(e^{βu} − 1 − βu)/β²: ≈ u near 0, monotone, smooth."""
    beta = xp.where(xp.abs(beta) < 1e-6, 1e-6, beta)
    x = beta * u
    return xp.sign(u) * xp.sqrt(2.0 * xp.maximum(xp.expm1(x) - x, 0.0)) / xp.abs(beta)
