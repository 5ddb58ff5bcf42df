"""What every loss law is and shares: the ``Law`` base class (the whole interface the fit, the
report, the plots and the planner may call), the fitted-law container, and the registry.

A law (one module in ``laws/``, a subclass decorated with :func:`register`) knows its data,
builds a ``pm.Model`` and turns posterior draws into named natural-scale parameters. What
else it can answer it declares, rather than callers probing with ``hasattr``:

* ``has_loss``    — ``loss(posterior, N, D)``: draws of the law's mean loss L(N, D), and
  ``mean_log_loss(x_N, x_D)``: its priors and mean log L as a PyTensor graph (what the law's own
  model and the surface model's L*(N, D) are built on);
* ``has_optimal`` — ``optimal(posterior, C)``: draws of the compute-optimal N*(C), D*(C);
* ``figures``     — the names of the report figures that suit it (``report.figures.laws``).

:func:`fit_law` samples it with ``inference.sampling.sample`` and judges the result with
``inference.diagnostics.diagnose``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bayes_scaling.inference.config import LAW_TARGET_ACCEPT
from bayes_scaling.inference.diagnostics import Diagnostics
from bayes_scaling.math.draws import quantiles
from models.flops import six_n

if TYPE_CHECKING:
    import pandas as pd
    import pymc as pm
    import xarray as xr

    from bayes_scaling.inference.config import SamplerConfig

#: Chinchilla's rule of thumb: compute-optimal training uses ~20 tokens per parameter.
TOKENS_PER_PARAM_RULE = 20.0
#: Budgets with at least this many model sizes get an iso-FLOP curve.
MIN_RUNS_FOR_CURVE = 8


class Law:
    """A loss law on a table. Subclasses set the class attributes and implement ``model`` and
    ``params``, plus ``loss`` / ``optimal`` where they declare ``has_loss`` / ``has_optimal``."""

    name: ClassVar[str]
    formula: ClassVar[str]
    #: the bundled table it fits when ``--data`` is not given
    default_data: ClassVar[str]
    #: published values, param → (median, lo, hi) (lo/hi may be NaN), and their source
    reference: ClassVar[dict[str, tuple[float, float, float]]] = {}
    reference_source: ClassVar[str] = ""
    has_loss: ClassVar[bool] = False
    has_optimal: ClassVar[bool] = False
    figures: ClassVar[tuple[str, ...]] = ()
    #: NUTS target acceptance unless one is given (``inference.config.LAW_TARGET_ACCEPT``)
    target_accept: ClassVar[float] = LAW_TARGET_ACCEPT

    table: pd.DataFrame

    @classmethod
    def from_data(cls, data: str | None = None) -> tuple[Law, str, str]:
        """(the law on ``data`` — a bundled loss table or a path; None: ``default_data`` —, the
        source label, the sha256 of the file behind it)."""
        from bayes_scaling.errors import InputError
        from bayes_scaling.inputs.loss_tables import load_loss_table

        table, source, sha256 = load_loss_table(data or cls.default_data)
        try:
            return cls(table), source, sha256
        except InputError as err:
            raise InputError(f"{source}: {err}") from None

    def model(self) -> pm.Model:
        """A law with a loss (``has_loss``): log loss_i ~ StudentT(ν, mean_log_loss(x_N,i, x_D,i), σ),
        σ ~ HalfNormal(0.1), ν ~ Gamma(2, 0.1), over its table's runs (the law's own priors are in
        :meth:`mean_log_loss`). Laws without a loss build their own."""
        if not self.has_loss:
            raise NotImplementedError
        import pymc as pm

        with pm.Model(coords={"run": np.arange(len(self.table))}) as model:
            x_N = pm.Data("x_N", np.log(self.table["N"].to_numpy()) - self.center_N, dims="run")
            x_D = pm.Data("x_D", np.log(self.table["D"].to_numpy()) - self.center_D, dims="run")
            log_loss = pm.Data("log_loss", np.log(self.table["loss"].to_numpy()), dims="run")
            mu = self.mean_log_loss(x_N, x_D)
            sigma = pm.HalfNormal("sigma", 0.1)
            nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
            pm.StudentT("obs", nu=nu, mu=mu, sigma=sigma, observed=log_loss, dims="run")
        return model

    def params(self, posterior: xr.Dataset) -> dict[str, np.ndarray]:
        """Named natural-scale parameters, each an array of S stacked draws."""
        raise NotImplementedError

    def loss(self, posterior: xr.Dataset, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Draws (S, T) of the mean loss at (N, D) — only where ``has_loss``."""
        raise TypeError(f"the {self.name} law gives no loss L(N, D)")

    def mean_log_loss(self, x_N, x_D):
        """Declare the law's parameters (priors) in the current ``pm.Model`` and return its mean log L
        at centred logs x_N = log N − ``center_N``, x_D = log D − ``center_D`` — only where ``has_loss``."""
        raise TypeError(f"the {self.name} law gives no loss L(N, D)")

    def optimal(self, posterior: xr.Dataset, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draws (S, T) of N*(C), D*(C) — only where ``has_optimal``."""
        raise TypeError(f"the {self.name} law gives no compute-optimal allocation")

    # iso-FLOP curves (the ``isoflop_curves`` figure): by default the law's loss along C = 6ND
    def isoflop_budgets(self) -> np.ndarray:
        """The budgets of the table worth a curve: those with at least MIN_RUNS_FOR_CURVE model sizes."""
        from bayes_scaling.inputs.loss_tables import assign_budgets

        table = assign_budgets(self.table)
        sizes = table.groupby("budget")["N"].nunique()
        return np.asarray(sizes[sizes >= MIN_RUNS_FOR_CURVE].index, dtype=float)

    def isoflop_curve(self, posterior: xr.Dataset, budget: float, N: np.ndarray) -> np.ndarray:
        """Draws (S, G) of the mean loss at model sizes N on the iso-FLOP line C = 6ND."""
        return self.loss(posterior, N, budget / six_n(N))

    def isoflop_minimum(self, posterior: xr.Dataset, budget: float) -> np.ndarray | None:
        """Draws (S,) of the loss-minimising N at ``budget`` (None where the law has none)."""
        return self.optimal(posterior, np.array([budget]))[0][:, 0] if self.has_optimal else None


@dataclass
class LawFit:
    """A law, its posterior and its convergence diagnostics."""

    law: Law
    idata: xr.DataTree
    diagnostics: Diagnostics
    wall_s: float

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    @property
    def n_draws(self) -> int:
        post = self.idata["posterior"]
        return int(post.sizes["chain"] * post.sizes["draw"])

    def param_table(self, ci_prob: float = 0.9) -> pd.DataFrame:
        """One row per parameter: median, equal-tailed interval, published reference."""
        import pandas as pd

        rows = []
        for name, draws in self.law.params(self.posterior).items():
            med, lo, hi = quantiles(draws, ci_prob)
            ref = self.law.reference.get(name, (np.nan, np.nan, np.nan))
            rows.append({"param": name, "median": med, "lo": lo, "hi": hi, "ci_prob": ci_prob,
                         "reference": ref[0], "reference_lo": ref[1], "reference_hi": ref[2]})
        return pd.DataFrame(rows)

    def optimal_table(self, budgets: np.ndarray, ci_prob: float = 0.9) -> pd.DataFrame:
        """N*, D*, tokens/param per budget (median and interval over draws); empty if the law has no optimum."""
        import pandas as pd

        if not self.law.has_optimal:
            return pd.DataFrame()
        N, D = self.law.optimal(self.posterior, budgets)
        rows = []
        for name, draws in (("N_opt", N), ("D_opt", D), ("tokens_per_param", D / N)):
            med, lo, hi = quantiles(draws, ci_prob)
            for t, C in enumerate(budgets):
                rows.append({"C": C, "quantity": name, "median": med[t], "lo": lo[t], "hi": hi[t], "ci_prob": ci_prob})
        return pd.DataFrame(rows)

    def to_netcdf(self, path, source: str) -> None:
        """Save the posterior with the law's name and its data ``source`` (what reloading needs)."""
        from bayes_scaling.io import write_datatree

        tree = self.idata.copy()
        tree.attrs["bayes_scaling"] = json.dumps({"law": self.law.name, "data": source,
                                                  "diagnostics": self.diagnostics.as_dict()})
        write_datatree(path, tree)

    @classmethod
    def from_netcdf(cls, path) -> LawFit:
        """Load a fit saved by :meth:`to_netcdf`: the law is rebuilt on its recorded data source."""
        import xarray as xr

        from bayes_scaling.inference.diagnostics import diagnose

        tree = xr.open_datatree(path, engine="h5netcdf").load()
        meta = json.loads(tree.attrs["bayes_scaling"])
        law, _, _ = registry()[meta["law"]].from_data(meta["data"])
        free = [rv.name for rv in law.model().free_RVs]
        return cls(law, tree, diagnose(tree, var_names=free), 0.0)


def logsumexp_terms(*terms):
    """log Σ_k exp(term_k), elementwise and broadcasting, stable (PyTensor): one fused elementwise
    kernel. ``pt.logsumexp`` over a stacked axis adds join, split and reduction kernels that numba
    compiles apart: the Chinchilla law's cold compile took 50 s with it and 20 s with this."""
    import functools

    import pytensor.tensor as pt

    top = functools.reduce(pt.maximum, terms)
    return top + pt.log(functools.reduce(lambda a, b: a + b, [pt.exp(t - top) for t in terms]))


def fit_law(law: Law, config: SamplerConfig, *, log_likelihood: bool = True) -> LawFit:
    """Sample ``law``'s model and diagnose every free parameter (``log_likelihood=False`` skips the
    pointwise log-likelihood group, a compile the planner does not need)."""
    from bayes_scaling.inference.diagnostics import diagnose
    from bayes_scaling.inference.sampling import sample

    t0 = time.perf_counter()
    model = law.model()
    idata = sample(model, config.with_target_accept(law.target_accept), log_likelihood=log_likelihood)
    free = [rv.name for rv in model.free_RVs]
    return LawFit(law, idata, diagnose(idata, var_names=free), time.perf_counter() - t0)


_REGISTRY: dict[str, type[Law]] = {}


def register(cls: type[Law]) -> type[Law]:
    """Class decorator: add a law class to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two loss laws are called {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Law]]:
    """Every loss law class, by name (every module of ``laws/`` registers its own)."""
    from bayes_scaling import laws

    for module in pkgutil.iter_modules(laws.__path__):
        if module.name != "base":
            importlib.import_module(f"{laws.__name__}.{module.name}")
    return dict(_REGISTRY)
