"""The façade: build → fit → predict/report for the laws of η* and B*.

    fits = fit_optimum("blog-partII", model="hierarchical")      # {"lr": OptimumFit, "batch_size": ...}
    fits["lr"].predict([4e9], [1e11])                             # median, mean, lo, hi
    fits["lr"].coefficients()                                     # exponents with intervals

:class:`Fitter` compiles each model kind once (nutpie, ~3–5 s) and reuses the
compiled model for the other quantity and for every leave-out refit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling import optimum_models, sampling
from bayes_scaling.baseline import OLSFit, fit_ols
from bayes_scaling.datasets import load_runs
from bayes_scaling.io import write_datatree
from bayes_scaling.optimum_models import Centers
from bayes_scaling.predict import latent_draws, observed_logp, stacked, summarize
from bayes_scaling.runtable import QUANTITIES, BestRuns, QuantityData, best_runs
from bayes_scaling.sampling import Diagnostics, SamplerConfig

ALL_MODELS = ("ols",) + optimum_models.MODELS
REFIT_DRAWS = 500
REFIT_TUNE = 300


@dataclass
class OptimumFit:
    """One fitted law of one optimum: posterior (or OLS bootstrap) plus what predicting needs."""

    model: str
    quantity: str
    centers: Centers
    n_levels: np.ndarray
    idata: xr.DataTree | None = None
    diagnostics: Diagnostics | None = None
    ols: OLSFit | None = None
    wall_s: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    def log_draws(self, N, D, *, seed: int = 0, noise: bool = True) -> np.ndarray:
        """Draws (S, T) of log q* at targets (N, D); OLS gives its bootstrap lines."""
        log_N = np.log(np.atleast_1d(np.asarray(N, dtype=float)))
        log_D = np.log(np.atleast_1d(np.asarray(D, dtype=float)))
        if self.ols is not None:
            return self.ols.predict_log(log_N, log_D)[1]
        return latent_draws(self.posterior, self.centers, self.n_levels, log_N, log_D,
                            rng=np.random.default_rng(seed), noise=noise)

    def predict(self, N, D, *, ci_prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
        """Median, mean and equal-tailed interval of the optimum (natural units) at each target."""
        N = np.atleast_1d(np.asarray(N, dtype=float))
        D = np.atleast_1d(np.asarray(D, dtype=float))
        stats = summarize(np.exp(self.log_draws(N, D, seed=seed)), ci_prob)
        out = pd.DataFrame({"model": self.model, "quantity": self.quantity, "N": N, "D": D, **stats, "ci_prob": ci_prob})
        if self.ols is not None:
            out["point"] = np.exp(self.ols.predict_log(np.log(N), np.log(D))[0])
        return out

    def sample_paired(self, N, D, rng: np.random.Generator) -> np.ndarray:
        """One predictive draw per (N[s], D[s]), the s-th using posterior draw s mod S.

        This is how another posterior (e.g. a loss law's compute-optimal N*, D*) is
        propagated draw by draw rather than by plugging in its median.
        """
        N = np.atleast_1d(np.asarray(N, dtype=float))
        D = np.atleast_1d(np.asarray(D, dtype=float))
        if self.ols is not None:
            boot = self.ols.boot_coef[np.arange(N.size) % len(self.ols.boot_coef)]
            return np.exp(boot[:, 0] + boot[:, 1] * np.log(N) + boot[:, 2] * np.log(D))
        post = self.posterior.stack(sample=("chain", "draw"))
        pick = np.arange(N.size) % post.sizes["sample"]
        sub = (post.isel(sample=pick).drop_vars(["sample", "chain", "draw"])
               .rename(sample="draw").expand_dims("chain").transpose("chain", "draw", ...))
        return np.exp(latent_draws(sub, self.centers, self.n_levels, np.log(N), np.log(D),
                                   rng=rng, noise=True, paired=True))

    def coefficients(self, *, ci_prob: float = 0.9) -> pd.DataFrame:
        """The law on the raw scale: log q = intercept + b_N·log N + c_D·log D, plus σ, τ, per-N slopes."""
        if self.ols is not None:
            boot = self.ols.boot_coef
            samples = {"intercept": boot[:, 0], "b_N": boot[:, 1], "c_D": boot[:, 2]}
        else:
            post = self.posterior
            a, b, c = (stacked(post, k) for k in ("a", "b", "c"))
            samples = {
                "intercept": a - b * self.centers.log_N - c * self.centers.log_D,
                "b_N": b,
                "c_D": c,
                "sigma": stacked(post, "sigma"),
            }
            for extra in ("tau_c", "tau_a"):
                if extra in post:
                    samples[extra] = stacked(post, extra)
            if "c_n" in post:
                for k, n in enumerate(self.n_levels):
                    samples[f"c_D[N={n:.3g}]"] = stacked(post, "c_n")[:, k]
        rows = []
        for name, s in samples.items():
            st = summarize(np.asarray(s)[:, None], ci_prob)
            rows.append({"model": self.model, "quantity": self.quantity, "param": name,
                         **{k: float(v[0]) for k, v in st.items()}, "ci_prob": ci_prob})
        return pd.DataFrame(rows)

    def to_netcdf(self, path: str | Path) -> None:
        """Save the posterior DataTree with the centring constants in its attributes."""
        tree = self.idata.copy()
        tree.attrs["bayes_scaling"] = json.dumps({
            "model": self.model, "quantity": self.quantity,
            "centers": [self.centers.log_N, self.centers.log_D, self.centers.y],
            "n_levels": [float(n) for n in self.n_levels],
            "diagnostics": self.diagnostics.as_dict() if self.diagnostics else None,
        })
        write_datatree(path, tree)

    @classmethod
    def from_netcdf(cls, path: str | Path) -> OptimumFit:
        """Load a fit saved by :meth:`to_netcdf` (ready to predict)."""
        tree = xr.open_datatree(path, engine="h5netcdf").load()
        meta = json.loads(tree.attrs["bayes_scaling"])
        return cls(model=meta["model"], quantity=meta["quantity"], centers=Centers(*meta["centers"]),
                   n_levels=np.asarray(meta["n_levels"]), idata=tree,
                   diagnostics=sampling.diagnose(tree))


class Fitter:
    """Fits models to quantities, compiling each model kind once per table."""

    def __init__(self, config: SamplerConfig, *, per_n_intercepts: bool = False, n_boot: int = 10_000) -> None:
        self.config = config
        self.per_n_intercepts = per_n_intercepts
        self.n_boot = n_boot
        self._compiled: dict[tuple, object] = {}

    def fit(self, kind: str, data: QuantityData, centers: Centers | None = None) -> OptimumFit:
        """Fit model ``kind`` ("ols" or one of optimum_models.MODELS) to ``data``."""
        centers = centers or Centers.of(data)
        t0 = time.perf_counter()
        if kind == "ols":
            ols = fit_ols(data, n_boot=self.n_boot, seed=self.config.seed)
            return OptimumFit("ols", data.name, centers, data.n_levels, ols=ols, wall_s=time.perf_counter() - t0)
        model = optimum_models.build(kind, data, centers, per_n_intercepts=self.per_n_intercepts)
        idata = sampling.sample(model, self.config, compiled=self._compiled_for(kind, model, data, centers),
                                log_likelihood=False)
        idata["log_likelihood"] = _log_likelihood(kind, idata, centers, data)
        return OptimumFit(kind, data.name, centers, data.n_levels, idata=idata,
                          diagnostics=sampling.diagnose(idata, var_names=_diag_vars(idata)),
                          wall_s=time.perf_counter() - t0)

    def refit_posterior(self, kind: str, data: QuantityData, centers: Centers) -> xr.Dataset:
        """Posterior only (no log-likelihood) of ``kind`` on a subset — for exact leave-out refits.

        A refit only has to estimate one point's elpd, so it runs one chain per core
        with at most 300 tuning steps (nutpie adapts these small models in far fewer)
        and 500 draws each (Monte-Carlo error ≪ the elpd's own SE).
        """
        model = optimum_models.build(kind, data, centers, per_n_intercepts=self.per_n_intercepts)
        config = replace(self.config, draws=min(self.config.draws, REFIT_DRAWS), tune=min(self.config.tune, REFIT_TUNE),
                         chains=min(self.config.chains, self.config.cores))
        idata = sampling.sample(model, config, compiled=self._compiled_for(kind, model, data, centers),
                                log_likelihood=False)
        return idata["posterior"].to_dataset()

    def _compiled_for(self, kind, model, data, centers):
        """The compiled model for this kind and these N levels (their number fixes the
        parameter shapes and their values the coords); only the data arrays are swapped."""
        if self.config.sampler != "nutpie":
            return None
        key = (kind, tuple(float(n) for n in data.n_levels))
        if key not in self._compiled:
            self._compiled[key] = sampling.compile_model(model, self.config)
            return self._compiled[key]
        compiled = self._compiled[key]
        used = {var.name for var in compiled.shared_var_keys}
        arrays = optimum_models.data_arrays(data, centers)
        return compiled.with_data(**{k: v for k, v in arrays.items() if k in used})


def _log_likelihood(kind: str, idata: xr.DataTree, centers: Centers, data: QuantityData) -> xr.DataTree:
    """The ``log_likelihood`` group (variable ``q_obs``, the observed node of every builder),
    computed in NumPy by :func:`~bayes_scaling.predict.observed_logp` — the same numbers as
    ``pm.compute_log_likelihood`` (``tests/test_recovery.py`` checks), without compiling a
    PyTensor function per fit."""
    post = idata["posterior"].to_dataset()
    ll = observed_logp(kind, post, centers, data.n_levels, data, cell_probability=kind != "pooled")
    shape = (post.sizes["chain"], post.sizes["draw"], len(data.y))
    ds = xr.Dataset({"q_obs": (("chain", "draw", "cell"), ll.reshape(shape))},
                    coords={"chain": post["chain"], "draw": post["draw"], "cell": list(data.cell)})
    return xr.DataTree(ds)


def _diag_vars(idata: xr.DataTree) -> list[str]:
    """Free parameters and per-N slopes (not the raw non-centred z's, which add nothing)."""
    return [v for v in idata["posterior"].data_vars if not v.startswith("z_")]


def fit_optimum(
    data: str | BestRuns = "blog-partII",
    model: str = "hierarchical",
    config: SamplerConfig | None = None,
    *,
    quantities: tuple[str, ...] = tuple(QUANTITIES),
    lr_grid: str | None = None,
    batch_grid: str | None = None,
    per_n_intercepts: bool = False,
) -> dict[str, OptimumFit]:
    """Fit the law of each optimum on a bundled dataset name, a path, or a BestRuns table."""
    if isinstance(data, str):
        loaded = load_runs(data, lr_grid=lr_grid, batch_grid=batch_grid)
        data = best_runs(loaded.runs, source=loaded.source, lr_grid=loaded.lr_grid, batch_grid=loaded.batch_grid)
    fitter = Fitter(config or SamplerConfig(), per_n_intercepts=per_n_intercepts)
    return {q: fitter.fit(model, data.quantity(q)) for q in quantities}
