"""What an optimum model kind is: one spec object that holds everything about it, and their registry.

A model kind is a law of one optimum q* ∈ {η*, B*} fitted to a best-runs table
(``inputs.runtable.QuantityData``: each (N, D) cell's best grid value and its grid cell).
With centred logs x_N = log N − m_N, x_D = log D − m_D (``Centers``, fixed per table), its
spec — one file in ``optimum/specs/`` — holds, side by side:

* ``formula`` / ``summary``: the model in one formula, and its ``--help`` line;
* ``build``: the PyMC model. Data enter as one ``pm.Data`` table ``cells`` (rows
  ``CELL_COLUMNS``), the observed node is ``q_obs`` (dims ``cell``);
* ``mean`` / ``scatter`` / ``predictive``: NumPy posterior-predictive draws of log q* at any
  (N, D) — the same numbers ``pm.sample_posterior_predictive`` gives, without a compile;
* ``log_likelihood``: NumPy pointwise log-likelihood of ``q_obs`` (the LOO weights), equal
  to ``pm.compute_log_likelihood``; ``cell_logp``: the probability of the observed grid cell,
  the outcome on which LOO compares every kind;
* ``prior_draws``: draws from the PyMC model's own prior (``pm.sample_prior_predictive``),
  from which ``evaluation.calibration`` simulates tables for SBC;
* ``coefficient_draws``: the law on the raw log scale for reports; ``style`` for plots.

``tests/test_specs.py`` checks every registered spec against PyMC's own log-likelihood and
posterior predictive. To add a model kind, write one module in ``optimum/specs/`` that
defines a subclass and decorates it with :func:`register`; the command lines, reports,
plots, backtests and SBC iterate the registry (:func:`registry`) and pick it up.

Priors shared by the kinds (weakly informative on the centred scale): a ~ Normal(ȳ, 2),
b, c ~ Normal(0, 1), σ ~ Gamma(2, 10) (mean 0.2), τ ~ LogNormal(log 0.1, 0.75). Both scale
priors vanish at 0 on purpose: a HalfNormal τ put mass in the funnel's neck and gave
hundreds of divergences, and as σ → 0 the interval-censored likelihood becomes a step
function of μ (a cliff at every cell edge) that NUTS cannot follow.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bayes_scaling.inference.config import TARGET_ACCEPT, TUNE
from bayes_scaling.inputs.grids import SAME_SIZE_LOG_TOL, SELECTION_JITTER
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.priors import Gamma, Normal, Prior

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from bayes_scaling.inputs.runtable import QuantityData
    from bayes_scaling.inference.diagnostics import Diagnostics
    from bayes_scaling.optimum.fit import Fitter

#: Rows of the ``cells`` data table, in order (``n_index`` is stored as a float and cast back; the
#: table constants ȳ and σ_sel ride along as constant rows, so one compiled model serves every table;
#: ``se`` is each y's standard error when y is an estimate, 0 for a grid value).
CELL_COLUMNS = ("x_N", "x_D", "y_obs", "lo", "hi", "n_index", "a_loc", "sigma_sel", "se")
#: Population-scale prior of per-N deviations: LogNormal(log TAU_PRIOR_MEDIAN, TAU_PRIOR_SIGMA).
TAU_PRIOR_MEDIAN = 0.1
TAU_PRIOR_SIGMA = 0.75
#: Scatter prior σ ~ Gamma(2, 2/SIGMA_PRIOR_MEAN): zero density at σ = 0 (boundary-avoiding).
SIGMA_PRIOR_MEAN = 0.2
#: Default selection jitter σ_sel (log units) of the best grid value (``inputs.grids``). Without
#: it, as σ → 0 the censored likelihood becomes a step function of μ and NUTS diverges at the
#: cliffs; 0.05 (5 % in q) is far below a grid step (log 2 = 0.69) so it barely blurs the cells.
SIGMA_FLOOR = SELECTION_JITTER
#: A target N within this log distance of a fitted size is that size (uses its own slope).
SAME_N_ATOL = SAME_SIZE_LOG_TOL
#: Exact leave-out refits estimate one held-out block's elpd: one chain of these many draws
#: (``benchmarks/bench_refits.py``: within ~0.1 nats of a 4 × 2000-draw refit, ~10× cheaper).
REFIT_CHAINS = 1
REFIT_DRAWS = 400
REFIT_TUNE = 300


@dataclass(frozen=True)
class Centers:
    """The constants of a table a law is fitted on: m_N, m_D (log-means of the cells' N and D), ȳ (the
    log-mean optimum) and σ_sel, the selection jitter of its best runs (``inputs.runtable``); and the
    same two of the other optimum (its ``partner``), which the joint law of both uses."""

    log_N: float
    log_D: float
    y: float
    sigma_sel: float = SIGMA_FLOOR
    pair_y: float | None = None
    pair_sigma_sel: float = SIGMA_FLOOR

    @classmethod
    def of(cls, data: QuantityData) -> Centers:
        pair = data.partner
        return cls(float(np.mean(data.log_N)), float(np.mean(data.log_D)), float(np.mean(data.y)),
                   float(data.sigma_sel), float(np.nanmean(pair.y)) if pair is not None else None,
                   float(pair.sigma_sel) if pair is not None else SIGMA_FLOOR)


@dataclass(frozen=True)
class ModelOptions:
    """Switches of a model kind that change its graph (and so its compiled model): per-N intercepts,
    and priors that replace a kind's defaults (``--prior NAME=DIST``), by parameter name."""

    per_n_intercepts: bool = False
    priors: tuple[tuple[str, Prior], ...] = ()

    def prior_for(self, name: str) -> Prior | None:
        return dict(self.priors).get(name)

    def as_dict(self) -> dict:
        """The options as a manifest (and a resumable run's settings) record them."""
        return {"per_n_intercepts": self.per_n_intercepts, "priors": {k: str(v) for k, v in self.priors}}


