"""Fit and predict with the full-surface model (``--model surface``): every run, not just the best.

    sf = fit_surface(runs, SamplerConfig())              # NUTS; approx="advi" for a fast, approximate fit
    fits = sf.as_optimum_fits()                           # {"lr": OptimumFit, "batch_size": OptimumFit}
    fits["lr"].predict([4e9], [1e11]); fits["lr"].coefficients()
    sf.plot_bowls("bowls.png")

The model (``surface_model``): loss_i ~ StudentT₄(L*_j + f_j(log η_i − log η*_j, log B_i − log B*_j), σ_L),
censored above a window of ``surface_data.WINDOW`` nats over the cell's best loss (runs
above it, diverged ones included, say only "the loss here is above the window"), with
log q*_j = a_q + b_q·x_N + c_q(n)·x_D + σ_q·ε. The law parameters keep the names and
centring of ``optimum_models`` (a, b, c, σ, and c_n, τ_c for per-N slopes), so each
optimum is served by an ordinary :class:`~bayes_scaling.api.OptimumFit` (model "surface").

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
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_scaling import sampling
from bayes_scaling.api import OptimumFit
from bayes_scaling.errors import InputError
from bayes_scaling.io import atomic_path
from bayes_scaling.predict import stacked
from bayes_scaling.sampling import Diagnostics, SamplerConfig
from bayes_scaling.surface_data import WINDOW, SurfaceData, surface_data
from bayes_scaling.surface_model import OPTIMA, SLOPES, bowl, build_surface, data_arrays

APPROX = ("advi",)
#: ADVI (mean-field) optimisation steps; enough for the ELBO to flatten on StepLaw.
ADVI_STEPS = 30_000
#: Law variables handed to each OptimumFit (per quantity).
LAW_VARS = ("a", "b", "c", "sigma", "tau_c", "c_n")


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

    def as_optimum_fits(self) -> dict[str, OptimumFit]:
        """One OptimumFit per optimum ("lr", "batch_size"), model "surface", sharing this posterior."""
        post = self.posterior
        keep = [v for v in LAW_VARS if v in post]
        fits = {}
        for q in OPTIMA:
            law = post[keep].sel(quantity=q, drop=True)
            tree = xr.DataTree.from_dict({"posterior": law, "sample_stats": self.idata["sample_stats"].to_dataset()})
            fits[q] = OptimumFit("surface", q, self.data.centers(q), self.data.n_levels, idata=tree,
                                 diagnostics=self.diagnostics, wall_s=self.wall_s,
                                 meta={"method": self.method, "slopes": self.slopes, "window": self.data.window})
        return fits

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

    def plot_bowls(self, path: str | Path, *, n_draws: int = 200) -> Path:
        """Per-cell panels: measured loss vs log₂ η at the 3 batch sizes nearest the fitted B*,
        with the fitted bowl (posterior median) and the fitted η* (line, 90 % band)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        post, d = self.posterior, self.data
        S = stacked(post, "a").shape[0]
        pick = np.linspace(0, S - 1, min(n_draws, S)).astype(int)
        p = {k: stacked(post, k)[pick] for k in ("log_opt", "log_h", "rho", "beta", "delta_s", "l_star")}
        n = len(d.cells)
        cols = int(np.ceil(np.sqrt(n)))
        rows_ = int(np.ceil(n / cols))
        fig, axes = plt.subplots(rows_, cols, figsize=(3.2 * cols, 2.6 * rows_), squeeze=False)
        for j, ax in enumerate(axes.flat):
            if j >= n:
                ax.axis("off")
                continue
            runs = d.runs[d.runs["cell"] == j]
            log_eta = np.log(runs["lr"].to_numpy())
            grid = np.linspace(log_eta.min(), log_eta.max(), 80)
            b_star = np.median(p["log_opt"][:, 1, j])
            sizes = np.unique(runs["B"])
            near = sizes[np.argsort(np.abs(np.log(sizes) - b_star))[:3]]
            for color, bsz in zip(("C0", "C1", "C2"), np.sort(near)):
                at = runs[np.isclose(runs["B"], bsz)]
                exact = ~at["censored"].to_numpy()
                ax.plot(np.log2(at["lr"])[exact], at["y"][exact], "o", ms=3, color=color, label=f"B={bsz:.3g}")
                ax.plot(np.log2(at["lr"])[~exact], at["y"][~exact], "^", ms=3, mfc="none", color=color)
                curve = p["l_star"][:, j, None] + bowl(
                    grid[None, :] - p["log_opt"][:, 0, j, None], np.log(bsz) - p["log_opt"][:, 1, j, None],
                    np.exp(p["delta_s"][:, j, None]), np.exp(p["log_h"].T[..., None]), p["rho"][:, None],
                    p["beta"].T[..., None])
                ax.plot(grid / np.log(2), np.median(curve, axis=0), "-", lw=1, color=color)
            eta = p["log_opt"][:, 0, j] / np.log(2)
            ax.axvline(np.median(eta), color="k", lw=0.8)
            ax.axvspan(*np.quantile(eta, [0.05, 0.95]), color="k", alpha=0.1, lw=0)
            lmin = d.cells["min_loss"].iloc[j]
            ax.set_ylim(lmin - 0.2 * d.window, lmin + 1.1 * d.window)
            ax.set_title(d.cell_names[j], fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="upper left")
        fig.supxlabel("log₂ learning rate  (○ exact, △ censored: above the window, drawn at its top)")
        fig.supylabel("final loss")
        fig.suptitle(f"surface model ({self.method}, slopes={self.slopes}): fitted bowls over measured losses", fontsize=10)
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
        plt.close(fig)
        return path


