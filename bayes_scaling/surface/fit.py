"""Fit and predict with the full-surface model (``--models surface``): every run, not just the best.

    sf = fit_surface(runs, SamplerConfig())              # NUTS; approx="advi" for a fast, approximate fit
    sf.predict_loss(planned)                              # the loss of any run (N, D, B, lr), with intervals
    fits = sf.as_optimum_fits()                           # {"lr": OptimumFit, "batch_size": OptimumFit}
    fits["lr"].predict([4e9], [1e11])                     # the smooth optimum of a cell, law and scatter
    sf.best_run(4e9, 1e11, B=Bs, lr=lrs)                  # the best run a sweep of runs (Bs[k], lrs[k]) would find

The model (``surface.model``): loss_i ~ StudentT₄(L*_j + f_j(log η_i − log η*_j, log B_i − log B*_j), s_i),
censored above a window of ``surface.data.WINDOW`` nats over the cell's best loss, with a curved,
two-sided bowl f_j per cell shrunk to a population, L*_j about a loss law and
log q*_j = a_q + b_q·x_N + c_q(n)·x_D + σ_q·ε. The optimum laws keep the names and centring of
``optimum.spec`` (a, b, c, σ, and c_n, τ_c for per-N slopes), so each optimum is an ordinary
:class:`~bayes_scaling.optimum.fit.OptimumFit` (model "surface") read through the law spec of
its slopes (``quantized`` for pooled, ``hierarchical`` for per-N).

Two different optima, both predicted: the *smooth optimum* (the argmin of the cell's bowl,
``as_optimum_fits``) and *the best grid run a sweep would find* (``best_run``: the argmin over
the sweep's configurations of a predictive draw of their losses — it adds selection noise and
the grid). A measured best run is the second.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_scaling.errors import InputError
from bayes_scaling.inference.config import SURFACE_TARGET_ACCEPT, SamplerConfig
from bayes_scaling.inference.diagnostics import Diagnostics, diagnose, sampler_free_tree
from bayes_scaling.inference.sampling import CompileCache, sample
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.fit import OptimumFit
from bayes_scaling.laws.base import Law
from bayes_scaling.math.draws import stacked, summarize, summarize_configurations
from bayes_scaling.surface import predict
from bayes_scaling.surface.data import WINDOW, SurfaceData, surface_data
from bayes_scaling.surface.kind import check_approx
from bayes_scaling.surface.model import LOSS_LAW, OPTIMA, SLOPES, build_surface, data_arrays, loss_law

#: ADVI (mean-field) optimisation steps at most; enough for the ELBO to flatten on StepLaw.
ADVI_STEPS = 30_000
#: ADVI stops early (at the soonest after 4 windows) when the mean loss over ADVI_WINDOW steps differs
#: from the window before by no more than ADVI_Z standard errors of the difference, or by less than
#: ADVI_RETURNS of the loss gained since the first window.
ADVI_WINDOW = 1000
ADVI_Z = 2.0
ADVI_RETURNS = 0.01
#: Initial spread of every mean-field factor (unconstrained scale). PyMC's default, 0.69, puts the first
#: draws of the bowl's shapes so far out that a 200k-run likelihood overflows to NaN within 200 steps.
ADVI_START_SIGMA = 0.01
#: Law variables handed to each OptimumFit (per quantity).
LAW_VARS = ("a", "b", "c", "sigma", "tau_c", "c_n")
#: Run columns a saved fit keeps (what the bowls plot and the cell optima read).
SAVED_RUN_COLUMNS = ("N", "D", "B", "lr", "loss", "status", "cell", "slot", "censored", "y", "upper")
#: Columns of ``run_predictions.csv`` after the input columns.
RUN_PREDICTION_COLUMNS = ("loss_median", "loss_mean", "loss_lo", "loss_hi", "ci_prob")
#: The optimum spec whose arithmetic reads the surface's law, by slopes.
LAW_SPEC = {"pooled": "quantized", "per_n": "hierarchical"}


@dataclass
class SurfaceFit:
    """A fitted surface model: the joint posterior of both laws, the bowls and the cell optima."""

    data: SurfaceData
    slopes: str
    idata: xr.DataTree
    diagnostics: Diagnostics
    method: str
    wall_s: float = 0.0
    law: str = LOSS_LAW
    meta: dict = field(default_factory=dict)

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    @property
    def approximate(self) -> bool:
        """An ADVI fit: no MCMC diagnostics to pass or fail."""
        return self.method.startswith("ADVI")

    def as_optimum_fits(self) -> dict[str, OptimumFit]:
        """One OptimumFit per optimum ("lr", "batch_size"), model "surface", sharing this posterior."""
        post = self.posterior
        keep = [v for v in LAW_VARS if v in post]
        law_spec = specs.get(LAW_SPEC[self.slopes])
        fits = {}
        for q in OPTIMA:
            law = post[keep].sel(quantity=q, drop=True)
            tree = xr.DataTree.from_dict({"posterior": law, "sample_stats": self.idata["sample_stats"].to_dataset()})
            fits[q] = OptimumFit("surface", q, self.data.centers(q), self.data.n_levels, law_spec, tree,
                                 diagnostics=self.diagnostics, wall_s=self.wall_s,
                                 meta={"method": self.method, "slopes": self.slopes, "window": self.data.window,
                                       "loss_law": self.law})
        return fits

    def loss_law(self) -> Law:
        """The loss law of L*(N, D), on this fit's cells (its parameters: ``loss_law::`` in the posterior)."""
        return loss_law(self.data, self.law)

    def predict_loss(self, runs: pd.DataFrame, *, ci_prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
        """The posterior predictive of the final loss of each run of ``runs`` (columns N, D, B in tokens,
        lr): ``runs`` with loss_median, loss_mean, loss_lo, loss_hi (equal-tailed ``ci_prob``), ci_prob.
        A run in a fitted cell uses that cell's bowl; one in a new (N, D) carries the loss law's, the
        optimum laws' and the bowl population's uncertainty."""
        draws = predict.loss_draws(self, *(runs[k].to_numpy(float) for k in ("N", "D", "B", "lr")), seed=seed)
        stats = summarize(draws, ci_prob)
        return runs.assign(**{f"loss_{k}": v for k, v in stats.items()}, ci_prob=ci_prob).reset_index(drop=True)

    def best_run(self, N: float, D: float, *, B, lr, ci_prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
        """The best run a sweep of configurations (B, lr) at (N, D) would find: median, geometric mean,
        lo, hi of its lr and B (one row per optimum, ``quantity`` lr / batch_size). The median and the
        bounds are configurations of the sweep, exactly (``summarize_configurations``)."""
        draws = predict.best_run_draws(self, N, D, B, lr, seed=seed)
        rows = []
        for k, q in enumerate(OPTIMA):
            st = {name: float(v) for name, v in summarize_configurations(draws[:, k], ci_prob).items()}
            rows.append({"model": "surface", "quantity": q, "N": N, "D": D, **st, "ci_prob": ci_prob})
        return pd.DataFrame(rows)

    def to_netcdf(self, path) -> None:
        """Save the whole posterior (bowls and laws) with the run and cell arrays it was fitted to."""
        import json

        from bayes_scaling.io import write_datatree

        tree = self.idata.copy()
        runs = self.data.runs[list(SAVED_RUN_COLUMNS)].assign(status=lambda f: (f["status"] == "ok").astype(int),
                                                             censored=lambda f: f["censored"].astype(int))
        tree["surface_runs"] = xr.DataTree(xr.Dataset.from_dataframe(runs.reset_index(drop=True)))
        tree["surface_cells"] = xr.DataTree(xr.Dataset.from_dataframe(self.data.cells.reset_index(drop=True)))
        tree.attrs["bayes_scaling"] = json.dumps({"model": "surface", "slopes": self.slopes, "method": self.method,
                                                  "window": self.data.window, "loss_law": self.law,
                                                  "diagnostics": self.diagnostics.as_dict()})
        write_datatree(path, tree)

    @classmethod
    def from_netcdf(cls, path) -> SurfaceFit:
        """Load a fit saved by :meth:`to_netcdf` (ready for ``as_optimum_fits``, ``cell_optima``, the bowls plot)."""
        import json

        tree = xr.open_datatree(path, engine="h5netcdf").load()
        meta = json.loads(tree.attrs["bayes_scaling"])
        runs = tree["surface_runs"].to_dataset().to_dataframe().reset_index(drop=True)
        runs = runs.assign(status=np.where(runs["status"] == 1, "ok", "diverged"), censored=runs["censored"].astype(bool))
        cells = tree["surface_cells"].to_dataset().to_dataframe().reset_index(drop=True)
        data = SurfaceData(runs=runs, cells=cells, n_levels=np.sort(cells["N"].unique()), window=meta["window"])
        idata = xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset(),
                                       "sample_stats": tree["sample_stats"].to_dataset()})
        return cls(data, meta["slopes"], idata, diagnose(idata, var_names=_diagnosed(idata)), meta["method"],
                   law=meta["loss_law"])

    #: the report figures that suit it (``report.figures.surface.FIGURES``)
    figures = ("surface_bowls",)

    def write_artifacts(self, stage, *, ci_prob: float, predict_runs: pd.DataFrame | None = None) -> None:
        """The surface's own tables: ``surface_cells.csv`` (each cell's optimum beside its best run)
        and, given ``predict_runs`` (``inputs.runtable.read_planned_runs``), ``run_predictions.csv``
        (its columns [run_id,] N, D, B, lr, then RUN_PREDICTION_COLUMNS)."""
        from bayes_scaling.io import write_csv

        write_csv(stage / "surface_cells.csv", self.cell_optima(ci_prob=ci_prob))
        if predict_runs is not None:
            keep = [c for c in ("run_id", "N", "D", "B", "lr") if c in predict_runs.columns]
            pred = self.predict_loss(predict_runs[keep], ci_prob=ci_prob)
            write_csv(stage / "run_predictions.csv", pred[keep + list(RUN_PREDICTION_COLUMNS)])

    def cell_optima(self, ci_prob: float = 0.9) -> pd.DataFrame:
        """Posterior of each cell's latent optimum (natural units) next to its best measured run."""
        draws = np.exp(stacked(self.posterior, "log_opt"))            # (S, quantity, cell)
        tail = (1.0 - ci_prob) / 2.0
        rows = []
        for k, q in enumerate(OPTIMA):
            lo, med, hi = np.quantile(draws[:, k, :], [tail, 0.5, 1 - tail], axis=0)
            col = "best_lr" if q == "lr" else "best_B"
            rows.append(pd.DataFrame({"quantity": q, "N": self.data.cells["N"], "D": self.data.cells["D"],
                                      "median": med, "lo": lo, "hi": hi, "measured": self.data.cells[col],
                                      "ci_prob": ci_prob}))
        return pd.concat(rows, ignore_index=True)


