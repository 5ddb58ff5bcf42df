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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bayes_scaling.errors import InputError
from bayes_scaling.optimum.spec import registry
from bayes_scaling.surface.kind import RUN_LEVEL_KINDS, RunOptions

if TYPE_CHECKING:
    import pandas as pd

    from bayes_scaling.inputs.runtable import BestRuns
    from bayes_scaling.optimum.fit import Fitter, OptimumFit


def kinds() -> dict:
    """Every model kind by name: the best-run kinds (baseline first), then the run-level ones."""
    return {**registry(), **RUN_LEVEL_KINDS}


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
        fit = known[name].fit(runs, fitter.config, options, source=source, cache=caches.setdefault(name, {}))
        out.run_level[name] = fit
        for q, optimum in fit.as_optimum_fits().items():
            if q in out.fits:
                out.fits[q][name] = optimum
        if on_fit:
            on_fit(name, "both", fit)
    return out
