"""Comparison of the optimum kinds on one common outcome — which grid cell won — by LOO
(interpolation) and by leave-one-N-out and its kin (extrapolation, ``optimum.crossval``),
weighted by stacking (``optimum.stacking``), with a recommendation.

The pooled model has a density for log q while the censored models give each cell a
probability, so their log-likelihoods live on different scales. We score every model
on the discrete outcome, the probability of the observed cell,

    p_i(θ) = Φ((hi_i − μ_i)/s) − Φ((lo_i − μ_i)/s),

each kind's own ``cell_logp`` (s = σ for ``pooled``, s = √(σ² + σ_sel²) for the censored
kinds, for which this *is* their likelihood). PSIS-LOO (Vehtari et al. 2017) supplies the leave-one-out
importance weights w_is ∝ 1/p(y_i | θ_s) of each model's own fitted likelihood; then

    elpd_i = log Σ_s w_is p_i(θ_s) / Σ_s w_is.

Where the Pareto k of a point exceeds ``K_THRESHOLD`` the importance weights are not
trustworthy and we refit the model without that point (exact LOO):
elpd_i = log mean_s p_i(θ_s^(−i)). The table says how many points were refitted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayes_scaling.inference.config import MAX_REFITS
from bayes_scaling.inputs.runtable import QuantityData
from bayes_scaling.optimum.crossval import SCHEMES, cross_validate
from bayes_scaling.optimum.fit import Fitter, OptimumFit
from bayes_scaling.optimum.stacking import StackedFit, stacking_weights
from bayes_scaling.progress import steps

K_THRESHOLD = 0.7


def cell_loglik(fit: OptimumFit, data: QuantityData, posterior=None) -> np.ndarray:
    """log p_i(θ_s), shape (S, n): each draw's probability of each observed grid cell."""
    post = fit.posterior if posterior is None else posterior
    return fit.spec.cell_logp(post, fit.centers, fit.n_levels, data)


def loo_cells(fit: OptimumFit, data: QuantityData, fitter: Fitter | None = None,
              max_refits: int = MAX_REFITS) -> dict[str, object]:
    """Pointwise LOO elpd of the observed cells, with exact refits where Pareto k is high."""
    with warnings.catch_warnings():  # high Pareto k is handled (and reported) below
        warnings.simplefilter("ignore")
        loo = azs.loo(fit.idata, pointwise=True)
    k = np.asarray(loo.pareto_k).ravel()
    log_w = loo.log_weights.transpose("chain", "draw", ...).values
    log_w = log_w.reshape(-1, log_w.shape[-1])            # (S, n), draws flattened
    ll = cell_loglik(fit, data)
    elpd_i = logsumexp(log_w + ll, axis=0) - logsumexp(log_w, axis=0)
    lppd_i = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    high = np.flatnonzero(k > K_THRESHOLD)
    refit = high[np.argsort(-k[high])][:max_refits] if fitter is not None else np.array([], dtype=int)
    with steps(len(refit), f"{fit.model}/{data.name}: exact LOO refits") as tick:
        for i in refit:
            keep = np.ones(len(data.y), dtype=bool)
            keep[i] = False
            post = fitter.refit_posterior(fit.model, data.subset(keep), fit.centers)
            ll_i = cell_loglik(fit, data.subset(~keep), posterior=post)[:, 0]
            elpd_i[i] = logsumexp(ll_i) - np.log(ll_i.size)
            tick(data.cell[i])
    return {"elpd_i": elpd_i, "lppd_i": lppd_i, "pareto_k": k, "n_high_k": int(high.size), "refit": refit}


@dataclass
class Comparison:
    """The kinds of one optimum compared: the table, every held-out cell's check, the recommendation."""

    table: pd.DataFrame
    held_out: pd.DataFrame
    recommended: str
    reason: str
    stacked: StackedFit | None


@dataclass
class KindScores:
    """One kind's held-out scores on one optimum: LOO per cell and the cross-validation folds —
    everything ``aggregate`` needs, computable on its own (in a worker process)."""

    loo: dict
    folds: list


def score(fit: OptimumFit, data: QuantityData, fitter: Fitter | None = None, max_refits: int = MAX_REFITS, *,
          cv: tuple[str, ...] = SCHEMES, ci_prob: float = 0.9) -> KindScores:
    """LOO of the observed cells (exact refits where Pareto k is high) and every ``cv`` fold."""
    folds_ = cross_validate(fit, data, fitter, cv, ci_prob=ci_prob) if cv and fitter is not None else []
    return KindScores(loo_cells(fit, data, fitter, max_refits), folds_)


def compare(fits: dict[str, OptimumFit], data: QuantityData, fitter: Fitter | None = None,
            max_refits: int = MAX_REFITS, *, cv: tuple[str, ...] = SCHEMES, ci_prob: float = 0.9) -> Comparison:
    """``aggregate`` of every kind's ``score`` (see there)."""
    return aggregate(fits, data, {m: score(f, data, fitter, max_refits, cv=cv, ci_prob=ci_prob) for m, f in fits.items()})