class SurfaceFitter:
    """Fits the surface model, compiling it once per (slopes, table shape) and reusing it
    (nutpie ``with_data``) for every table of that shape (e.g. every simulated table)."""

    def __init__(self, config: SamplerConfig) -> None:
        self.config = config.with_target_accept(SURFACE_TARGET_ACCEPT)
        self.cache = CompileCache(self.config)

    def fit(self, data: SurfaceData, *, slopes: str = "pooled", approx: str | None = None,
            law: str = LOSS_LAW, progress: str | None = None) -> SurfaceFit:
        """Sample (NUTS) or approximate (``approx="advi"``) the posterior of the surface model
        (``progress``: a label under which NUTS reports each tenth of its draws on stderr)."""
        check_approx(approx)
        if slopes not in SLOPES:
            raise InputError(f"--slopes {slopes!r}: choose one of {', '.join(SLOPES)}")
        t0 = time.perf_counter()
        model = build_surface(data, slopes=slopes, law=law)
        if approx == "advi":
            idata, steps = _advi(model, self.config, progress=progress and progress.replace("NUTS", "ADVI"))
            method = f"ADVI mean-field ({steps} steps) — APPROXIMATE, no MCMC guarantees"
        else:
            key = (slopes, law, len(data.cells), data.max_runs, len(data.n_levels))
            idata = sample(model, self.config, compiled=self.cache.get(key, model, data_arrays(data)),
                           log_likelihood=False, progress=progress)
            method = f"NUTS ({self.config.sampler})"
        diag = diagnose(idata, var_names=_diagnosed(idata))
        return SurfaceFit(data, slopes, idata, diag, method, wall_s=time.perf_counter() - t0, law=law)


