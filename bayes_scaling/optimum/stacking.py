"""Stacking of predictive distributions (Yao et al. 2018), and the stacked (model-averaged) optimum.

Given each kind m's held-out log score of each unit k (a cell under LOO, a left-out model size
under leave-one-N-out), the stacking weights maximise the held-out score of the mixture:

    w = argmax_{w ∈ simplex}  Σ_k log Σ_m w_m exp(elpd_{m,k})

(unlike pseudo-BMA, ∝ exp(Σ_k elpd_{m,k}), they do not pile onto one model from a noisy
difference, and they reward kinds that are right where others are wrong). The stacked
prediction draws, for each posterior draw, from kind m with probability w_m.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from bayes_scaling.math.draws import summarize
from bayes_scaling.optimum.fit import OptimumFit


def stacking_weights(scores: np.ndarray) -> np.ndarray:
    """Weights (M,) maximising Σ_k log Σ_m w_m exp(scores[m, k]); ``scores`` is (M, K)."""
    scores = np.asarray(scores, dtype=float)
    M = scores.shape[0]
    if M == 1:
        return np.ones(1)
    shifted = scores - scores.max(axis=0, keepdims=True)      # per-unit shift: the argmax is unchanged

    def loss(z: np.ndarray) -> float:
        return -float(np.sum(logsumexp(shifted + np.log(softmax(np.append(z, 0.0)))[:, None], axis=0)))

    z = minimize(loss, np.zeros(M - 1), method="BFGS").x
    return softmax(np.append(z, 0.0))


class StackedFit:
    """The mixture of several kinds' predictives with stacking weights; predicts like an OptimumFit."""

    model = "stacked"
    bayesian = True

    def __init__(self, fits: dict[str, OptimumFit], weights: dict[str, float], basis: str) -> None:
        self.fits = {m: fits[m] for m in weights}
        self.weights = weights
        self.basis = basis
        self.quantity = next(iter(self.fits.values())).quantity

    def _components(self, n: int, rng: np.random.Generator) -> np.ndarray:
        names = list(self.weights)
        return rng.choice(len(names), size=n, p=np.array(list(self.weights.values())))

    def log_draws(self, N, D, *, seed: int = 0, noise: bool = True) -> np.ndarray:
        """Draws (S, T): each row from one kind, chosen with probability equal to its weight."""
        rng = np.random.default_rng(seed)
        parts = [f.log_draws(N, D, seed=seed, noise=noise) for f in self.fits.values()]
        S = min(p.shape[0] for p in parts)
        pick = self._components(S, rng)
        rows = rng.integers(0, S, size=S)
        return np.stack([parts[k][r] for k, r in zip(pick, rows)])

    def predict(self, N, D, *, ci_prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
        N = np.atleast_1d(np.asarray(N, dtype=float))
        D = np.atleast_1d(np.asarray(D, dtype=float))
        stats = summarize(np.exp(self.log_draws(N, D, seed=seed)), ci_prob)
        return pd.DataFrame({"model": self.model, "quantity": self.quantity, "N": N, "D": D, **stats, "ci_prob": ci_prob})

    def sample_paired(self, N, D, rng: np.random.Generator) -> np.ndarray:
        """One draw per (N[s], D[s]) from the mixture (propagation draw by draw, as ``OptimumFit``)."""
        N = np.atleast_1d(np.asarray(N, dtype=float))
        pick = self._components(N.size, rng)
        out = np.empty(N.size)
        for k, fit in enumerate(self.fits.values()):
            where = pick == k
            if where.any():
                out[where] = fit.sample_paired(N[where], np.atleast_1d(np.asarray(D, dtype=float))[where], rng)
        return out

    def describe(self) -> str:
        return ", ".join(f"{m} {w:.2f}" for m, w in sorted(self.weights.items(), key=lambda kv: -kv[1]) if w >= 0.005)
