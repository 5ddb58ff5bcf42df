"""Run NUTS (nutpie or PyMC) on a ``pm.Model`` and judge the result.

Every fit goes through :func:`sample`, which returns an ArviZ ``DataTree`` with
``posterior``, ``sample_stats`` and (explicitly computed) ``log_likelihood`` groups,
and :func:`diagnose`, which reports max R-hat, min bulk/tail ESS and divergences.
A fit that fails them is flagged (``Diagnostics.ok``), never silently accepted.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

SAMPLERS = ("nutpie", "pymc")

#: Thresholds a fit must meet (Vehtari et al. 2021: R-hat < 1.01, ESS > 100/chain).
MAX_RHAT = 1.01
MIN_ESS_PER_CHAIN = 100


@dataclass(frozen=True)
class SamplerConfig:
    """How to run NUTS. ``cores`` is the number of chains run in parallel."""

    sampler: str = "nutpie"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    cores: int = 2
    seed: int = 0
    target_accept: float = 0.95

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")


@dataclass(frozen=True)
class Diagnostics:
    """Convergence summary of one fit."""

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    chains: int
    draws: int

    @property
    def ok(self) -> bool:
        min_ess = MIN_ESS_PER_CHAIN * self.chains
        return (
            self.max_rhat < MAX_RHAT
            and self.min_ess_bulk >= min_ess
            and self.min_ess_tail >= min_ess
            and self.divergences == 0
        )

    def problems(self) -> list[str]:
        """Human-readable list of what failed (empty when ``ok``)."""
        out = []
        min_ess = MIN_ESS_PER_CHAIN * self.chains
        if not self.max_rhat < MAX_RHAT:
            out.append(f"R-hat {self.max_rhat:.3f} >= {MAX_RHAT}")
        if self.min_ess_bulk < min_ess:
            out.append(f"bulk ESS {self.min_ess_bulk:.0f} < {min_ess}")
        if self.min_ess_tail < min_ess:
            out.append(f"tail ESS {self.min_ess_tail:.0f} < {min_ess}")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions")
        return out

    def describe(self) -> str:
        status = "ok" if self.ok else "FAILED: " + "; ".join(self.problems())
        return (
            f"R-hat max {self.max_rhat:.3f}, ESS bulk min {self.min_ess_bulk:.0f}, "
            f"tail min {self.min_ess_tail:.0f}, divergences {self.divergences} [{status}]"
        )

    def as_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "ok": self.ok}


def compile_model(model: pm.Model, config: SamplerConfig) -> object | None:
    """Compile ``model`` for nutpie (reusable through ``with_data``); None for PyMC."""
    if config.sampler != "nutpie":
        return None
    import nutpie

    return nutpie.compile_pymc_model(model)


def sample(
    model: pm.Model,
    config: SamplerConfig,
    *,
    compiled: object | None = None,
    log_likelihood: bool = True,
) -> xr.DataTree:
    """Draw from the posterior of ``model``; add the pointwise log-likelihood.

    ``compiled`` is a nutpie model from :func:`compile_model` whose data may have
    been swapped with ``compiled.with_data(...)`` to match ``model`` (this skips
    the ~5–10 s numba compilation).
    """
    if config.sampler == "nutpie":
        import nutpie

        compiled = compiled if compiled is not None else compile_model(model, config)
        idata = nutpie.sample(
            compiled,
            draws=config.draws,
            tune=config.tune,
            chains=config.chains,
            cores=config.cores,
            seed=config.seed,
            target_accept=config.target_accept,
            progress_bar=False,
            save_warmup=False,
        )
    else:
        with model, _quiet():
            idata = pm.sample(
                draws=config.draws,
                tune=config.tune,
                chains=config.chains,
                cores=config.cores,
                random_seed=config.seed,
                target_accept=config.target_accept,
                progressbar=False,
                compute_convergence_checks=False,
            )
    if log_likelihood and model.observed_RVs:
        with _quiet():
            idata = pm.compute_log_likelihood(idata, model=model, progressbar=False)
    return idata


def diagnose(idata: xr.DataTree, var_names: list[str] | None = None) -> Diagnostics:
    """Max R-hat, min bulk/tail ESS over all (or the named) posterior variables."""
    post = idata["posterior"].to_dataset()
    if var_names:
        post = post[var_names]
    rhat = az.rhat(post)
    ess_bulk = az.ess(post, method="bulk")
    ess_tail = az.ess(post, method="tail")
    div = 0
    if "sample_stats" in idata.children and "diverging" in idata["sample_stats"].data_vars:
        div = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    return Diagnostics(
        max_rhat=_extreme(rhat, max),
        min_ess_bulk=_extreme(ess_bulk, min),
        min_ess_tail=_extreme(ess_tail, min),
        divergences=div,
        chains=int(post.sizes["chain"]),
        draws=int(post.sizes["draw"]),
    )


def _extreme(ds: xr.Dataset, pick) -> float:
    values = np.concatenate([np.ravel(v.values) for v in ds.data_vars.values()]) if ds.data_vars else np.array([np.nan])
    values = values[np.isfinite(values)]
    return float(pick(values)) if values.size else float("nan")


class _quiet:
    """Silence PyMC's progress logging and sampler warnings inside a block."""

    def __enter__(self) -> None:
        self._level = logging.getLogger("pymc").level
        logging.getLogger("pymc").setLevel(logging.ERROR)
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._warn.__exit__(*exc)
        logging.getLogger("pymc").setLevel(self._level)