def _diagnosed(idata: xr.DataTree) -> list[str]:
    """The surface's parameters that diagnostics judge (not the raw offsets and z's behind them)."""
    return [v for v in idata["posterior"].data_vars
            if not (v.endswith(("_raw", "_offset", "_half")) or v == "z_c")]


def fit_surface(runs: pd.DataFrame, config: SamplerConfig, *, slopes: str = "pooled", approx: str | None = None,
                window: float = WINDOW, law: str = LOSS_LAW, source: str = "<table>") -> SurfaceFit:
    """Fit the surface model to a validated run table (a full sweep: several runs per cell)."""
    return SurfaceFitter(config).fit(surface_data(runs, window=window, source=source), slopes=slopes, approx=approx,
                                     law=law)


def _advi(model: pm.Model, config: SamplerConfig, *, progress: str | None = None) -> tuple[xr.DataTree, int]:
    """Mean-field ADVI — at most ADVI_STEPS steps, stopped earlier once the mean loss of a window of
    ADVI_WINDOW steps no longer differs from the window before (``_Converged``) — then ``chains × draws``
    independent draws from the approximation (those inside the support), as one chain (so R-hat and ESS
    say nothing about it: the fit is labelled approximate instead). Returns the draws and the steps taken.
    ``progress`` (a label): a line every ADVI_WINDOW steps with the loss (−ELBO), its ETA that of
    ADVI_STEPS (an upper bound: the fit usually stops sooner)."""
    from bayes_scaling.progress import fraction

    update = fraction(progress, ADVI_STEPS, every=ADVI_WINDOW / ADVI_STEPS) if progress else None
    stopper = _Converged(update)
    pymc_log = logging.getLogger("pymc")
    level = pymc_log.level
    pymc_log.setLevel(logging.ERROR)              # pm.fit logs its progress at INFO
    try:
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            advi = pm.ADVI(random_seed=config.seed, start_sigma={v.name: ADVI_START_SIGMA for v in model.value_vars})
            try:
                approx = advi.fit(n=ADVI_STEPS, progressbar=False, obj_optimizer=pm.adam(learning_rate=0.01),
                                  callbacks=[stopper])
            except FloatingPointError:
                raise InputError(f"--approx advi: the optimisation reached NaN after {stopper.steps} steps; "
                                 "fit by NUTS instead (leave out --approx)") from None
            tree = approx.sample(config.draws * config.chains, random_seed=config.seed)
    finally:
        pymc_log.setLevel(level)
    if update is not None:
        from bayes_scaling.progress import note

        note(f"{progress} done after {stopper.steps} steps ("
             + ("the ELBO settled)" if stopper.settled else "the step budget; the ELBO had not settled)"))
    return sampler_free_tree(_inside_support(tree["posterior"].to_dataset())), stopper.steps


