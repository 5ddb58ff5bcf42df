"""LOO comparison of the optimum models on one common outcome: which grid cell won.

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

import arviz as az
import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayes_scaling.inference.config import MAX_REFITS
from bayes_scaling.inputs.runtable import QuantityData
from bayes_scaling.optimum.fit import Fitter, OptimumFit

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
        loo = az.loo(fit.idata, pointwise=True)
    k = np.asarray(loo.pareto_k).ravel()
    log_w = loo.log_weights.transpose("chain", "draw", ...).values
    log_w = log_w.reshape(-1, log_w.shape[-1])            # (S, n), draws flattened
    ll = cell_loglik(fit, data)
    elpd_i = logsumexp(log_w + ll, axis=0) - logsumexp(log_w, axis=0)
    lppd_i = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    high = np.flatnonzero(k > K_THRESHOLD)
    refit = high[np.argsort(-k[high])][:max_refits] if fitter is not None else np.array([], dtype=int)
    for i in refit:
        keep = np.ones(len(data.y), dtype=bool)
        keep[i] = False
        post = fitter.refit_posterior(fit.model, data.subset(keep), fit.centers)
        ll_i = cell_loglik(fit, data.subset(~keep), posterior=post)[:, 0]
        elpd_i[i] = logsumexp(ll_i) - np.log(ll_i.size)
    return {"elpd_i": elpd_i, "lppd_i": lppd_i, "pareto_k": k, "n_high_k": int(high.size), "refit": refit}


def compare(fits: dict[str, OptimumFit], data: QuantityData, fitter: Fitter | None = None,
            max_refits: int = MAX_REFITS) -> pd.DataFrame:
    """Rank Bayesian models of one quantity by LOO elpd on the observed grid cells.

    Columns: quantity, model, rank, elpd_loo, se, elpd_diff, dse, p_loo, weight
    (pseudo-BMA, ∝ exp(elpd)), n_high_k, n_refit, method.
    """
    res = {name: loo_cells(fit, data, fitter, max_refits) for name, fit in fits.items()}
    n = len(data.y)
    elpd = {m: float(r["elpd_i"].sum()) for m, r in res.items()}
    best = max(elpd, key=elpd.get)
    weights = np.exp(np.array(list(elpd.values())) - elpd[best])
    weights /= weights.sum()
    rows = []
    for (m, r), w in zip(res.items(), weights):
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
    table = pd.DataFrame(rows).sort_values("elpd_loo", ascending=False, ignore_index=True)
    table.insert(2, "rank", np.arange(len(table)))
    return table