def aggregate(fits: dict[str, OptimumFit], data: QuantityData, scored: dict[str, KindScores]) -> Comparison:
    """Rank Bayesian kinds of one quantity by LOO (interpolation) and by leave-one-N-out,
    leave-largest-N-out and leave-largest-D-out (extrapolation); weight them by stacking.

    Table columns: quantity, model, rank (by LOO), elpd_loo, se, elpd_diff, dse, p_loo, weight
    (LOO stacking), n_high_k, n_refit, method, and with ``cv``: lono_elpd, lono_se, lono_diff,
    lono_dse, lono_weight (stacking over left-out sizes), largest_n_elpd, largest_d_elpd,
    cover_largest_n, cover_largest_d (share of held-out cells whose ``ci_prob`` interval overlaps
    the observed grid cell), hit_largest_n, hit_largest_d (… contains the observed grid value) and
    width_largest_n (median width hi/lo there).

    The recommendation, for extrapolation to a new N: the kind with leave-one-N-out stacking
    weight ≥ RECOMMEND_ALONE, else the stacked mixture of the kinds with weight ≥ 0.01 (LOO's
    weights when ``cv`` is empty or no fold could be refitted).
    """
    names = list(fits)
    res = {name: scored[name].loo for name in names}
    n = len(data.y)
    elpd = {m: float(r["elpd_i"].sum()) for m, r in res.items()}
    best = max(elpd, key=elpd.get)
    loo_w = stacking_weights(np.array([res[m]["elpd_i"] for m in names]))
    rows = []
    for m, w in zip(names, loo_w):
        r = res[m]
        diff_i = r["elpd_i"] - res[best]["elpd_i"]
        n_refit = len(r["refit"])
        left = r["n_high_k"] - n_refit
        method = "psis-loo" if r["n_high_k"] == 0 else f"psis-loo + exact refit of {n_refit} point(s) with k>{K_THRESHOLD}"
        if left > 0:
            method += f"; {left} high-k point(s) NOT refitted (PSIS estimate kept)"
        rows.append({
            "quantity": data.name, "model": m,
            "elpd_loo": elpd[m], "se": float(np.sqrt(n * np.var(r["elpd_i"]))),
            "elpd_diff": elpd[m] - elpd[best], "dse": float(np.sqrt(n * np.var(diff_i))),
            "p_loo": float(r["lppd_i"].sum() - elpd[m]), "weight": float(w),
            "n_high_k": r["n_high_k"], "n_refit": n_refit, "method": method,
        })
    table = pd.DataFrame(rows)
    held = pd.DataFrame()
    lono_w = None
    scores = {m: scored[m].folds for m in names}
    if any(scores.values()):
        held = pd.concat([f.cells.assign(quantity=data.name, model=m, scheme=f.scheme, fold=f.fold, fold_elpd=f.elpd)
                          for m, fs in scores.items() for f in fs], ignore_index=True)
        lono = {m: np.array([f.elpd for f in fs if f.scheme == "lono"]) for m, fs in scores.items()}
        if all(v.size for v in lono.values()):
            lono_w = stacking_weights(np.array([lono[m] for m in names]))
            top = max(names, key=lambda m: lono[m].sum())
            K = lono[top].size
            table["lono_elpd"] = [float(lono[m].sum()) for m in names]
            table["lono_se"] = [float(np.sqrt(K * np.var(lono[m]))) for m in names]
            table["lono_diff"] = table["lono_elpd"] - float(lono[top].sum())
            table["lono_dse"] = [float(np.sqrt(K * np.var(lono[m] - lono[top]))) for m in names]
            table["lono_weight"] = lono_w
        for scheme in ("largest-n", "largest-d"):
            key = scheme.replace("-", "_")
            folds_ = {m: [f for f in scores[m] if f.scheme == scheme] for m in names}
            cells = {m: pd.concat([f.cells for f in fs]) if fs else None for m, fs in folds_.items()}
            table[f"{key}_elpd"] = [sum(f.elpd for f in folds_[m]) if folds_[m] else np.nan for m in names]
            for col, check in ((f"cover_{key}", "overlaps"), (f"hit_{key}", "contains")):
                table[col] = [float(cells[m][check].mean()) if cells[m] is not None else np.nan for m in names]
            if scheme == "largest-n":
                table["width_largest_n"] = [float(cells[m]["width"].median()) if cells[m] is not None else np.nan
                                            for m in names]
    table = table.sort_values("elpd_loo", ascending=False, ignore_index=True)
    table.insert(2, "rank", np.arange(len(table)))
    weights, basis = (lono_w, "leave-one-N-out") if lono_w is not None else (loo_w, "LOO")
    recommended, reason, stacked = _recommend(fits, dict(zip(names, weights)), basis)
    return Comparison(table, held, recommended, reason, stacked)


#: A kind whose stacking weight is at least this is recommended on its own; below, the stack.
RECOMMEND_ALONE = 0.9


def _recommend(fits: dict[str, OptimumFit], weights: dict[str, float], basis: str
               ) -> tuple[str, str, StackedFit | None]:
    top = max(weights, key=weights.get)
    kept = {m: w for m, w in weights.items() if w >= 0.01}
    total = sum(kept.values())
    kept = {m: w / total for m, w in kept.items()}
    stacked = StackedFit(fits, kept, basis) if len(kept) > 1 else None
    if weights[top] >= RECOMMEND_ALONE or stacked is None:
        return top, f"{top} carries {weights[top]:.2f} of the {basis} stacking weight", stacked
    return "stacked", f"no kind dominates the {basis} stacking weights ({stacked.describe()}): their mixture", stacked