def cells_table(data: QuantityData, centers: Centers) -> np.ndarray:
    """The ``cells`` table, shape (len(CELL_COLUMNS), n_cells)."""
    rows = {
        "x_N": data.log_N - centers.log_N,
        "x_D": data.log_D - centers.log_D,
        "y_obs": data.y,
        "lo": data.lo,
        "hi": data.hi,
        "n_index": data.n_index.astype(float),
        "a_loc": np.full(len(data.y), centers.y),
        "sigma_sel": np.full(len(data.y), centers.sigma_sel),
        "se": data.se if data.se is not None else np.zeros(len(data.y)),
    }
    return np.vstack([rows[k] for k in CELL_COLUMNS])


def data_table(name: str, values: np.ndarray, columns: tuple[str, ...], dim: str,
               integers: tuple[str, ...] = ()) -> dict:
    """Register ``values`` (one row per name in ``columns``, one column per ``dim`` entry) as the
    single ``pm.Data`` ``name`` with dims (``{dim}_column``, ``dim``); return its rows by name,
    those in ``integers`` (stored as floats) cast back to int64.

    One table rather than an array per field: nutpie's compile time grows with the number of
    shared arrays (8 arrays compile in ~2.5× the time of one table: ``benchmarks/bench_compile.py``).
    """
    import pymc as pm
    import pytensor.tensor as pt

    table = pm.Data(name, values, dims=(f"{dim}_column", dim))
    rows = {column: table[i] for i, column in enumerate(columns)}
    for column in integers:
        rows[column] = pt.cast(pt.round(rows[column]), "int64")
    return rows


def match_levels(log_N: np.ndarray, n_levels: np.ndarray) -> np.ndarray:
    """Index of the fitted size equal to each target N, or -1 for a new size."""
    dist = np.abs(np.asarray(log_N)[:, None] - np.log(np.asarray(n_levels, dtype=float))[None, :])
    return np.where(dist.min(axis=1) < SAME_N_ATOL, dist.argmin(axis=1), -1)


