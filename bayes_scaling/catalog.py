"""Every model kind the command lines offer, in one mapping, and the one loop that fits them.

The best-run kinds come from the optimum registry (``optimum.spec.registry``: one spec file
each in ``optimum/specs/``), the run-level kinds from ``surface.kind``. Each has a ``name``,
a ``summary`` (its ``--help`` line), ``default`` (in the default ``--models`` set), ``bayesian``
and a ``level``: "best-runs" kinds are fitted per optimum to the best run of each cell,
"runs" kinds to every run, both optima at once (``surface.kind.RunLevelKind``: a ``fit`` that
returns a result with ``as_optimum_fits``, ``write_artifacts``, ``to_netcdf`` and ``method``). ``fit``, ``backtest`` and ``advise`` choose,
list and fit kinds through this module only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from bayes_scaling.errors import InputError
from bayes_scaling.optimum.spec import registry
from bayes_scaling.progress import steps
from bayes_scaling.surface.kind import RUN_LEVEL_KINDS, RunOptions

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from bayes_scaling.inputs.runtable import BestRuns
    from bayes_scaling.optimum.fit import Fitter, OptimumFit


def kinds() -> dict:
    """Every model kind by name: the best-run kinds (baseline first), then the run-level ones."""
    return {**registry(), **RUN_LEVEL_KINDS}


def loss_predicting(names: list[str]) -> list[str]:
    """The kinds among ``names`` that predict the loss of a run (``predicts_loss``)."""
    known = kinds()
    return [n for n in names if known[n].predicts_loss]


def prior_specs(names: list[str], options: RunOptions = RunOptions()) -> dict:
    """The optimum specs whose priors the named kinds use (``--prior``), by kind name: a best-run
    kind's own, a run-level kind's ``law_spec`` under ``options`` (the gp kind's ``measured`` law of its
    ``--law-form``); the surface has none."""
    from bayes_scaling.optimum.spec import get

    known = kinds()
    out = {}
    for name in names:
        kind = known.get(name)
        if kind is not None and kind.level == "best-runs":
            out[name] = kind
        elif kind is not None and kind.law_spec(options):
            out[name] = get(kind.law_spec(options))
    return out


def default_models() -> list[str]:
    return [name for name, kind in kinds().items() if kind.default]


def parse_models(text: str | None, flag: str = "--models") -> list[str]:
    """Comma-separated kind names → a list (the defaults for None); one-line error for unknown or empty."""
    if text is None:
        return default_models()
    names = [m.strip() for m in text.split(",") if m.strip()]
    known = kinds()
    unknown = [m for m in names if m not in known]
    if not names:
        raise InputError(f"{flag}: empty; choose from {', '.join(known)}")
    if unknown:
        raise InputError(f"{flag}: {', '.join(unknown)}: unknown model kind(s); choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


def help_text() -> str:
    """The ``models`` block of a command's ``--help``: one entry per kind, wrapped."""
    import textwrap

    lines = [f"models (--models, comma-separated; default: {','.join(default_models())}):"]
    for name, kind in kinds().items():
        body = textwrap.wrap(kind.summary, 76 - 16)
        lines.append(f"  {name:<14}{body[0]}")
        lines += [" " * 16 + line for line in body[1:]]
    return "\n".join(lines)


@dataclass
class Fitted:
    """What a set of kinds produced: ``fits[quantity][kind]`` and the run-level fits by kind."""

    fits: dict[str, dict[str, OptimumFit]] = field(default_factory=dict)
    run_level: dict[str, object] = field(default_factory=dict)


def fit_all(names: list[str], quantities: list[str], best: BestRuns, fitter: Fitter, *,
            runs: pd.DataFrame | None = None, options: RunOptions = RunOptions(), source: str = "<table>",
            caches: dict | None = None, on_fit: Callable[[str, str, object], None] | None = None) -> Fitted:
    """Fit every named kind to every quantity: best-run kinds per quantity on ``best``, run-level
    kinds once on ``runs`` (their cells must be ``best``'s). ``caches`` (a dict kept by the caller)
    lets run-level kinds reuse compiled models across calls; ``on_fit(kind, quantity or "both", fit)``
    is called after each fit (progress lines)."""
    known = kinds()
    out = Fitted(fits={q: {} for q in quantities})
    for q in quantities:
        data = best.quantity(q)
        for name in names:
            if known[name].level == "best-runs":
                fit = fitter.fit(name, data)
                out.fits[q][name] = fit
                if on_fit:
                    on_fit(name, q, fit)
    caches = {} if caches is None else caches
    for name in names:
        if known[name].level != "runs":
            continue
        fit = known[name].fit(runs, fitter.config, replace(options, priors=fitter.options.priors), source=source,
                              cache=caches.setdefault(name, {}))
        out.run_level[name] = fit
        for q, optimum in fit.as_optimum_fits().items():
            if q in out.fits:
                out.fits[q][name] = optimum
        if on_fit:
            on_fit(name, "both", fit)
    return out


