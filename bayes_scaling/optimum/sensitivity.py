"""How much of a fit is its prior: power-scaling sensitivity and prior-to-posterior contraction.

For each law parameter with a prior, and for the prediction of log q* at each target:

* power-scaling sensitivity (Kallioinen et al. 2024, ``arviz_stats.psense``): how much the
  posterior moves when the prior, or the likelihood, is raised to a power α ∈ [0.99, 1.01]
  (importance-weighted, no refit); prior sensitivity ≥ 0.05 with likelihood sensitivity < 0.05 is
  "strong prior / weak likelihood", both ≥ 0.05 a possible prior–data conflict;
* contraction = 1 − Var_posterior / Var_prior (parameters only; of the log for a positive one):
  near 0 the data taught the parameter nothing — its interval is its prior's (the prior's
  variance from 20,000 of its draws).

A quantity is flagged ``prior_driven`` when psense says strong prior / weak likelihood, or its
contraction is below ``MIN_CONTRACTION``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.fit import OptimumFit
from bayes_scaling.optimum.priors import Gamma, HalfNormal, LogNormal
from bayes_scaling.optimum.spec import ModelOptions

POSITIVE = (Gamma, HalfNormal, LogNormal)

#: A parameter whose posterior variance is more than half its prior's learned less than half from the data.
MIN_CONTRACTION = 0.5
THRESHOLD = 0.05
PRIOR_DRAWS = 20_000


def sensitivity(fit: OptimumFit, targets: list[tuple[float, float]], options: ModelOptions = ModelOptions(),
                seed: int = 0) -> pd.DataFrame:
    """One row per parameter with a prior and per target prediction: prior and likelihood
    sensitivity, diagnosis, contraction, prior_driven."""
    import arviz_stats as azs

    post = fit.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    log_prior = fit.spec.log_prior(post, fit.centers, options)
    lp = xr.Dataset({k: (("chain", "draw") + tuple(f"{k}_{i}" for i in range(v.ndim - 1)), v.reshape(shape + v.shape[1:]))
                     for k, v in log_prior.items()})
    params = [name for name in fit.spec.priors() if name in post and post[name].ndim == 2]
    preds = {}
    for N, D in targets:
        draws = fit.log_draws([N], [D], seed=seed)[:, 0]
        preds[f"log {fit.quantity}* at N={N:.3g},D={D:.3g}"] = draws.reshape(shape)
    scored = post[params].assign({f"pred_{k}": (("chain", "draw"), v) for k, v in enumerate(preds.values())})
    tree = xr.DataTree.from_dict({"posterior": scored, "log_likelihood": fit.idata["log_likelihood"].to_dataset(),
                                  "log_prior": lp})
    log = logging.getLogger("arviz_stats")        # it logs a pointer to its docs whenever it flags something
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = azs.psense_summary(tree, var_names=list(scored.data_vars), threshold=THRESHOLD)
    finally:
        log.setLevel(level)
    names = params + list(preds)
    table.index = names
    rows = []
    for name in names:
        contraction = _contraction(fit, name, options) if name in params else np.nan
        prior_s, like_s = float(table.loc[name, "prior"]), float(table.loc[name, "likelihood"])
        weak = prior_s >= THRESHOLD and like_s < THRESHOLD
        rows.append({"model": fit.model, "quantity": fit.quantity, "variable": name,
                     "prior_sensitivity": prior_s, "likelihood_sensitivity": like_s,
                     "diagnosis": "strong prior / weak likelihood" if weak else
                     ("prior-data conflict?" if prior_s >= THRESHOLD and like_s >= THRESHOLD else "ok"),
                     "contraction": contraction,
                     "prior_driven": bool(weak or (np.isfinite(contraction) and contraction < MIN_CONTRACTION))})
    return pd.DataFrame(rows)


def _contraction(fit: OptimumFit, name: str, options: ModelOptions) -> float:
    """1 − Var_post/Var_prior of a scalar parameter (the prior's variance from its own draws), on the log
    scale for a positive parameter (a scale's heavy prior tail would otherwise dominate)."""
    prior = fit.spec.prior(name, options)
    draws = prior.sample(PRIOR_DRAWS, seed=1)
    post = stacked(fit.posterior, name)
    if isinstance(prior, POSITIVE):
        draws, post = np.log(draws), np.log(post)
    return float(1.0 - np.var(post) / np.var(draws))