@dataclass(frozen=True)
class Targets:
    """Where to evaluate draws: centred logs, either every draw at every target ((1, T) rows)
    or, ``paired``, draw s at target s only ((S, 1) columns)."""

    x_N: np.ndarray
    x_D: np.ndarray
    log_N: np.ndarray
    paired: bool

    @classmethod
    def at(cls, centers: Centers, log_N, log_D, *, paired: bool = False, n_draws: int | None = None) -> Targets:
        log_N = np.atleast_1d(np.asarray(log_N, dtype=float))
        log_D = np.atleast_1d(np.asarray(log_D, dtype=float))
        if paired and log_N.size != n_draws:
            raise ValueError(f"paired prediction needs one target per draw ({n_draws}), got {log_N.size}")
        shape = (-1, 1) if paired else (1, -1)
        return cls((log_N - centers.log_N).reshape(shape), (log_D - centers.log_D).reshape(shape), log_N, paired)

    def shape(self, n_draws: int) -> tuple[int, int]:
        return (n_draws, 1) if self.paired else (n_draws, self.log_N.size)

    def levels(self, n_levels: np.ndarray, n_draws: int) -> np.ndarray:
        """Fitted-size index of each entry of :meth:`shape`, or −1 − u for the u-th size not fitted.

        Entries at the same new size share u — and so, within a posterior draw, one fresh draw of
        that size's deviations (a candidate cell and a target at one new N are the same model
        size). Paired targets are each their own draw's, so every new size there is u = 0."""
        group = match_levels(self.log_N, n_levels)
        new = group < 0
        if self.paired:
            return group[:, None]
        if new.any():
            _, u = new_sizes(self.log_N[new])
            group = group.copy()
            group[new] = -1 - u
        return np.broadcast_to(group[None, :], self.shape(n_draws))

