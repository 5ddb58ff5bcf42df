"""Fit a model kind to an optimum and use the result: build → fit → predict / report / save.

    fitter = Fitter(SamplerConfig())
    fit = fitter.fit("hierarchical", best.quantity("lr"))        # an OptimumFit
    fit.predict([4e9], [1e11])                                    # median, mean, lo, hi
    fit.coefficients()                                            # exponents with intervals
    fit.to_netcdf("lr.nc"); OptimumFit.from_netcdf("lr.nc")

:class:`Fitter` compiles each model kind once per set of N levels (nutpie, ~3–5 s) and reuses
the compiled model for the other quantity and for every leave-out refit. Every kind —
the OLS baseline included — keeps its draws as a posterior, and its spec
(``optimum.spec``) does the arithmetic, so there is one result type.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inference.diagnostics import Diagnostics, diagnose
from bayes_scaling.inputs.runtable import QUANTITIES, BestRuns, QuantityData
from bayes_scaling.io import write_datatree
from bayes_scaling.math.draws import summarize
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.spec import Centers, ModelOptions, OptimumSpec
from bayes_scaling.optimum.specs.ols import N_BOOT


@dataclass
class OptimumFit:
    """One fitted law of one optimum: the draws, the spec that reads them, and what predicting needs.

    ``model`` is the kind shown in reports; ``spec`` does the arithmetic (the same kind, except
    for optima of the surface model, which are read through the law spec of its slopes).
    """

    model: str
    quantity: str
    centers: Centers
    n_levels: np.ndarray
    spec: OptimumSpec
    idata: xr.DataTree
    diagnostics: Diagnostics | None = None
    wall_s: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    @property
    def bayesian(self) -> bool:
        return self.spec.bayesian

    @property
    def couples(self) -> bool:
        """Fitted together with the other optimum (draw both with :meth:`sample_pair`)."""
        return self.spec.couples

    def log_draws(self, N, D, *, seed: int = 0, noise: bool = True) -> np.ndarray:
        """Draws (S, T) of log q* at targets (N, D); ``noise=False``: the law's mean."""
        log_N = np.log(np.atleast_1d(np.asarray(N, dtype=float)))
        log_D = np.log(np.atleast_1d(np.asarray(D, dtype=float)))
        return self.spec.predictive(self.posterior, self.centers, self.n_levels, log_N, log_D,
                                    rng=np.random.default_rng(seed), noise=noise)

    def predict(self, N, D, *, ci_prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
        """Median, mean and equal-tailed interval of the optimum (natural units) at each target
        (and, for the OLS baseline, its full-data ``point``)."""
        N = np.atleast_1d(np.asarray(N, dtype=float))
        D = np.atleast_1d(np.asarray(D, dtype=float))
        stats = summarize(np.exp(self.log_draws(N, D, seed=seed)), ci_prob)
        out = pd.DataFrame({"model": self.model, "quantity": self.quantity, "N": N, "D": D, **stats, "ci_prob": ci_prob})
        point = getattr(self.spec, "point", None)
        if point is not None:
            out["point"] = np.exp(point(self.idata, self.centers, np.log(N), np.log(D)))
        return out

    def sample_paired(self, N, D, rng: np.random.Generator) -> np.ndarray:
        """One predictive draw per (N[s], D[s]), the s-th using posterior draw s mod S.

        This is how another posterior (e.g. a loss law's compute-optimal N*, D*) is
        propagated draw by draw rather than by plugging in its median.
        """
        N, D, sub = self._paired_posterior(N, D)
        return np.exp(self.spec.predictive(sub, self.centers, self.n_levels, np.log(N), np.log(D),
                                           rng=rng, noise=True, paired=True))

    def sample_pair(self, N, D, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`sample_paired`, for a kind that fits both optima together (``spec.couples``): one
        joint draw (this optimum, the other) per (N[s], D[s]), the other drawn given this one."""
        N, D, sub = self._paired_posterior(N, D)
        own, other = self.spec.pair_draws(sub, self.centers, self.n_levels, np.log(N), np.log(D), rng=rng, paired=True)
        return np.exp(own), np.exp(other)

    def _paired_posterior(self, N, D) -> tuple[np.ndarray, np.ndarray, xr.Dataset]:
        """(N, D, posterior) with posterior draw s mod S as the s-th of N.size draws."""
        N = np.atleast_1d(np.asarray(N, dtype=float))
        D = np.atleast_1d(np.asarray(D, dtype=float))
        post = self.posterior.stack(sample=("chain", "draw"))
        pick = np.arange(N.size) % post.sizes["sample"]
        sub = (post.isel(sample=pick).drop_vars(["sample", "chain", "draw"])
               .rename(sample="draw").expand_dims("chain").transpose("chain", "draw", ...))
        return N, D, sub

    def coefficient_draws(self) -> dict[str, np.ndarray]:
        """Draws of the law on the raw log scale (intercept, b_N, c_D, σ, and the kind's extras)."""
        return self.spec.coefficient_draws(self.posterior, self.centers, self.n_levels)

    def coefficients(self, *, ci_prob: float = 0.9) -> pd.DataFrame:
        """The law on the raw scale: log q = intercept + b_N·log N + c_D·log D, plus σ, τ, per-N slopes."""
        rows = []
        for name, s in self.coefficient_draws().items():
            st = summarize(np.asarray(s)[:, None], ci_prob)
            rows.append({"model": self.model, "quantity": self.quantity, "param": name,
                         **{k: float(v[0]) for k, v in st.items()}, "ci_prob": ci_prob})
        return pd.DataFrame(rows)

    def to_netcdf(self, path: str | Path) -> None:
        """Save the draws as a DataTree, with what reloading needs in its attributes."""
        tree = self.idata.copy()
        tree.attrs["bayes_scaling"] = json.dumps({
            "model": self.model, "spec": self.spec.name, "quantity": self.quantity,
            "centers": [self.centers.log_N, self.centers.log_D, self.centers.y, self.centers.sigma_sel,
                        self.centers.pair_y, self.centers.pair_sigma_sel],
            "n_levels": [float(n) for n in self.n_levels],
            "diagnostics": self.diagnostics.as_dict() if self.diagnostics else None,
            "meta": self.meta,
        }, default=str)
        write_datatree(path, tree)

    @classmethod
    def from_netcdf(cls, path: str | Path) -> OptimumFit:
        """Load a fit saved by :meth:`to_netcdf` (ready to predict) — any kind, the baseline too."""
        tree = xr.open_datatree(path, engine="h5netcdf").load()
        meta = json.loads(tree.attrs["bayes_scaling"])
        spec = specs.get(meta.get("spec", meta["model"]))
        diagnostics = diagnose(tree, var_names=spec.diagnostic_vars(tree["posterior"].to_dataset())) \
            if spec.bayesian else None
        return cls(model=meta["model"], quantity=meta["quantity"], centers=Centers(*meta["centers"]),
                   n_levels=np.asarray(meta["n_levels"]), spec=spec, idata=tree, diagnostics=diagnostics,
                   meta=meta.get("meta") or {})


class Fitter:
    """Fits model kinds to quantities, compiling each kind once per set of N levels."""

    def __init__(self, config: SamplerConfig | None = None, *, options: ModelOptions = ModelOptions(),
                 n_boot: int = N_BOOT) -> None:
        from bayes_scaling.inference.sampling import CompileCache

        self.config = config or SamplerConfig()
        self.options = options
        self.n_boot = n_boot
        self.cache = CompileCache(self.config)
        #: draws a kind may hand from one optimum's fit to the other's (``joint``: one posterior holds both laws)
        self.shared: dict = {}

    def fit(self, kind: str, data: QuantityData, centers: Centers | None = None) -> OptimumFit:
        """Fit model ``kind`` (a name in ``optimum.spec.registry()``) to ``data``."""
        spec = specs.get(kind)
        centers = centers or Centers.of(data)
        t0 = time.perf_counter()
        idata, diagnostics = spec.fit(data, centers, self)
        return OptimumFit(spec.name, data.name, centers, data.n_levels, spec, idata, diagnostics,
                          wall_s=time.perf_counter() - t0)

    def refit_posterior(self, kind: str, data: QuantityData, centers: Centers) -> xr.Dataset:
        """Posterior only (no log-likelihood) of ``kind`` on a subset — for exact leave-out refits."""
        return specs.get(kind).refit_posterior(data, centers, self)


def fit_optimum(
    data: str | BestRuns = "blog-partII",
    model: str = "hierarchical",
    config: SamplerConfig | None = None,
    *,
    quantities: tuple[str, ...] = tuple(QUANTITIES),
    lr_grid: str | None = None,
    batch_grid: str | None = None,
    options: ModelOptions = ModelOptions(),
) -> dict[str, OptimumFit]:
    """Fit the law of each optimum on a bundled dataset name, a path, or a BestRuns table."""
    if isinstance(data, str):
        from bayes_scaling.inputs.datasets import load_runs
        from bayes_scaling.inputs.runtable import check_design

        loaded = load_runs(data, lr_grid=lr_grid, batch_grid=batch_grid)
        data = loaded.best()
        check_design(data.frame, loaded.source)
    fitter = Fitter(config, options=options)
    return {q: fitter.fit(model, data.quantity(q)) for q in quantities}
