"""``gp`` — the two-stage alternative to the surface model: a Gaussian process per cell, then the laws.

Stage 1, per (N, D) cell j, on its ok runs within ``window`` nats of its best loss (at least its
``MIN_RUNS_PER_CELL`` best; ``math.gp``):

    loss_i = m_j + f_j(log η_i, log B_i) + ε_i,   f_j ~ GP(0, Matérn-3/2), ML-II hyperparameters

and the draws of f_j's argmin over the box of those runs give the cell's optimum: the median μ_j of
the draws (log η*, log B*) and their standard deviations s_j (and correlation, reported in
``gp_cells.csv``). Stage 2, per optimum q, the ``measured`` law (NUTS):

    μ_qj ~ Normal(a_q + b_q·x_N + c_q·x_D, √(σ_q² + s_qj²))

Two optima are predicted, as for the surface model. The *smooth optimum* (``as_optimum_fits``) is
law + σ. *The best grid run a sweep would find* (``best_run``) adds an independent offset of a cell's
best run from its GP estimate, Normal with the root-mean-square offset over the fitted cells (an
upper bound: that offset also holds stage 1's error s_j), and is clipped to the sweep's range. The
two stages are not one posterior: a cell's GP is fitted by maximum likelihood, so its
hyperparameters' uncertainty is not in s_j, and the law does not feed back into the cells. An
optimum at the edge of the runs' box is placed at the edge, with no censoring. The laws have one
slope each, straight or with curvature e·x_N² + f·x_D² (``measured-curved``, ``--law-form curved``),
or per optimum whichever of the two leave-one-N-out stacking weighs most (``--law-form auto``;
``--slopes`` and ``--approx`` are the surface's); ``--prior`` applies to them. It
predicts no run's loss (no L* law): that is the surface model's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.inference.diagnostics import Diagnostics
from bayes_scaling.inputs.runtable import QUANTITIES, BestRuns, QuantityData
from bayes_scaling.math.draws import summarize, summarize_configurations
from bayes_scaling.optimum.fit import Fitter, OptimumFit
from bayes_scaling.surface.data import MIN_RUNS_PER_CELL, SurfaceData
from bayes_scaling.surface.model import OPTIMA

#: Argmin draws per cell, and grid points per axis they are searched on.
ARGMIN_DRAWS = 400
ARGMIN_POINTS = 30


@dataclass
class GpFit:
    """Stage 1's cell estimates (``cells``; ``argmins`` (J, S, 2) draws of each cell's log optimum) and
    stage 2's law of each optimum (``fits``), with the best runs' offsets from the estimates (``offset``)."""

    cells: pd.DataFrame
    argmins: np.ndarray
    fits: dict[str, OptimumFit]
    offset: dict[str, float]
    wall_s: float
    method: ClassVar[str] = "GP per cell (Matérn-3/2, ML-II) → law through the argmins with their errors (NUTS)"
    approximate: ClassVar[bool] = False
    figures: ClassVar[tuple[str, ...]] = ()

    @property
    def diagnostics(self) -> Diagnostics:
        """The laws' sampler diagnostics, judged together."""
        return Diagnostics.worst([f.diagnostics for f in self.fits.values()])

    def as_optimum_fits(self) -> dict[str, OptimumFit]:
        return self.fits

    def laws(self) -> dict[str, dict]:
        """Per optimum, :func:`law_choice` of its fit."""
        return {q: law_choice(f) for q, f in self.fits.items()}

    def best_run(self, N: float, D: float, *, B, lr, ci_prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
        """The best run a sweep of configurations (B, lr) at (N, D) would find: the smooth optimum's
        predictive plus the best-run offset, inside the sweep's range (one row per optimum)."""
        rng = np.random.default_rng([seed, 1])          # the offset: independent of the laws' own draws
        design = {"lr": np.asarray(lr, dtype=float), "batch_size": np.asarray(B, dtype=float)}
        rows = []
        for k, q in enumerate(OPTIMA):
            draws = self.fits[q].log_draws([N], [D], seed=seed + k)
            # clipped after the exp: a draw beyond the sweep is its end configuration, exactly
            draws = np.clip(np.exp(draws + self.offset[q] * rng.standard_normal(draws.shape)),
                            design[q].min(), design[q].max())
            st = {name: float(v[0]) for name, v in summarize_configurations(draws, ci_prob).items()}
            rows.append({"model": "gp", "quantity": q, "N": N, "D": D, **st, "ci_prob": ci_prob})
        return pd.DataFrame(rows)

    def cell_optima(self, ci_prob: float = 0.9) -> pd.DataFrame:
        """Each cell's GP argmin (natural units: median and interval of its draws) next to its best run."""
        rows = []
        for k, q in enumerate(OPTIMA):
            st = summarize(np.exp(self.argmins[:, :, k].T), ci_prob)
            rows.append(pd.DataFrame({"quantity": q, "N": self.cells["N"], "D": self.cells["D"], "median": st["median"],
                                      "lo": st["lo"], "hi": st["hi"], "measured": self.cells[f"best_{QUANTITIES[q]}"],
                                      "ci_prob": ci_prob}))
        return pd.concat(rows, ignore_index=True)

    def write_artifacts(self, stage, *, ci_prob: float) -> None:
        """``gp_cells.csv``, one row per cell: its GP estimate of each optimum (median and ``ci_prob``
        interval of the argmin draws) beside its best run, the estimates' standard errors in log units,
        and the GP's own fit (``noise_at_bound``: its noise hit the optimiser's lower bound)."""
        from bayes_scaling.io import write_csv
        from bayes_scaling.math.gp import NOISE_BOUNDS

        optima = self.cell_optima(ci_prob)
        out = self.cells[["N", "D", "n_runs_fitted"]].copy()
        for q, col in QUANTITIES.items():
            got = optima[optima["quantity"] == q].reset_index(drop=True)
            out[f"{col}_median"], out[f"{col}_lo"], out[f"{col}_hi"] = got["median"], got["lo"], got["hi"]
            out[f"best_{col}"] = self.cells[f"best_{col}"]
        out["ci_prob"] = ci_prob
        for col in QUANTITIES.values():
            out[f"se_log_{col}"] = self.cells[f"se_{col}"]
        out["corr_log_lr_log_B"] = self.cells["corr"]
        out["gp_min_loss"] = self.cells["min_loss"]
        out["gp_noise"] = self.cells["gp_noise"]
        out["noise_at_bound"] = self.cells["gp_noise"] <= NOISE_BOUNDS[0] * 1.001
        out["gp_length_lr"], out["gp_length_B"] = self.cells["length_lr"], self.cells["length_B"]
        write_csv(stage / "gp_cells.csv", out)

    def to_netcdf(self, path) -> None:
        """The cell estimates and the argmin draws (the laws' draws are saved with every optimum fit)."""
        import xarray as xr

        from bayes_scaling.io import write_datatree

        tree = xr.DataTree.from_dict({
            "cells": xr.Dataset.from_dataframe(self.cells.reset_index(drop=True)),
            "argmins": xr.Dataset({"log_opt": (("cell", "draw", "quantity"), self.argmins)},
                                  coords={"quantity": list(OPTIMA)}),
        })
        write_datatree(path, tree)


def window_runs(data: SurfaceData, j: int) -> pd.DataFrame:
    """Cell j's ok runs within the window of its best loss — at least its MIN_RUNS_PER_CELL best ok runs."""
    here = data.runs[(data.runs["cell"] == j) & (data.runs["status"] == "ok")].sort_values("loss")
    inside = here[~here["censored"]]
    return inside if len(inside) >= MIN_RUNS_PER_CELL else here.head(MIN_RUNS_PER_CELL)


def cell_estimates(data: SurfaceData, *, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Stage 1: (one row per cell — the estimate of log η*, log B* (the median of its argmin draws),
    their standard errors and correlation, the GP's hyperparameters — and the argmin draws (J, S, 2))."""
    from bayes_scaling.math.gp import argmin_draws, fit_cell_gp

    rows, draws = [], []
    for j, cell in data.cells.iterrows():
        # each cell's own stream: its draws do not depend on which other cells are in the table
        rng = np.random.default_rng([seed, int(cell["N"]), int(cell["D"])])
        runs = window_runs(data, j)
        x = np.column_stack([np.log(runs["lr"]), np.log(runs["B"])])
        gp = fit_cell_gp(x, runs["loss"].to_numpy(float))
        at, low, spacing = argmin_draws(gp, draws=ARGMIN_DRAWS, points=ARGMIN_POINTS, rng=rng)
        # a grid-bound argmin cannot be known finer than its grid step: a floor on the error
        se = np.maximum(at.std(axis=0), spacing / np.sqrt(12.0))
        corr = float(np.corrcoef(at.T)[0, 1]) if np.all(at.std(axis=0) > 0) else 0.0
        rows.append({"N": cell["N"], "D": cell["D"], "n_runs_fitted": len(runs),
                     "log_lr": np.median(at[:, 0]), "log_B": np.median(at[:, 1]), "se_lr": se[0], "se_B": se[1],
                     "corr": corr, "min_loss": float(np.median(low)), "gp_noise": gp.noise,
                     "length_lr": gp.lengths[0], "length_B": gp.lengths[1],
                     "best_lr": cell["best_lr"], "best_B": cell["best_B"]})
        draws.append(at)
    return pd.DataFrame(rows), np.stack(draws)


def measured_data(cells: pd.DataFrame, quantity: str, *, source: str = "<table>") -> QuantityData:
    """Stage 2's observations of one optimum: each cell's estimate as y, with its standard error ``se``."""
    col = QUANTITIES[quantity]
    best = BestRuns(frame=pd.DataFrame({
        "N": cells["N"], "D": cells["D"], "lr": cells["best_lr"], "B": cells["best_B"],
        "lr_lo": -np.inf, "lr_hi": np.inf, "B_lo": -np.inf, "B_hi": np.inf}), source=source)
    return replace(best.quantity(quantity, partner=False), y=cells[f"log_{col}"].to_numpy(),
                   se=cells[f"se_{col}"].to_numpy())


def law_choice(fit: OptimumFit) -> dict:
    """The law form a gp optimum's fit kept (``--law-form``'s name) and every candidate form's
    leave-one-N-out stacking weight (1.0 for a form fitted alone)."""
    from bayes_scaling.optimum.spec import get

    return {"law": get(fit.meta["law"]).form,
            "weights": {get(name).form: w for name, w in fit.meta["law_weights"].items()}}


def choose_law(laws: tuple[str, ...], measured: QuantityData, fitter: Fitter) -> tuple[OptimumFit, dict[str, float]]:
    """Each law of ``laws`` fitted to one optimum's estimates; with more than one, each left-out model
    size's estimates scored by every law refitted without them (``optimum.crossval``, ``lono``), the laws
    weighed by stacking those scores (``optimum.stacking``), and the heaviest kept (the first on a tie):
    (its fit, every law's weight). The question asked is the one a user extrapolating asks: which
    form predicts a size it has not seen."""
    sizes = np.unique(np.round(measured.log_N, 9)).size
    if len(laws) > 1 and sizes < 3:
        raise InputError(f"--law-form auto needs at least 3 model sizes (leaving one out must leave two to fit a "
                         f"law in N); the {measured.name} estimates have {sizes}")
    fits = [fitter.fit(law, measured) for law in laws]
    if len(fits) == 1:
        return fits[0], {laws[0]: 1.0}
    from bayes_scaling.optimum.crossval import cross_validate
    from bayes_scaling.optimum.stacking import stacking_weights
    from bayes_scaling.progress import muted

    with muted():                                # a few sub-second refits: the gp kind's own line counts them
        elpd = np.array([[s.elpd for s in cross_validate(fit, measured, fitter, ("lono",))] for fit in fits])
    weights = stacking_weights(elpd)
    return fits[int(np.argmax(weights))], {law: round(float(w), 3) for law, w in zip(laws, weights)}


def fit_gp(data: SurfaceData, config, *, source: str = "<table>", fitter: Fitter | None = None,
           laws: tuple[str, ...] = ("measured",)) -> GpFit:
    """Both stages on a full-sweep table's surface arrays (``surface.data.surface_data``); ``fitter``
    (default: ``Fitter(config)``) holds the laws' priors and compiled model; ``laws``: stage 2's spec
    (``measured``, or a bent form of it: ``optimum.specs.measured.law_forms``), or several, of which
    each optimum keeps the one leave-one-N-out stacking weighs most (:func:`choose_law`)."""
    t0 = time.perf_counter()
    cells, argmins = cell_estimates(data, seed=config.seed)
    fitter = fitter or Fitter(config)
    fits, offset = {}, {}
    for q in OPTIMA:
        measured = measured_data(cells, q, source=source)
        fit, weights = choose_law(laws, measured, fitter)
        fit.model = "gp"
        fit.meta = {"method": GpFit.method, "window": data.window, "law": fit.spec.name, "law_weights": weights}
        fits[q] = fit
        offset[q] = float(np.sqrt(np.mean((np.log(cells[f"best_{QUANTITIES[q]}"]) - measured.y) ** 2)))
    return GpFit(cells, argmins, fits, offset, wall_s=time.perf_counter() - t0)