@dataclass(frozen=True)
class Scoring:
    """What to compute for each fitted kind beside the fit: LOO and cross-validation (for the compared
    best-run kinds) and prior sensitivity at the targets (for every Bayesian kind whose laws have
    their own log-likelihood: all but the surface)."""

    compared: tuple[str, ...] = ()
    cv: tuple[str, ...] = ()
    max_refits: int = 10
    ci_prob: float = 0.9
    targets: tuple[tuple[float, float], ...] = ()


@dataclass
class Scored(Fitted):
    """``Fitted`` plus, per quantity and kind, the held-out scores and the sensitivity table."""

    scores: dict[str, dict[str, object]] = field(default_factory=dict)
    sensitivity: list = field(default_factory=list)


def fit_and_score(names: list[str], quantities: list[str], best: BestRuns, config, options, *,
                  runs: pd.DataFrame | None = None, run_options: RunOptions = RunOptions(), source: str = "<table>",
                  scoring: Scoring = Scoring(), workers: int = 1,
                  on_fit: Callable[[str, str, object], None] | None = None, cache: Path | None = None) -> Scored:
    """Fit, score and judge every named kind, run by ``workers`` processes at once.

    A best-run kind's optima are separate tasks (a kind that ``couples`` them is one), so that the
    costliest kind does not keep one process busy while the other idles; a run-level kind is one
    task. Each task compiles its kind (a graph compiled before on this machine, or by the other
    process, loads from disk in well under a second: ``inference.numba_cache``); the first
    optimum's tasks go first, the costliest first within them, so that two processes rarely
    compile one kind at once and the last task to finish is a short one. Each process samples its
    chains on cpu_count/workers cores. ``workers=1`` runs the same tasks here, one after another,
    with the same results: each chain's seed is its own.
    ``cache`` (a folder, opt-in): a finished task is kept there (``inference.cache``) and
    loaded here, before any worker starts, instead of redone when everything that decides it is the
    same: a run whose every task is stored starts no worker and imports no sampler.
    """
    import os

    known = kinds()
    units = [(name, [q]) for name in names for q in quantities
             if known[name].level == "best-runs" and not known[name].couples]
    units += [(name, list(quantities)) for name in names if not any(u[0] == name for u in units)]
    units.sort(key=lambda u: (known[u[0]].level != "runs", quantities.index(u[1][0]),
                              -getattr(known[u[0]], "main_priority", 0)))
    # looked up here, each key made once, before any fit (a hit needs no worker). A key is a pickle of
    # the inputs, and those bytes are not stable through a run: keys made in the workers differed from
    # the same tasks' keys made here, so every lookup missed
    keys = [_task_key(name, qs, best, config, options, runs, run_options, scoring) if cache else None
            for name, qs in units]
    stored = [_stored(cache, key, name) if cache else None for key, (name, _) in zip(keys, units)]
    todo = [(unit, key) for unit, key, hit in zip(units, keys, stored) if hit is None]
    hits = [hit for hit in stored if hit is not None]
    workers = max(1, min(workers, len(todo)))
    if workers > 1:
        config = replace(config, cores=max(1, (os.cpu_count() or 1) // workers))
    tasks = [(name, qs, best, config, options, runs, run_options, source, scoring, workers > 1, cache, key)
             for (name, qs), key in todo]
    out = Scored(fits={q: {} for q in quantities}, scores={q: {} for q in quantities})
    label = "fits done and scored" if scoring.compared else "fits done"
    with steps(len(units), label) as tick:
        if workers == 1:
            _collect(itertools.chain(hits, (_kind_task(*task) for task in tasks)), out, names, on_fit, tick)
            return out
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from bayes_scaling.inference.sampling import preload

        if any(known[name].bayesian for (name, _), _ in todo):
            preload(config)                   # once here, not once per forked worker that samples
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_kind_task, *task) for task in tasks]
            _collect(itertools.chain(hits, (f.result() for f in as_completed(futures))), out, names, on_fit, tick)
    return out


