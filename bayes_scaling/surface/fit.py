"""Fit and predict with the full-surface model (``--models surface``): every run, not just the best.

    sf = fit_surface(runs, SamplerConfig())              # NUTS; approx="advi" for a fast, approximate fit
    fits = sf.as_optimum_fits()                           # {"lr": OptimumFit, "batch_size": OptimumFit}
    fits["lr"].predict([4e9], [1e11]); fits["lr"].coefficients()

The model (``surface.model``): loss_i ~ StudentT₄(L*_j + f_j(log η_i − log η*_j, log B_i − log B*_j), σ_L),
censored above a window of ``surface.data.WINDOW`` nats over the cell's best loss (runs
above it, diverged ones included, say only "the loss here is above the window"), with
log q*_j = a_q + b_q·x_N + c_q(n)·x_D + σ_q·ε. The law parameters keep the names and
centring of ``optimum.spec`` (a, b, c, σ, and c_n, τ_c for per-N slopes), so each optimum
is an ordinary :class:`~bayes_scaling.optimum.fit.OptimumFit` (model "surface") read
through the law spec of its slopes (``quantized`` for pooled, ``hierarchical`` for per-N).

Known limitation (StepLaw, see the backtest): the minimum of the fitted smooth bowl sits
~0.5 log₂ below the best measured η (and ~0.3 log₂ below the best B) in almost every cell
— also in unpooled single-cell robust fits with a per-side shape — because the measured
bowls are flat-bottomed with a cliff at high η. Its intervals, which describe that smooth
optimum, are therefore too narrow to cover the measured best run.
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
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inference.diagnostics import Diagnostics, diagnose
from bayes_scaling.inference.sampling import CompileCache, sample
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.fit import OptimumFit
from bayes_scaling.surface.data import WINDOW, SurfaceData, surface_data
from bayes_scaling.surface.kind import check_approx
from bayes_scaling.surface.model import OPTIMA, SLOPES, build_surface, data_arrays

#: ADVI (mean-field) optimisation steps; enough for the ELBO to flatten on StepLaw.
ADVI_STEPS = 30_000
#: Law variables handed to each OptimumFit (per quantity).
LAW_VARS = ("a", "b", "c", "sigma", "tau_c", "c_n")
#: Run columns a saved fit keeps (what the bowls plot and the cell optima read).
SAVED_RUN_COLUMNS = ("N", "D", "B", "lr", "loss", "status", "cell", "censored", "y", "upper")
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
                                 meta={"method": self.method, "slopes": self.slopes, "window": self.data.window})
        return fits

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
                                                  "window": self.data.window, "diagnostics": self.diagnostics.as_dict()})
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
        return cls(data, meta["slopes"], idata, diagnose(idata, var_names=_diagnosed(idata)), meta["method"])

    #: the report figures that suit it (``report.figures.surface.FIGURES``)
    figures = ("surface_bowls",)

    def write_artifacts(self, stage, *, ci_prob: float) -> None:
        """The surface's own table: ``surface_cells.csv``, each cell's optimum beside its best run."""
        from bayes_scaling.io import write_csv

        write_csv(stage / "surface_cells.csv", self.cell_optima(ci_prob=ci_prob))

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
        self.config = config
        self.cache = CompileCache(config)

    def fit(self, data: SurfaceData, *, slopes: str = "pooled", approx: str | None = None) -> SurfaceFit:
        """Sample (NUTS) or approximate (``approx="advi"``) the posterior of the surface model."""
        check_approx(approx)
        if slopes not in SLOPES:
            raise InputError(f"--slopes {slopes!r}: choose one of {', '.join(SLOPES)}")
        t0 = time.perf_counter()
        model = build_surface(data, slopes=slopes)
        if approx == "advi":
            idata = _advi(model, self.config)
            method = f"ADVI mean-field ({ADVI_STEPS} steps) — APPROXIMATE, no MCMC guarantees"
        else:
            key = (slopes, len(data.runs), len(data.cells), len(data.n_levels))
            idata = sample(model, self.config, compiled=self.cache.get(key, model, data_arrays(data)),
                           log_likelihood=False)
            method = f"NUTS ({self.config.sampler})"
        diag = diagnose(idata, var_names=_diagnosed(idata))
        return SurfaceFit(data, slopes, idata, diag, method, wall_s=time.perf_counter() - t0)


def _diagnosed(idata: xr.DataTree) -> list[str]:
    """The surface's parameters that diagnostics judge (not the raw non-centred ones)."""
    return [v for v in idata["posterior"].data_vars if v not in ("rho_raw", "z_c")]


def fit_surface(runs: pd.DataFrame, config: SamplerConfig, *, slopes: str = "pooled", approx: str | None = None,
                window: float = WINDOW, source: str = "<table>") -> SurfaceFit:
    """Fit the surface model to a validated run table (a full sweep: several runs per cell)."""
    return SurfaceFitter(config).fit(surface_data(runs, window=window, source=source), slopes=slopes, approx=approx)


def _advi(model: pm.Model, config: SamplerConfig) -> xr.DataTree:
    """Mean-field ADVI, then ``chains × draws`` independent draws from the approximation, as one
    chain (so R-hat and ESS say nothing about it: the fit is labelled approximate instead)."""
    pymc_log = logging.getLogger("pymc")
    level = pymc_log.level
    pymc_log.setLevel(logging.ERROR)              # pm.fit logs its progress at INFO
    try:
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            approx = pm.fit(n=ADVI_STEPS, method="advi", random_seed=config.seed, progressbar=False,
                            obj_optimizer=pm.adam(learning_rate=0.01))
            tree = approx.sample(config.draws * config.chains, random_seed=config.seed)
    finally:
        pymc_log.setLevel(level)
    post = tree["posterior"].to_dataset()
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((1, post.sizes["draw"]), dtype=bool))},
                       coords={"chain": post["chain"], "draw": post["draw"]})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