def _inside_support(post: xr.Dataset) -> xr.Dataset:
    """The draws whose every variable is finite: a mean-field draw may fall outside the model's support
    (the loss law's E <= 0, whose log E is NaN), where no posterior draw can be."""
    keep = np.ones(post.sizes["chain"] * post.sizes["draw"], dtype=bool)
    for name in post.data_vars:
        values = post[name].transpose("chain", "draw", ...).values.reshape(keep.size, -1)
        keep &= np.isfinite(values).all(axis=1)
    if not keep.any():
        raise InputError("--approx advi: no draw of the approximation lies inside the model's support; "
                         "fit by NUTS instead (leave out --approx)")
    if keep.all():
        return post
    kept = post.isel(draw=np.flatnonzero(keep))
    return kept.assign_coords(draw=np.arange(kept.sizes["draw"]))


class _Converged:
    """``pm.fit`` callback: reports progress and raises StopIteration (which ends the fit) once the mean
    loss of the last ADVI_WINDOW steps differs from the window before by no more than ADVI_Z standard
    errors of that difference (no change the optimiser's own noise could not explain), or by less than
    ADVI_RETURNS of what the fit has gained since its first window (diminishing returns)."""

    def __init__(self, update) -> None:
        self.update = update
        self.steps = 0
        self.settled = False

    def __call__(self, approx, losses, i) -> None:
        self.steps = i                  # pm.fit passes the steps done so far
        if self.update is not None and losses.size:
            self.update(self.steps, f"loss {_finite_mean(losses[-100:]):.6g} (mean of the last 100 steps)")
        if self.steps % ADVI_WINDOW or self.steps < 4 * ADVI_WINDOW:
            return
        windows = [w[np.isfinite(w)] for w in (losses[-ADVI_WINDOW:], losses[-2 * ADVI_WINDOW:-ADVI_WINDOW])]
        if min(w.size for w in windows) < 2:
            return
        se = np.sqrt(sum(w.var(ddof=1) / w.size for w in windows))
        change = abs(windows[0].mean() - windows[1].mean())
        first = losses[:ADVI_WINDOW][np.isfinite(losses[:ADVI_WINDOW])]
        gained = first.mean() - windows[0].mean() if first.size else 0.0
        if change <= ADVI_Z * se or (gained > 0 and change < ADVI_RETURNS * gained):
            self.settled = True
            raise StopIteration(f"ELBO converged after {self.steps} steps")


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values (a draw outside the support has an infinite loss)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("inf")