def _collect(results, out: Scored, names: list[str], on_fit, tick) -> None:
    done: dict[str, tuple[dict, object]] = {}
    for name, per_q, run_fit, sens in results:
        done.setdefault(name, ({}, run_fit))[0].update(per_q)
        out.sensitivity += sens
        tick(name if len(per_q) != 1 else f"{name}/{next(iter(per_q))}")
        if on_fit:
            for q, (fit, _) in per_q.items():
                if run_fit is None:
                    on_fit(name, q, fit)
            if run_fit is not None:
                on_fit(name, "both", run_fit)
    for name in names:                                  # the models' order, whatever finished first
        per_q, run_fit = done[name]
        if run_fit is not None:
            out.run_level[name] = run_fit
        for q, (fit, scores) in per_q.items():
            out.fits[q][name] = fit
            if scores is not None:
                out.scores[q][name] = scores


def _stored(cache: Path, key: str, name: str):
    """The stored result of a :func:`_kind_task` under ``key`` in ``cache``, or None."""
    from bayes_scaling import progress
    from bayes_scaling.inference.cache import ResultCache

    store = ResultCache(cache)
    hit = store.get(key)
    if hit is not None:
        progress.note(f"  {name}: finished fit and scores loaded from the cache {store.path(key)}")
    return hit


def _task_key(name, quantities, best, config, options, runs, run_options, scoring) -> str:
    """The cache key of a task: everything that decides its result."""
    from bayes_scaling.inference.cache import key_of

    run_level = kinds()[name].level == "runs"
    return key_of(name, tuple(quantities), [best.quantity(q) for q in quantities], replace(config, cores=1).as_dict(),
                  options, replace(run_options, progress=False), scoring, _table_bytes(runs) if run_level else b"")


def _kind_task(name, quantities, best, config, options, runs, run_options, source, scoring, in_pool, cache=None,
               key=None):
    """One kind on ``quantities``: fit, and score and judge it where ``scoring`` asks (a pool task: its
    own progress stays quiet, the caller's bar counts the tasks); with ``cache``, the result is stored
    there under ``key`` (:func:`_task_key`, made before any fit; :func:`_stored` looks it up)."""
    result = _kind_work(name, quantities, best, config, options, runs, run_options, source, scoring, in_pool)
    if cache is not None:
        from bayes_scaling.inference.cache import ResultCache

        ResultCache(cache).put(key, result)
    return result


def _table_bytes(runs: pd.DataFrame) -> bytes:
    """The content of a run table (its columns and every value), for a cache key."""
    import pandas as pd

    return "\x1f".join(map(str, runs.columns)).encode() + pd.util.hash_pandas_object(runs, index=True).to_numpy().tobytes()


def _kind_work(name, quantities, best, config, options, runs, run_options, source, scoring, in_pool):
    from bayes_scaling import progress
    from bayes_scaling.optimum.compare import score
    from bayes_scaling.optimum.fit import Fitter
    from bayes_scaling.optimum.sensitivity import sensitivity

    if in_pool:
        progress.set_quiet(True)
    kind = kinds()[name]
    fitter = Fitter(config, options=options)
    per_q, sens, run_fit = {}, [], None
    if kind.level == "runs":
        run_fit = kind.fit(runs, config, replace(run_options, priors=options.priors), source=source, cache={})
        fits = {q: f for q, f in run_fit.as_optimum_fits().items() if q in quantities}
    else:
        fits = {q: fitter.fit(name, best.quantity(q)) for q in quantities}
    for q, fit in fits.items():
        scores = None
        if name in scoring.compared:
            scores = score(fit, best.quantity(q), fitter, scoring.max_refits, cv=scoring.cv, ci_prob=scoring.ci_prob)
        # prior sensitivity needs the fit's own pointwise log-likelihood: every best-run kind's and the
        # gp kind's laws have one; the surface's optima share one joint posterior over every run
        if kind.bayesian and scoring.targets and "log_likelihood" in fit.idata.children:
            sens.append(sensitivity(fit, list(scoring.targets), options, seed=config.seed))
        per_q[q] = (fit, scores)
    return name, per_q, run_fit, sens
