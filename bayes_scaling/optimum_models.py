"""PyMC builders for the scaling law of an optimum q* ∈ {η*, B*}: pure functions → ``pm.Model``.

With centred logs x_N = log N − m_N, x_D = log D − m_D (centres fixed per table):

* ``pooled``:        log q_i = a + b·x_N + c·x_D + ε_i,  ε_i ~ Normal(0, σ)
                     — the best grid value taken as exact (the Bayesian twin of OLS).
* ``quantized``:     z_i = a + b·x_N + c·x_D + ε_i is latent; the data only say that
                     z_i + δ_i ∈ (lo_i, hi_i), its grid cell, where δ_i ~ Normal(0, σ_sel) is
                     the jitter of picking the best run on a noisy loss (σ_sel = SIGMA_FLOOR):
                     p_i = Φ((hi_i−μ_i)/s) − Φ((lo_i−μ_i)/s),  s = √(σ² + σ_sel²).
* ``hierarchical``:  quantized, with a slope on log D per model size n:
                     c_n = c + τ_c·ζ_n,  ζ_n ~ Normal(0, 1)  (non-centred),
                     optionally intercept offsets a_n = τ_a·ξ_n; a new N draws its
                     slope (and offset) from the population, so extrapolation carries τ_c.

Priors (weakly informative on the centred scale): a ~ Normal(ȳ, 2), b, c ~ Normal(0, 1),
σ ~ Gamma(2, 10) (mean 0.2), τ_c ~ LogNormal(log 0.1, 0.75), τ_a ~ LogNormal(log 0.1, 0.75).
Both scale priors vanish at 0 on purpose: a HalfNormal τ_c put mass in the funnel's
neck and gave hundreds of divergences, and as σ → 0 the interval-censored likelihood
turns into a step function of μ (a cliff at every cell edge) that NUTS cannot follow.

The data enter as one ``pm.Data`` table, ``cells`` (rows ``CELL_COLUMNS``, one column per
cell), so that one compiled model serves both quantities and every leave-out refit
(``nutpie``'s ``with_data``). One table rather than an array per field because nutpie's
compile time grows with the number of shared arrays (8 arrays compile in ~2.5× the time of
one table: ``benchmarks/bench_compile.py``); the prior location ȳ rides along as a
constant row for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_scaling.likelihood import interval_logp_pt
from bayes_scaling.runtable import QuantityData

MODELS = ("pooled", "quantized", "hierarchical")
#: Rows of the ``cells`` data table, in order (``n_index`` is stored as a float and cast back).
CELL_COLUMNS = ("x_N", "x_D", "y_obs", "lo", "hi", "n_index", "a_loc")

#: Population-scale prior of the per-N deviations: LogNormal(log TAU_PRIOR_MEDIAN, TAU_PRIOR_SIGMA).
TAU_PRIOR_MEDIAN = 0.1
TAU_PRIOR_SIGMA = 0.75
#: Scatter prior σ ~ Gamma(2, 2/SIGMA_PRIOR_MEAN): zero density at σ = 0 (boundary-avoiding).
SIGMA_PRIOR_MEAN = 0.2
#: Selection jitter σ_sel (log units) of the best grid value. Without it, as σ → 0 the
#: censored likelihood becomes a step function of μ and NUTS diverges at the cliffs;
#: 0.05 (5 % in q) is far below a grid step (log 2 = 0.69) so it barely blurs the cells.
SIGMA_FLOOR = 0.05


@dataclass(frozen=True)
class Centers:
    """Centring constants of a table: m_N, m_D (log-mean of the cells) and ȳ per quantity."""

    log_N: float
    log_D: float
    y: float

    @classmethod
    def of(cls, data: QuantityData) -> Centers:
        return cls(float(np.mean(data.log_N)), float(np.mean(data.log_D)), float(np.mean(data.y)))


def data_arrays(data: QuantityData, centers: Centers) -> dict[str, np.ndarray]:
    """The ``pm.Data`` values of a model, by name (also what ``with_data`` takes):
    the ``cells`` table, shape (len(CELL_COLUMNS), n_cells)."""
    rows = {
        "x_N": data.log_N - centers.log_N,
        "x_D": data.log_D - centers.log_D,
        "y_obs": data.y,
        "lo": data.lo,
        "hi": data.hi,
        "n_index": data.n_index.astype(float),
        "a_loc": np.full(len(data.y), centers.y),
    }
    return {"cells": np.vstack([rows[k] for k in CELL_COLUMNS])}


def build(kind: str, data: QuantityData, centers: Centers, *, per_n_intercepts: bool = False) -> pm.Model:
    """Build model ``kind`` (one of MODELS) for one quantity."""
    if kind == "pooled":
        return build_pooled(data, centers)
    if kind == "quantized":
        return build_quantized(data, centers)
    if kind == "hierarchical":
        return build_hierarchical(data, centers, per_n_intercepts=per_n_intercepts)
    raise ValueError(f"unknown model {kind!r}; choose from {MODELS}")


def _coords(data: QuantityData) -> dict[str, list]:
    return {"cell": list(data.cell), "N_level": [float(n) for n in data.n_levels], "cell_column": list(CELL_COLUMNS)}


def data_table(name: str, values: np.ndarray, columns: tuple[str, ...], dim: str,
               integers: tuple[str, ...] = ()) -> dict[str, pt.TensorVariable]:
    """Register ``values`` (one row per name in ``columns``, one column per ``dim`` entry) as the
    single ``pm.Data`` ``name`` with dims (``{dim}_column``, ``dim``); return its rows by name,
    those in ``integers`` (stored as floats) cast back to int64."""
    table = pm.Data(name, values, dims=(f"{dim}_column", dim))
    rows = {column: table[i] for i, column in enumerate(columns)}
    for column in integers:
        rows[column] = pt.cast(pt.round(rows[column]), "int64")
    return rows


def _linear_part(data: QuantityData, centers: Centers):
    d = data_table("cells", data_arrays(data, centers)["cells"], CELL_COLUMNS, "cell", integers=("n_index",))
    a = pm.Normal("a", mu=d["a_loc"][0], sigma=2.0)
    b = pm.Normal("b", mu=0.0, sigma=1.0)
    c = pm.Normal("c", mu=0.0, sigma=1.0)
    sigma = pm.Gamma("sigma", alpha=2.0, beta=2.0 / SIGMA_PRIOR_MEAN)
    return d, a, b, c, sigma


def build_pooled(data: QuantityData, centers: Centers) -> pm.Model:
    """log q_i ~ Normal(a + b·x_N + c·x_D, σ): grid values treated as exact."""
    with pm.Model(coords=_coords(data)) as model:
        d, a, b, c, sigma = _linear_part(data, centers)
        mu = a + b * d["x_N"] + c * d["x_D"]
        pm.Normal("q_obs", mu=mu, sigma=sigma, observed=d["y_obs"], dims="cell")
    return model


def build_quantized(data: QuantityData, centers: Centers) -> pm.Model:
    """Latent log q*_i ~ Normal(a + b·x_N + c·x_D, σ), observed only as its grid cell."""
    with pm.Model(coords=_coords(data)) as model:
        d, a, b, c, sigma = _linear_part(data, centers)
        mu = a + b * d["x_N"] + c * d["x_D"]
        _censored(mu, sigma, d)
    return model


def build_hierarchical(data: QuantityData, centers: Centers, *, per_n_intercepts: bool = False) -> pm.Model:
    """Quantized, with per-N slopes c_n = c + τ_c·ζ_n (and optional offsets a_n = τ_a·ξ_n)."""
    with pm.Model(coords=_coords(data)) as model:
        d, a, b, c, sigma = _linear_part(data, centers)
        tau_c = pm.LogNormal("tau_c", mu=np.log(TAU_PRIOR_MEDIAN), sigma=TAU_PRIOR_SIGMA)
        z_c = pm.Normal("z_c", 0.0, 1.0, dims="N_level")
        c_n = pm.Deterministic("c_n", c + tau_c * z_c, dims="N_level")
        mu = a + b * d["x_N"] + c_n[d["n_index"]] * d["x_D"]
        if per_n_intercepts:
            tau_a = pm.LogNormal("tau_a", mu=np.log(TAU_PRIOR_MEDIAN), sigma=TAU_PRIOR_SIGMA)
            z_a = pm.Normal("z_a", 0.0, 1.0, dims="N_level")
            a_n = pm.Deterministic("a_n", tau_a * z_a, dims="N_level")
            mu = mu + a_n[d["n_index"]]
        _censored(mu, sigma, d)
    return model


def _censored(mu, sigma, d) -> None:
    sigma_obs = pm.math.sqrt(sigma**2 + SIGMA_FLOOR**2)
    pm.CustomDist("q_obs", mu, sigma_obs, d["lo"], d["hi"], logp=interval_logp_pt, observed=d["y_obs"], dims="cell")