class SurfaceFitter:
    """Fits the surface model, compiling it once per (slopes, table shape) and reusing it
    (nutpie ``with_data``) for every table of that shape (e.g. every simulated table)."""

    def __init__(self, config: SamplerConfig) -> None:
        self.config = config
        self._compiled: dict[tuple, object] = {}

    def fit(self, data: SurfaceData, *, slopes: str = "pooled", approx: str | None = None) -> SurfaceFit:
        """Sample (NUTS) or approximate (``approx="advi"``) the posterior of the surface model."""
        if slopes not in SLOPES:
            raise ValueError(f"slopes must be one of {SLOPES}, got {slopes!r}")
        if approx == "pathfinder":
            raise InputError("--approx pathfinder needs pymc-extras, which is not installed here; use --approx advi")
        if approx is not None and approx not in APPROX:
            raise InputError(f"--approx must be one of {', '.join(APPROX)} (or omitted for NUTS), got {approx!r}")
        t0 = time.perf_counter()
        model = build_surface(data, slopes=slopes)
        if approx == "advi":
            idata = _advi(model, self.config)
            method = f"ADVI mean-field ({ADVI_STEPS} steps) — APPROXIMATE, no MCMC guarantees"
        else:
            idata = sampling.sample(model, self.config, compiled=self._compiled_for(model, data, slopes),
                                    log_likelihood=False)
            method = f"NUTS ({self.config.sampler})"
        diag = sampling.diagnose(idata, var_names=[v for v in idata["posterior"].data_vars if v not in ("rho_raw", "z_c")])
        return SurfaceFit(data, slopes, idata, diag, method, wall_s=time.perf_counter() - t0)

    def _compiled_for(self, model: pm.Model, data: SurfaceData, slopes: str):
        if self.config.sampler != "nutpie":
            return None
        key = (slopes, len(data.runs), len(data.cells), len(data.n_levels))
        if key not in self._compiled:
            self._compiled[key] = sampling.compile_model(model, self.config)
            return self._compiled[key]
        compiled = self._compiled[key]
        used = {var.name for var in compiled.shared_var_keys}
        return compiled.with_data(**{k: v for k, v in data_arrays(data).items() if k in used})


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
