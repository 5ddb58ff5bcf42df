"""PyMC builder of the full-surface model: one joint posterior over L(N, D, η, B) from every run.

Run i of cell j, at offsets u = log η_i − log η*_j, v = log B_i − log B*_j from the cell's
latent optimum, has loss

    loss_i ~ StudentT₄(L*_j + f_j(u, v), s_i),  s_i² = σ_j² + (γ·f_j(u, v))²,  right-censored at U_j

    f_j(u, v) = ½ h_η,j·e^{κ_η,j·sign(u')}·u'² + ½ h_B,j·e^{κ_B,j·sign(v)}·v²,   u' = u − k₁,j·v − k₂,j·v²

(``math.bowl.valley_bowl``; U_j is the window of ``surface.data``). Every cell has its own
bowl: curvatures h, a *curved* valley (the best log η at batch offset v is k₁v + k₂v²:
StepLaw's ridge is concave in log B in every cell), a two-sided curvature per axis (e^{2κ}
between the sides of the minimum: StepLaw's bowls are much steeper above the best η than below)
and noise σ. The shape parameters θ_j = (log h_η, log h_B, κ_η, κ_B, k₁, k₂, log σ)_j are shrunk
to a population,

    θ_pj ~ Normal(μ_p, τ_p),

so a cell not fitted draws its bowl from it. They are *centred*: each cell's runs inform its
bowl well, and the non-centred form (θ = μ + τ·z) mixed worse. γ is the misfit of the bowl
family: a run far up the bowl is fitted less tightly than one at its bottom.

The minimum loss follows a loss law (``laws``: ``chinchilla`` by default, L = E + A/N^α + B/D^β;
any registered law that ``has_loss``, in the library: ``fit_surface(..., law=NAME)``), its parameters in the ``loss_law::`` namespace:

    L*_j ~ Normal(L_law(N_j, D_j), σ_L*)

and the cell optima follow the laws of ``optimum.spec``, jointly for q ∈ {η, B}:

    log q*_j ~ Normal(a_q + b_q·x_N,j + c_q(n_j)·x_D,j, σ_q)

with c_q(n) = c_q (``slopes="pooled"``) or c_q + τ_c,q·ζ_q,n (``"per_n"``, non-centred). The
cell optima and minimum losses are centred too, sampled as scaled offsets from the cell's best
run (so the chains start there). Held-out cells are left out of the model.

Priors: a, b, c, τ_c as in ``optimum.spec``; σ_q ~ LogNormal(log 0.1, 0.75) (``OPT_SCATTER_MEDIAN``);
the loss law's own (``Law.mean_log_loss``);
σ_L* ~ Gamma(2, 200) (mean 0.01 nats); μ_p ~ Normal(``SHAPE_PRIOR``), τ_p ~
LogNormal(log ``SHAPE_TAU``, 0.75); γ ~ LogNormal(log 0.1, 0.5). ν = 4 is fixed (closed-form CDF).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayes_scaling.laws.base import Law
from bayes_scaling.laws.base import registry as law_registry
from bayes_scaling.math.bowl import valley_bowl
from bayes_scaling.math.student_t import t4_logpdf, t4_logsf
from bayes_scaling.optimum.spec import TAU_PRIOR_MEDIAN, TAU_PRIOR_SIGMA, data_table
from bayes_scaling.surface.data import SurfaceData

SLOPES = ("pooled", "per_n")
#: Both optima, in this order along the model's ``quantity`` dimension.
OPTIMA = ("lr", "batch_size")
#: The per-cell bowl parameters, in order along ``shape_param``.
SHAPE = ("log_h_lr", "log_h_B", "kappa_lr", "kappa_B", "k1", "k2", "log_sigma")
#: Population-mean priors μ_p ~ Normal(loc, scale) (natural-log units of loss and of η, B).
SHAPE_PRIOR = {"log_h_lr": (np.log(0.04), 0.75), "log_h_B": (np.log(0.04), 0.75), "kappa_lr": (0.0, 1.0), "kappa_B": (0.0, 1.0), "k1": (0.0, 0.5), "k2": (0.0, 0.5), "log_sigma": (np.log(0.002), 1.0)}
#: Prior medians of the population spreads τ_p (LogNormal, log-sd TAU_PRIOR_SIGMA).
SHAPE_TAU = {"log_h_lr": 0.3, "log_h_B": 0.3, "kappa_lr": 0.3, "kappa_B": 0.3, "k1": 0.1, "k2": 0.1, "log_sigma": 0.3}
#: Prior of σ_q, the scatter of the cells' smooth optima about their law: LogNormal(log OPT_SCATTER_MEDIAN,
#: OPT_SCATTER_SIGMA). Not the best-run kinds' Gamma(2, ·): that one's density vanishes only linearly at 0,
#: and with the cell optima centred (each pinned by its runs) σ_B fell to 0.004 and NUTS diverged there.
OPT_SCATTER_MEDIAN = 0.1
OPT_SCATTER_SIGMA = 0.75
#: Prior median of γ, the misfit of the bowl family (relative to the loss above the minimum).
GAMMA_PRIOR_MEDIAN = 0.1
#: Prior mean of σ_L*, the scatter of a cell's minimum loss about the loss law (nats).
LSTAR_SCATTER_MEAN = 0.01
#: The default loss law of L*(N, D).
LOSS_LAW = "chinchilla"
#: Namespace of the loss law's parameters in the model (``loss_law::alpha``, ...).
LOSS_LAW_PREFIX = "loss_law::"

#: Rows of the ``runs`` table, shape (len(RUN_COLUMNS), cell, slot): the runs laid out one row per
#: cell (``slot``: a run's place in its cell), padded to the fullest cell (``present`` = 0 there).
#: A dense cell × slot layout rather than one long vector indexed by cell: every per-cell
#: parameter then broadcasts along the slots, and its gradient is a sum along them instead of
#: a scatter-add per parameter (the gradient costs about half as much). One table rather than an
#: array per field: nutpie's compile time grows with the number of shared arrays (``optimum.spec``).
RUN_COLUMNS = ("log_lr", "log_B", "y_obs", "upper", "censored", "present")
#: Rows of the ``cells`` table, shape (len(CELL_COLUMNS), cell); ``n_index`` is cast back to int.
CELL_COLUMNS = ("x_N", "x_D", "n_index", "a_loc_lr", "a_loc_batch_size", "ref_lr", "ref_batch_size", "min_loss")
#: Scales of the sampled offsets of a cell's optimum (log units) and minimum loss (nats) from its
#: best run: the chains start at the best runs, jittered by about these amounts.
OPT_STEP = 0.3
LSTAR_STEP = 0.01


def loss_law(data: SurfaceData, name: str = LOSS_LAW) -> Law:
    """The loss law ``name`` on the cells' (N, D, best loss) — centred like the surface's optima."""
    laws = law_registry()
    if name not in laws or not laws[name].has_loss:
        usable = [k for k, v in laws.items() if v.has_loss]
        raise ValueError(f"loss law {name!r}: choose one with a loss L(N, D): {', '.join(usable)}")
    return laws[name](pd.DataFrame({"N": data.cells["N"], "D": data.cells["D"], "loss": data.cells["min_loss"]}))


def data_arrays(data: SurfaceData) -> dict[str, np.ndarray]:
    """The ``pm.Data`` values of the model, by name (also what nutpie's ``with_data`` takes):
    ``runs`` (len(RUN_COLUMNS), n_cells, max_runs) and ``cells`` (len(CELL_COLUMNS), n_cells)."""
    r, c = data.runs, data.cells
    centers = [data.centers(q) for q in OPTIMA]
    n_cells = len(c)
    cells = {
        "x_N": np.log(c["N"].to_numpy(dtype=float)) - centers[0].log_N,
        "x_D": np.log(c["D"].to_numpy(dtype=float)) - centers[0].log_D,
        "n_index": c["n_index"].to_numpy(dtype=float),
        "a_loc_lr": np.full(n_cells, centers[0].y),
        "a_loc_batch_size": np.full(n_cells, centers[1].y),
        "ref_lr": np.log(c["best_lr"].to_numpy(dtype=float)),
        "ref_batch_size": np.log(c["best_B"].to_numpy(dtype=float)),
        "min_loss": c["min_loss"].to_numpy(dtype=float),
    }
    # padding: a run at the cell's best (η, B) with its best loss, inside the window — finite everywhere
    pad = {"log_lr": cells["ref_lr"], "log_B": cells["ref_batch_size"], "y_obs": cells["min_loss"],
           "upper": cells["min_loss"] + data.window, "censored": np.zeros(n_cells), "present": np.zeros(n_cells)}
    values = {
        "log_lr": np.log(r["lr"].to_numpy(dtype=float)),
        "log_B": np.log(r["B"].to_numpy(dtype=float)),
        "y_obs": r["y"].to_numpy(dtype=float),
        "upper": r["upper"].to_numpy(dtype=float),
        "censored": r["censored"].to_numpy(dtype=float),
        "present": np.ones(len(r)),
    }
    cell, slot = r["cell"].to_numpy(), r["slot"].to_numpy()
    runs = np.empty((len(RUN_COLUMNS), n_cells, data.max_runs))
    for k, name in enumerate(RUN_COLUMNS):
        runs[k] = pad[name][:, None]
        runs[k, cell, slot] = values[name]
    return {"runs": runs, "cells": np.vstack([cells[k] for k in CELL_COLUMNS])}


def coords(data: SurfaceData) -> dict[str, list]:
    return {"cell": data.cell_names, "slot": list(range(data.max_runs)),
            "N_level": [float(n) for n in data.n_levels], "quantity": list(OPTIMA), "shape_param": list(SHAPE),
            "run_column": list(RUN_COLUMNS), "cell_column": list(CELL_COLUMNS)}


def build_surface(data: SurfaceData, *, slopes: str = "pooled", law: str = LOSS_LAW) -> pm.Model:
    """The full-surface model of the module docstring for one run table."""
    if slopes not in SLOPES:
        raise ValueError(f"slopes must be one of {SLOPES}, got {slopes!r}")
    arrays = data_arrays(data)
    loss = loss_law(data, law)
    with pm.Model(coords=coords(data)) as model:
        table = pm.Data("runs", arrays["runs"], dims=("run_column", "cell", "slot"))
        d = {name: table[k] for k, name in enumerate(RUN_COLUMNS)}
        d |= data_table("cells", arrays["cells"], CELL_COLUMNS, "cell", integers=("n_index",))
        d["a_loc"] = pt.stack([d["a_loc_lr"][0], d["a_loc_batch_size"][0]])
        # scaling laws of the two optima (names and centring as in optimum.spec)
        a = pm.Normal("a", mu=d["a_loc"], sigma=2.0, dims="quantity")
        b = pm.Normal("b", 0.0, 1.0, dims="quantity")
        c = pm.Normal("c", 0.0, 1.0, dims="quantity")
        sigma = pm.LogNormal("sigma", mu=np.log(OPT_SCATTER_MEDIAN), sigma=OPT_SCATTER_SIGMA, dims="quantity")
        if slopes == "per_n":
            tau_c = pm.LogNormal("tau_c", mu=np.log(TAU_PRIOR_MEDIAN), sigma=TAU_PRIOR_SIGMA, dims="quantity")
            z_c = pm.Normal("z_c", 0.0, 1.0, dims=("quantity", "N_level"))
            c_n = pm.Deterministic("c_n", c[:, None] + tau_c[:, None] * z_c, dims=("quantity", "N_level"))
            slope = c_n[:, d["n_index"]]
        else:
            slope = c[:, None]
        law_mean = a[:, None] + b[:, None] * d["x_N"][None, :] + slope * d["x_D"][None, :]
        ref = pt.stack([d["ref_lr"], d["ref_batch_size"]])
        opt_raw = pm.Normal("log_opt_raw", mu=(law_mean - ref) / OPT_STEP, sigma=sigma[:, None] / OPT_STEP,
                            dims=("quantity", "cell"), initval=np.zeros((2, len(data.cells))))
        log_opt = pm.Deterministic("log_opt", ref + OPT_STEP * opt_raw, dims=("quantity", "cell"))
        # the loss law of the cells' minimum losses
        with pm.Model(name=LOSS_LAW_PREFIX.rstrip(":")):
            log_l_law = loss.mean_log_loss(d["x_N"], d["x_D"])
        sigma_lstar = pm.Gamma("sigma_lstar", alpha=2.0, beta=2.0 / LSTAR_SCATTER_MEAN)
        l_raw = pm.Normal("l_star_raw", mu=(pt.exp(log_l_law) - d["min_loss"]) / LSTAR_STEP,
                          sigma=sigma_lstar / LSTAR_STEP, dims="cell", initval=np.zeros(len(data.cells)))
        l_star = pm.Deterministic("l_star", d["min_loss"] + LSTAR_STEP * l_raw, dims="cell")
        # the bowls: per-cell shapes shrunk to a population
        mu_loc, mu_scale = (np.array([SHAPE_PRIOR[p][k] for p in SHAPE]) for k in (0, 1))
        shape_mu = pm.Normal("shape_mu", mu_loc, mu_scale, dims="shape_param")
        shape_tau = pm.LogNormal("shape_tau", np.log([SHAPE_TAU[p] for p in SHAPE]), TAU_PRIOR_SIGMA,
                                 dims="shape_param")
        shape = pm.Normal("shape", shape_mu[:, None], shape_tau[:, None], dims=("shape_param", "cell"))
        gamma = pm.LogNormal("gamma", np.log(GAMMA_PRIOR_MEDIAN), 0.5)
        th = {p: shape[k][:, None] for k, p in enumerate(SHAPE)}          # (cell, 1): broadcast along slots
        f = valley_bowl(d["log_lr"] - log_opt[0][:, None], d["log_B"] - log_opt[1][:, None],
                        (pt.exp(th["log_h_lr"]), pt.exp(th["log_h_B"])),
                        (th["kappa_lr"], th["kappa_B"]), th["k1"], th["k2"], xp=pt)
        scale = pt.sqrt(pt.exp(2.0 * th["log_sigma"]) + (gamma * f) ** 2)
        pm.CustomDist("loss_obs", l_star[:, None] + f, scale, d["upper"], d["censored"], d["present"],
                      logp=_run_logp, observed=d["y_obs"], dims=("cell", "slot"))
    return model


def _run_logp(value, mu, sigma, upper, censored, present):
    """Student-t₄ log density of a loss inside the window, log P(loss > U) for a censored run, 0 for padding."""
    t = (value - mu) / sigma
    inside = t4_logpdf(t, xp=pt) - pt.log(sigma)
    above = t4_logsf((upper - mu) / sigma, xp=pt)
    return pt.switch(present > 0.5, pt.switch(censored > 0.5, above, inside), 0.0)
