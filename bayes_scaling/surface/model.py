"""PyMC builder of the full-surface latent-optimum model: every run of every sweep.

Run i of cell j, at offsets u = log η_i − log η*_j, v = log B_i − log B*_j from the
cell's latent optimum, has loss

    loss_i ~ StudentT_ν(L*_j + f_j(u, v), σ_L),  right-censored at U_j    (the window, see ``surface.data``)

    f_j(u, v) = s_j·½(h_η ũ² + 2ρ√(h_η h_B) ũṽ + h_B ṽ²),
    ũ = sign(u)·√g_η(u),   g(u) = 2(e^{βu} − 1 − βu)/β²   (and ṽ likewise with β_B),

the bowl of ``math.bowl``: quadratic at its minimum and asymmetric through the LINEX
transform g (for β > 0 the loss rises exponentially above the optimum, the divergence
cliff of a too-high learning rate, and only linearly below it). It is scaled per cell
by s_j = exp(δ_j), δ ~ ZeroSumNormal(τ_s) (zero-sum, so that h is the typical curvature
and not a ridge with the δ's). Also tried: a quadratic with a different curvature per
side, a pseudo-Huber cone (its scale ran to the prior), a quartic term, per-side LINEX
and a LINEX along the principal axes (single-cell robust fits). Every one of them puts
the smooth minimum ~½ log₂ step below the best measured η in most StepLaw cells (see
``surface`` for what that does to the backtest).

The cell optima follow the laws of ``optimum.spec``, jointly for q ∈ {η, B}:

    log q*_j = a_q + b_q·x_N,j + c_q(n_j)·x_D,j + σ_q·ε_qj,     ε_qj ~ Normal(0, 1)

with c_q(n) = c_q (``slopes="pooled"``) or c_q + τ_c,q·ζ_q,n (``"per_n"``, non-centred).
The cell optima are *centred* (log q*_j itself is the parameter): each holds ~100 runs,
so the data pin it and the centred form is the funnel-free one. Held-out cells are left
out of the model rather than kept with zero weight: without runs a centred optimum is a
funnel, and a zero-sum scale over data-less cells re-opens the h ridge.

Priors on a, b, c, σ, τ_c are those of ``optimum.spec``; log h ~ Normal(log 0.05, 1.5),
ρ = tanh(Normal(0, 0.5)), β ~ Normal(0, 1), τ_s ~ LogNormal(log 0.3, 0.75),
L*_j ~ Normal(min loss_j, 0.05), σ_L ~ LogNormal(log 0.005, 1); ν = 4 is fixed (its CDF
is closed-form, so censoring costs no special functions).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_scaling.math.bowl import bowl
from bayes_scaling.math.student_t import NU, t4_logsf
from bayes_scaling.optimum.spec import SIGMA_PRIOR_MEAN, TAU_PRIOR_MEDIAN, TAU_PRIOR_SIGMA, data_table
from bayes_scaling.surface.data import SurfaceData

SLOPES = ("pooled", "per_n")
#: Both optima, in this order along the model's ``quantity`` dimension.
OPTIMA = ("lr", "batch_size")


#: Rows of the ``runs`` and ``cells`` data tables (integers stored as floats and cast back;
#: two tables rather than an array per field: nutpie's compile time grows with the number
#: of shared arrays, see ``optimum.spec``).
RUN_COLUMNS = ("log_lr", "log_B", "y_obs", "upper", "censored", "run_cell")
CELL_COLUMNS = ("x_N", "x_D", "n_index", "min_loss", "a_loc_lr", "a_loc_batch_size")


def data_arrays(data: SurfaceData) -> dict[str, np.ndarray]:
    """The ``pm.Data`` values of the model, by name (also what nutpie's ``with_data`` takes):
    ``runs`` (len(RUN_COLUMNS), n_runs) and ``cells`` (len(CELL_COLUMNS), n_cells)."""
    r, c = data.runs, data.cells
    centers = [data.centers(q) for q in OPTIMA]
    n_cells = len(c)
    runs = {
        "log_lr": np.log(r["lr"].to_numpy(dtype=float)),
        "log_B": np.log(r["B"].to_numpy(dtype=float)),
        "y_obs": r["y"].to_numpy(dtype=float),
        "upper": r["upper"].to_numpy(dtype=float),
        "censored": r["censored"].to_numpy(dtype=float),
        "run_cell": r["cell"].to_numpy(dtype=float),
    }
    cells = {
        "x_N": np.log(c["N"].to_numpy(dtype=float)) - centers[0].log_N,
        "x_D": np.log(c["D"].to_numpy(dtype=float)) - centers[0].log_D,
        "n_index": c["n_index"].to_numpy(dtype=float),
        "min_loss": c["min_loss"].to_numpy(dtype=float),
        "a_loc_lr": np.full(n_cells, centers[0].y),
        "a_loc_batch_size": np.full(n_cells, centers[1].y),
    }
    return {"runs": np.vstack([runs[k] for k in RUN_COLUMNS]), "cells": np.vstack([cells[k] for k in CELL_COLUMNS])}


def coords(data: SurfaceData) -> dict[str, list]:
    return {"run": list(range(len(data.runs))), "cell": data.cell_names,
            "N_level": [float(n) for n in data.n_levels], "quantity": list(OPTIMA), "axis": ["lr", "B"],
            "run_column": list(RUN_COLUMNS), "cell_column": list(CELL_COLUMNS)}


def build_surface(data: SurfaceData, *, slopes: str = "pooled") -> pm.Model:
    """The full-surface model of the module docstring for one run table."""
    if slopes not in SLOPES:
        raise ValueError(f"slopes must be one of {SLOPES}, got {slopes!r}")
    arrays = data_arrays(data)
    with pm.Model(coords=coords(data)) as model:
        d = (data_table("runs", arrays["runs"], RUN_COLUMNS, "run", integers=("censored", "run_cell"))
             | data_table("cells", arrays["cells"], CELL_COLUMNS, "cell", integers=("n_index",)))
        d["a_loc"] = pt.stack([d["a_loc_lr"][0], d["a_loc_batch_size"][0]])
        # scaling laws of the two optima (names and centring as in optimum.spec)
        a = pm.Normal("a", mu=d["a_loc"], sigma=2.0, dims="quantity")
        b = pm.Normal("b", 0.0, 1.0, dims="quantity")
        c = pm.Normal("c", 0.0, 1.0, dims="quantity")
        sigma = pm.Gamma("sigma", alpha=2.0, beta=2.0 / SIGMA_PRIOR_MEAN, dims="quantity")
        if slopes == "per_n":
            tau_c = pm.LogNormal("tau_c", mu=np.log(TAU_PRIOR_MEDIAN), sigma=TAU_PRIOR_SIGMA, dims="quantity")
            z_c = pm.Normal("z_c", 0.0, 1.0, dims=("quantity", "N_level"))
            c_n = pm.Deterministic("c_n", c[:, None] + tau_c[:, None] * z_c, dims=("quantity", "N_level"))
            slope = c_n[:, d["n_index"]]
        else:
            slope = c[:, None]
        law = a[:, None] + b[:, None] * d["x_N"][None, :] + slope * d["x_D"][None, :]
        log_opt = pm.Normal("log_opt", mu=law, sigma=sigma[:, None], dims=("quantity", "cell"))
        # the bowls
        log_h = pm.Normal("log_h", np.log(0.05), 1.5, dims="axis")
        rho = pm.Deterministic("rho", pt.tanh(pm.Normal("rho_raw", 0.0, 0.5)))
        beta = pm.Normal("beta", 0.0, 1.0, dims="axis")
        tau_s = pm.LogNormal("tau_s", np.log(0.3), 0.75)
        delta_s = pm.ZeroSumNormal("delta_s", sigma=tau_s, dims="cell")
        l_star = pm.Normal("l_star", mu=d["min_loss"], sigma=0.05, dims="cell")
        sigma_loss = pm.LogNormal("sigma_loss", np.log(0.005), 1.0)
        j = d["run_cell"]
        u = d["log_lr"] - log_opt[0, j]
        v = d["log_B"] - log_opt[1, j]
        f = bowl(u, v, pt.exp(delta_s)[j], pt.exp(log_h), rho, beta, xp=pt)
        pm.CustomDist("loss_obs", l_star[j] + f, sigma_loss, d["upper"], d["censored"],
                      logp=_run_logp, observed=d["y_obs"], dims="run")
    return model


def _run_logp(value, mu, sigma, upper, censored):
    """Student-t density of a loss inside the window, or P(loss > U) for a censored run."""
    noise = pm.StudentT.dist(nu=NU, mu=mu, sigma=sigma)
    return pt.switch(pt.eq(censored, 1), t4_logsf((upper - mu) / sigma, xp=pt), pm.logp(noise, value))
