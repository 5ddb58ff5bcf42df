"""Cross-validation that asks the extrapolation question: refit without a model size, or without
the longest runs, and score the cells left out.

Folds (over a best-runs table of one optimum):

* ``lono``        leave-one-N-out: one fold per model size (the question "what about a new N?");
* ``largest-n``   the largest model size (the one ``lono`` fold a user extrapolates from);
* ``largest-d``   every size's largest-D cell at once, for sizes with ≥ 2 cells (extrapolation in D).

A fold refits the kind on the training cells — the N levels are kept whole, so a left-out size's
own parameters (a per-N slope) fall back to what the model says of a size without data — and
scores the held-out block jointly, as the probability of its observed grid cells:

    elpd_k = log (1/S) Σ_s Π_{i ∈ fold k} p_i(θ_s^(−k)),       p_i = P(observed cell i | θ)

(one number per fold: cells of one size share that size's unknown slope, so they are not
scored as if independent). Each held-out cell also gets its predictive check: whether the
``ci_prob`` interval of the best-run draws (``OptimumSpec.observation_draws``) overlaps the
observed grid cell (``overlaps``) and contains the observed grid value (``contains``, stricter:
the grid value is the cell's centre, not the optimum), and that interval's width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayes_scaling.inputs.runtable import QuantityData
from bayes_scaling.math.draws import quantiles
from bayes_scaling.optimum.fit import Fitter, OptimumFit
from bayes_scaling.progress import steps

SCHEMES = ("lono", "largest-n", "largest-d")


def folds(data: QuantityData, scheme: str) -> list[tuple[str, np.ndarray]]:
    """(fold name, held-out mask over cells) of one scheme; empty where the scheme has no fold."""
    N, D = np.exp(data.log_N), np.exp(data.log_D)
    levels = np.unique(np.round(data.log_N, 9))
    if scheme == "lono":
        return [(f"N={np.exp(x):.3g}", np.isclose(data.log_N, x)) for x in levels]
    if scheme == "largest-n":
        return [(f"N={N.max():.3g}", np.isclose(data.log_N, levels[-1]))]
    if scheme == "largest-d":
        held = np.zeros(N.size, dtype=bool)
        for x in levels:
            idx = np.flatnonzero(np.isclose(data.log_N, x))
            if idx.size >= 2:
                held[idx[np.argmax(D[idx])]] = True
        return [("largest D per N", held)] if held.any() else []
    raise ValueError(f"unknown cross-validation scheme {scheme!r}; choose from {SCHEMES}")


@dataclass(frozen=True)
class FoldScore:
    """One kind on one fold: the block's elpd and, per held-out cell, the predictive check."""

    scheme: str
    fold: str
    elpd: float
    cells: pd.DataFrame       # N, D, p_cell, overlaps, width (hi/lo of the ci_prob interval)


def score_fold(fit: OptimumFit, data: QuantityData, fitter: Fitter, held: np.ndarray, *, scheme: str, fold: str,
               ci_prob: float = 0.9, seed: int = 0) -> FoldScore:
    """Refit ``fit``'s kind without the ``held`` cells; score them (see the module docstring)."""
    train, test = data.subset(~held), data.subset(held)
    post = fitter.refit_posterior(fit.model, train, fit.centers)
    ll = fit.spec.cell_logp(post, fit.centers, fit.n_levels, test)                 # (S, n_held)
    elpd = float(logsumexp(ll.sum(axis=1)) - np.log(ll.shape[0]))
    draws = fit.spec.observation_draws(post, fit.centers, fit.n_levels, test.log_N, test.log_D,
                                       rng=np.random.default_rng(seed))
    _, lo, hi = quantiles(draws, ci_prob)
    cells = pd.DataFrame({"N": np.exp(test.log_N), "D": np.exp(test.log_D),
                          "p_cell": np.exp(logsumexp(ll, axis=0) - np.log(ll.shape[0])),
                          "overlaps": (hi >= test.lo) & (lo <= test.hi), "contains": (lo <= test.y) & (test.y <= hi),
                          "width": np.exp(hi - lo)})
    return FoldScore(scheme, fold, elpd, cells)


def cross_validate(fit: OptimumFit, data: QuantityData, fitter: Fitter, schemes: tuple[str, ...] = SCHEMES, *,
                   ci_prob: float = 0.9) -> list[FoldScore]:
    """Every fold of every scheme for one fitted kind (a ``largest-n`` fold reuses its ``lono`` twin)."""
    scores: list[FoldScore] = []
    done: dict[bytes, FoldScore] = {}
    todo = [(scheme, fold, held) for scheme in schemes for fold, held in folds(data, scheme)
            if len(np.unique(np.round(data.log_N[~held], 9))) >= 2]     # one size left: no law in N to test
    with steps(len({h.tobytes() for _, _, h in todo}), f"{fit.model}/{data.name}: cross-validation refits") as tick:
        for scheme, fold, held in todo:
            key = held.tobytes()
            if key not in done:
                done[key] = score_fold(fit, data, fitter, held, scheme=scheme, fold=fold, ci_prob=ci_prob)
                tick(f"{scheme} {fold}")
            scores.append(FoldScore(scheme, fold, done[key].elpd, done[key].cells))
    return scores
