"""Run NUTS (nutpie or PyMC) on a ``pm.Model``; keep compiled models for reuse.

Every fit goes through :func:`sample`, which returns an ArviZ ``DataTree`` with
``posterior``, ``sample_stats`` and (optionally computed) ``log_likelihood`` groups, and is
then judged by ``inference.diagnostics.diagnose``. nutpie compiles a model in seconds
(numba); :class:`CompileCache` keeps one compiled model per key and swaps only its data
(``with_data``) for every later fit of the same shape.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable, Mapping

import numpy as np
import pymc as pm
import xarray as xr

from bayes_scaling.inference.config import TARGET_ACCEPT, TUNE, SamplerConfig

#: How often (ms) nutpie reports a run's progress to ``sample(..., progress=label)``.
PROGRESS_RATE_MS = 1000


def preload(config: SamplerConfig) -> None:
    """Import the sampler's modules now: processes forked after this share them instead of each
    importing them (nutpie brings arviz, arviz_plots and matplotlib: about a second)."""
    if config.sampler == "nutpie":
        import nutpie  # noqa: F401


def compile_model(model: pm.Model, config: SamplerConfig) -> object | None:
    """Compile ``model`` for nutpie (reusable through ``with_data``); None for PyMC."""
    if config.sampler != "nutpie":
        return None
    from bayes_scaling.inference.numba_cache import compile_pymc_model

    return compile_pymc_model(model)


class CompileCache:
    """One compiled nutpie model per key; later fits with the same key only swap the data.

    The key must fix everything that shapes the compiled graph (the model kind, its options,
    the number of cells or levels and the coords); ``arrays`` are the model's ``pm.Data``
    values by name, which ``with_data`` replaces.
    """

    def __init__(self, config: SamplerConfig) -> None:
        self.config = config
        self._compiled: dict[Hashable, object] = {}

    def get(self, key: Hashable, model: pm.Model | Callable[[], pm.Model],
            arrays: Mapping[str, np.ndarray]) -> object | None:
        """The compiled model for ``key`` holding ``arrays`` (None when the sampler is PyMC's).
        ``model`` may be a function that builds it: it is then built only when ``key`` is new."""
        if self.config.sampler != "nutpie":
            return None
        if key not in self._compiled:
            self._compiled[key] = compile_model(model if isinstance(model, pm.Model) else model(), self.config)
            return self._compiled[key]
        compiled = self._compiled[key]
        used = {var.name for var in compiled.shared_var_keys}
        return compiled.with_data(**{k: v for k, v in arrays.items() if k in used})


def sample(
    model: pm.Model | None,
    config: SamplerConfig,
    *,
    compiled: object | None = None,
    log_likelihood: bool = True,
    progress: str | None = None,
    posterior_only: bool = False,
) -> xr.DataTree:
    """Draw from the posterior of ``model``; add the pointwise log-likelihood.

    ``compiled`` is a nutpie model from :func:`compile_model` whose data may have
    been swapped with ``compiled.with_data(...)`` to match ``model`` (this skips
    the ~5–10 s numba compilation; ``model`` may then be None when no ``log_likelihood`` is
    asked for). ``progress`` (a label): report the run's own progress
    on stderr, a line at every tenth of its draws (for a run of minutes; nutpie only).
    ``posterior_only``: the tree holds the posterior group alone (what a refit reads; nutpie's
    draws are then read from its raw trace, skipping the conversion of its sampler statistics:
    a refit takes 0.8–0.9 of the time, ``benchmarks/bench_refits.py --reading``).
    """
    config = config.with_target_accept(TARGET_ACCEPT).with_tune(TUNE)
    if config.sampler == "nutpie":
        import nutpie

        from bayes_scaling.progress import fraction

        compiled = compiled if compiled is not None else compile_model(model, config)
        update = fraction(progress, config.chains * (config.tune + config.draws)) if progress else None

        def report(chains) -> None:
            phase = "tuning" if any(c.tuning for c in chains) else "sampling"
            update(sum(c.finished_draws for c in chains), f"{phase}, {sum(c.divergences for c in chains)} divergences")

        idata = nutpie.sample(
            compiled,
            draws=config.draws,
            tune=config.tune,
            chains=config.chains,
            cores=config.cores,
            seed=config.seed,
            target_accept=config.target_accept,
            progress_bar=False,
            progress_callback=report if update is not None else None,
            progress_rate=PROGRESS_RATE_MS,
            save_warmup=False,
            return_raw_trace=posterior_only,
        )
        if posterior_only:                              # (which checks every chain for an interrupt)
            idata = xr.DataTree.from_dict({"posterior": posterior_of_trace(idata, compiled, config.draws)})
        elif cut_short(idata, config.draws):
            # nutpie catches Ctrl-C itself and returns the draws made so far: a short trace is an interrupt
            raise KeyboardInterrupt
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
        if posterior_only:
            idata = xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})
    if log_likelihood and model.observed_RVs:
        with _quiet():
            idata = pm.compute_log_likelihood(idata, model=model, progressbar=False)
    return idata


def cut_short(tree: xr.DataTree, draws: int) -> bool:
    """Whether any chain of nutpie's converted trace holds fewer than ``draws`` draws: the longest
    sets the length and nutpie pads the others with NaN, as in the step size it records per draw."""
    if tree["posterior"].sizes.get("draw", 0) < draws:
        return True
    stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
    return stats is not None and "step_size" in stats and bool(np.isnan(stats["step_size"].values).any())


def posterior_of_trace(trace, compiled, draws: int) -> xr.Dataset:
    """The posterior group of nutpie's raw (Arrow) trace, as nutpie's own conversion gives it: the
    draws after tuning, (chain, draw, *dims) per variable, without the unconstrained values. A chain
    with fewer than ``draws`` of them was cut short: nutpie catches Ctrl-C itself and returns what it
    has, so that raises KeyboardInterrupt."""
    import pyarrow as pa

    batches, stats = trace.get_arrow_trace()            # (it can be taken only once)
    kept = [~pa.array(s.column("tuning")).to_numpy(zero_copy_only=False).astype(bool) for s in stats]
    if min(int(k.sum()) for k in kept) < draws:
        raise KeyboardInterrupt
    skip = set(getattr(compiled, "reparameterized_names", None) or ())
    data, sizes = {}, {}
    for field in batches[0].schema:
        if field.name in skip:
            continue
        meta = field.metadata or {}
        shape = tuple(int(n) for n in meta[b"shape"].decode().split(",")) if meta.get(b"shape") else ()
        dims = (meta[b"dims"].decode().split(",") if meta.get(b"dims")
                else [f"{field.name}_dim_{i}" for i in range(len(shape))])
        values = np.empty((len(batches), draws, *shape))
        for chain, (batch, keep) in enumerate(zip(batches, kept)):
            column = pa.array(batch.column(field.name))
            flat = column.flatten() if hasattr(column, "flatten") else column
            values[chain] = flat.to_numpy(zero_copy_only=False).reshape((batch.num_rows, *shape))[keep][:draws]
        data[field.name] = (("chain", "draw", *dims), values)
        sizes.update(zip(dims, shape))
    known = compiled.coords or {}
    coords = {"chain": np.arange(len(batches)), "draw": np.arange(draws)}
    coords |= {d: known[d] if d in known else np.arange(n) for d, n in sizes.items()}
    return xr.Dataset(data, coords=coords)


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