def new_sizes(log_N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct sizes, index of each entry's) — sizes within SAME_N_ATOL in log are one."""
    order = np.argsort(log_N, kind="stable")
    step = np.diff(log_N[order]) >= SAME_N_ATOL
    rank = np.concatenate([[0], np.cumsum(step)])
    codes = np.empty(log_N.size, dtype=int)
    codes[order] = rank
    return log_N[order][np.concatenate([[True], step])], codes


def per_level(posterior: xr.Dataset, name: str, scale: str, mean: np.ndarray, group: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """(S, T) values of a per-level variable: the fitted level's draw, or — for a level not fitted
    (code −1 − u, ``Targets.levels``) — one fresh population draw mean + scale·ζ_u per new size u."""
    values, tau = stacked(posterior, name), stacked(posterior, scale)
    n_new = int(-group.min()) if group.size and group.min() < 0 else 0
    fresh = mean[:, None] + tau[:, None] * rng.standard_normal((values.shape[0], max(n_new, 1)))
    rows = np.arange(values.shape[0])[:, None]
    known = values[rows, np.clip(group, 0, None)]
    drawn = fresh[rows, np.clip(-1 - group, 0, None)]
    return np.where(group >= 0, known, drawn)


class OptimumSpec:
    """One model kind of an optimum's law (see the module docstring). Subclasses set the class
    attributes and override what differs; the defaults are the log-linear law
    log q* = a + b·x_N + c·x_D with Normal scatter σ, observed through its grid cell."""

    name: ClassVar[str]
    summary: ClassVar[str]
    formula: ClassVar[str]
    #: matplotlib keyword arguments of this kind's lines and bands
    style: ClassVar[dict] = {}
    #: part of the default ``--models`` set
    default: ClassVar[bool] = False
    #: sampled with NUTS (False: the OLS baseline, fitted by least squares)
    bayesian: ClassVar[bool] = True
    #: fitted per optimum to each cell's best run (``catalog``: run-level kinds say "runs")
    level: ClassVar[str] = "best-runs"
    #: offered by the command lines (in :func:`registry`); False: a law that a run-level kind fits to
    #: its own per-cell estimates (``measured``), reached through :func:`get` only
    offered: ClassVar[bool] = True
    #: fits both optima together and draws them jointly (``pair_draws``): the ``joint`` kind
    couples: ClassVar[bool] = False
    #: predicts the loss of a run (``--predict-runs``): only run-level kinds do (``surface.kind``)
    predicts_loss: ClassVar[bool] = False
    #: tells the smooth optimum from the best grid run a sweep finds: only run-level kinds do (``surface.kind``)
    two_optima: ClassVar[bool] = False
    #: which fitted kind the fan and PPC plots show: the highest
    main_priority: ClassVar[int] = 0
    #: the kind with one common slope that pooled-vs-per-N plots set this one against
    pooled_partner: ClassVar[str | None] = None
    #: NUTS target acceptance of the main fit unless one is given (``inference.config``)
    target_accept: ClassVar[float] = TARGET_ACCEPT
    #: NUTS tuning steps per chain of the main fit unless a number is given (``inference.config``)
    tune: ClassVar[int] = TUNE
    #: scalar law parameters of trace plots
    trace_vars: ClassVar[tuple[str, ...]] = ("a", "b", "c", "sigma")
    #: what the kind's prediction interval is (predictions.csv's ``interval`` column)
    interval: ClassVar[str] = "posterior predictive of the optimum: law + scatter σ (no grid, no selection jitter)"

    # ----------------------------------------------------------------- the PyMC model

    def build(self, data: QuantityData, centers: Centers, options: ModelOptions = ModelOptions()) -> pm.Model:
        """The PyMC model of this kind for one quantity's cells."""
        raise NotImplementedError

    def data_arrays(self, data: QuantityData, centers: Centers) -> dict[str, np.ndarray]:
        """The ``pm.Data`` values of the model, by name (also what nutpie's ``with_data`` takes)."""
        return {"cells": cells_table(data, centers)}

    def compile_key(self, data: QuantityData, options: ModelOptions) -> tuple:
        """What fixes the compiled graph: the kind, its options and the N levels (their number shapes
        the parameters, their values the coords). The number of cells does not: the data table's
        shape may change under ``with_data`` (a leave-out refit has one cell fewer)."""
        return (self.name, options, tuple(float(n) for n in data.n_levels))

    @staticmethod
    def coords(data: QuantityData) -> dict[str, list]:
        return {"cell": list(data.cell), "N_level": [float(n) for n in data.n_levels], "cell_column": list(CELL_COLUMNS)}

    def priors(self) -> dict[str, Prior]:
        """Default priors of the kind's parameters, by name (``a``'s is about the table's ȳ:
        a − ȳ ~ Normal(0, 2)); ``z_*`` standard normals of non-centred forms are structure, not priors."""
        return {"a": Normal(0.0, 2.0), "b": Normal(0.0, 1.0), "c": Normal(0.0, 1.0),
                "sigma": Gamma(2.0, 2.0 / SIGMA_PRIOR_MEAN)}

    def prior(self, name: str, options: ModelOptions) -> Prior:
        """The prior of parameter ``name`` in this fit: the user's (``--prior``) or the kind's default."""
        return options.prior_for(name) or self.priors()[name]

    def rv(self, name: str, options: ModelOptions, d: dict | None = None, **kwargs):
        """The PyMC variable of parameter ``name`` with its prior (``a`` placed about ȳ from the table ``d``)."""
        shift = d["a_loc"][0] if name == "a" and d is not None else None
        return self.prior(name, options).rv(name, shift=shift, **kwargs)

    def law_priors(self, data: QuantityData, centers: Centers, options: ModelOptions = ModelOptions()):
        """Register the ``cells`` table and the shared parameters a, b, c, σ; return them."""
        d = data_table("cells", cells_table(data, centers), CELL_COLUMNS, "cell", integers=("n_index",))
        return (d, self.rv("a", options, d), self.rv("b", options), self.rv("c", options),
                self.rv("sigma", options))

    def log_prior(self, posterior: xr.Dataset, centers: Centers, options: ModelOptions = ModelOptions()
                  ) -> dict[str, np.ndarray]:
        """Pointwise log prior density (S, …) of each parameter with a prior in the posterior — what
        ``pm.compute_log_prior`` gives, for power-scaling sensitivity (``optimum.sensitivity``)."""
        out = {}
        for name in self.priors():
            if name in posterior:
                out[name] = self.prior(name, options).logp(stacked(posterior, name), shift=centers.y if name == "a" else 0.0)
        for name in posterior.data_vars:
            if name.startswith("z_"):
                out[name] = Normal(0.0, 1.0).logp(stacked(posterior, name))
        return out

    # ----------------------------------------------------------------- posterior math (NumPy)

    def mean(self, posterior: xr.Dataset, centers: Centers, n_levels: np.ndarray, targets: Targets,
             rng: np.random.Generator) -> np.ndarray:
        """Draws of the law's mean log q* (S, T) at ``targets`` (or (S, 1) when paired)."""
        a, b, c = (stacked(posterior, k) for k in ("a", "b", "c"))
        return a[:, None] + b[:, None] * targets.x_N + c[:, None] * targets.x_D

    def scatter(self, posterior: xr.Dataset, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """Draws of the scatter of a cell's optimum about the law: σ·ε, ε ~ Normal(0, 1)."""
        return stacked(posterior, "sigma")[:, None] * rng.standard_normal(shape)

    def predictive(self, posterior: xr.Dataset, centers: Centers, n_levels: np.ndarray, log_N, log_D, *,
                   rng: np.random.Generator, noise: bool = True, paired: bool = False) -> np.ndarray:
        """Posterior-predictive draws of log q* at (log_N, log_D): (S, T), or (S,) when ``paired``
        (one target per draw, for propagating another posterior draw by draw). ``noise=False``
        leaves out the scatter: the law's mean."""
        n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
        targets = Targets.at(centers, log_N, log_D, paired=paired, n_draws=n_draws)
        mu = self.mean(posterior, centers, n_levels, targets, rng)
        mu = np.broadcast_to(mu, targets.shape(n_draws))
        if noise:
            mu = mu + self.scatter(posterior, rng, targets.shape(n_draws))
        return mu[:, 0] if paired else mu

    def observation_draws(self, posterior: xr.Dataset, centers: Centers, n_levels: np.ndarray, log_N, log_D, *,
                          rng: np.random.Generator) -> np.ndarray:
        """Draws (S, T) of the *best run a sweep would find* at (log_N, log_D), before the grid rounds
        it: the law plus the observation noise (scatter and selection jitter) — the posterior
        predictive of ``q_obs`` (``pm.sample_posterior_predictive`` draws the same)."""
        mu = self.predictive(posterior, centers, n_levels, log_N, log_D, rng=rng, noise=False)
        return mu + self.observation_scale(posterior, centers) * self.observation_noise(rng, mu.shape)

    def observation_noise(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Standardised noise of an observed best value about the law (× ``observation_scale``)."""
        return rng.standard_normal(shape)

    def observation_scale(self, posterior: xr.Dataset, centers: Centers) -> np.ndarray:
        """(S, 1) scale of the observed best value about the law: √(σ² + σ_sel²) (selection jitter)."""
        return np.sqrt(stacked(posterior, "sigma")[:, None] ** 2 + centers.sigma_sel**2)

    def outcome_logp(self, mu: np.ndarray, scale: np.ndarray, y: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray) -> np.ndarray:
        """log p(a best value y, in grid cell (lo, hi) | law mean μ, observation scale), broadcasting —
        the likelihood this kind was fitted with: for a censored kind the cell probability."""
        from bayes_scaling.math.censored import interval_logp

        return interval_logp(mu, scale, lo, hi)

    def selection_scale(self, centers: Centers) -> float:
        """The part of ``observation_scale`` that is the selection jitter σ_sel (not shared by two sweeps
        of one cell; the scatter σ is the cell's own and is)."""
        return centers.sigma_sel

    def cell_logp(self, posterior: xr.Dataset, centers: Centers, n_levels: np.ndarray,
                  data: QuantityData) -> np.ndarray:
        """log P(observed grid cell | θ_s), shape (S, n): the outcome LOO compares every kind on."""
        from bayes_scaling.math.censored import interval_logp

        mu = self.predictive(posterior, centers, n_levels, data.log_N, data.log_D, rng=np.random.default_rng(0),
                             noise=False)
        return interval_logp(mu, self.observation_scale(posterior, centers), data.lo[None, :], data.hi[None, :])

    def log_likelihood(self, posterior: xr.Dataset, centers: Centers, n_levels: np.ndarray,
                       data: QuantityData) -> np.ndarray:
        """Pointwise log-likelihood of ``q_obs`` (S, n) — the model's own; for a censored kind the cell probability."""
        return self.cell_logp(posterior, centers, n_levels, data)

    def level_slopes(self, posterior: xr.Dataset, centers: Centers, n_levels: np.ndarray) -> np.ndarray | None:
        """Draws (S, L) of the slope on log D at each fitted size (forest plots); None: one slope for all."""
        return None

    def coefficient_draws(self, posterior: xr.Dataset, centers: Centers, n_levels: np.ndarray) -> dict[str, np.ndarray]:
        """The law on the raw scale, log q* = intercept + b_N·log N + c_D·log D, plus σ (and extras)."""
        a, b, c = (stacked(posterior, k) for k in ("a", "b", "c"))
        draws = {"intercept": a - b * centers.log_N - c * centers.log_D, "b_N": b, "c_D": c}
        if "sigma" in posterior:
            draws["sigma"] = stacked(posterior, "sigma")
        return draws

    def diagnostic_vars(self, posterior: xr.Dataset) -> list[str]:
        """Free parameters and derived law variables (not the raw non-centred z's, which add nothing)."""
        return [v for v in posterior.data_vars if not v.startswith("z_")]

    # ----------------------------------------------------------------- fitting

    def fit(self, data: QuantityData, centers: Centers, fitter: Fitter) -> tuple[xr.DataTree, Diagnostics | None]:
        """Sample the posterior (compiled model reused by ``fitter``) with its ``log_likelihood`` group."""
        import xarray as xr

        from bayes_scaling.inference.diagnostics import diagnose

        idata = self.sample(data, centers, fitter, fitter.config.with_target_accept(self.target_accept).with_tune(self.tune))
        post = idata["posterior"].to_dataset()
        ll = self.log_likelihood(post, centers, data.n_levels, data)
        shape = (post.sizes["chain"], post.sizes["draw"], len(data.y))
        idata["log_likelihood"] = xr.DataTree(xr.Dataset(
            {"q_obs": (("chain", "draw", "cell"), ll.reshape(shape))},
            coords={"chain": post["chain"], "draw": post["draw"], "cell": list(data.cell)}))
        return idata, diagnose(idata, var_names=self.diagnostic_vars(post))

    def refit_posterior(self, data: QuantityData, centers: Centers, fitter: Fitter) -> xr.Dataset:
        """Posterior only, of a subset — for exact leave-out refits (one chain of REFIT_DRAWS suffices
        for a held-out block's elpd; nutpie adapts these small models in far fewer than 300 steps; the
        target acceptance, unless one was given, is ``REFIT_TARGET_ACCEPT``)."""
        from bayes_scaling.inference.config import REFIT_TARGET_ACCEPT

        config = fitter.config.with_target_accept(REFIT_TARGET_ACCEPT).capped(draws=REFIT_DRAWS, tune=REFIT_TUNE)
        config = replace(config, chains=REFIT_CHAINS)
        return self.sample(data, centers, fitter, config, posterior_only=True)["posterior"].to_dataset()

    def sample(self, data: QuantityData, centers: Centers, fitter: Fitter, config, *,
               posterior_only: bool = False) -> xr.DataTree:
        from bayes_scaling.inference.sampling import sample

        def build() -> pm.Model:
            return self.build(data, centers, fitter.options)

        # a refit of a compiled kind swaps the data only: its PyMC model is not built again
        compiled = fitter.cache.get(self.compile_key(data, fitter.options), build, self.data_arrays(data, centers))
        return sample(build() if compiled is None else None, config, compiled=compiled, log_likelihood=False,
                      posterior_only=posterior_only)

    # ----------------------------------------------------------------- simulation (SBC)

    def prior_draws(self, data: QuantityData, centers: Centers, n_draws: int, seed: int,
                    options: ModelOptions = ModelOptions()) -> xr.Dataset:
        """``n_draws`` draws of every free and derived variable from the model's own prior,
        shaped like a one-chain posterior (``pm.sample_prior_predictive``)."""
        import pymc as pm

        model = self.build(data, centers, options)
        names = [v.name for v in model.free_RVs + model.deterministics]
        tree = pm.sample_prior_predictive(draws=n_draws, model=model, var_names=names, random_seed=seed)
        return tree["prior"].to_dataset()


_REGISTRY: dict[str, OptimumSpec] = {}


def register(cls: type[OptimumSpec]) -> type[OptimumSpec]:
    """Class decorator: add an instance of ``cls`` to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"two optimum model kinds are called {cls.name!r}")
    _REGISTRY[cls.name] = cls()
    return cls


def registry(*, every: bool = False) -> dict[str, OptimumSpec]:
    """Every optimum model kind the command lines offer, by name, in listing order (the baseline
    first, then by priority); ``every``: also the laws only run-level kinds fit (``offered`` False)."""
    from bayes_scaling.optimum import specs

    for module in pkgutil.iter_modules(specs.__path__):
        importlib.import_module(f"{specs.__name__}.{module.name}")
    ordered = sorted(_REGISTRY.items(), key=lambda kv: (kv[1].bayesian, kv[1].main_priority, kv[0]))
    return {name: spec for name, spec in ordered if every or spec.offered}


def get(name: str) -> OptimumSpec:
    """The spec called ``name``, offered or not (KeyError naming the known kinds otherwise)."""
    kinds = registry(every=True)
    if name not in kinds:
        raise KeyError(f"unknown optimum model {name!r}; known: {', '.join(kinds)}")
    return kinds[name]
