"""The run-level model kinds, as the command lines list them (light: nothing is fitted here).

A run-level kind is fitted to every run of a full-sweep table, both optima at once, and
yields one ``OptimumFit`` per optimum (``surface.fit.SurfaceFit.as_optimum_fits``); the best-run
kinds live in ``optimum.spec``'s registry. ``catalog`` puts both in one mapping.
"""

from __future__ import annotations

from bayes_scaling.errors import InputError

#: Fast approximations of the surface posterior (``--approx``), labelled approximate wherever shown.
APPROX = ("advi",)


class SurfaceKind:
    """The full-surface latent-optimum model (``surface.model``)."""

    name = "surface"
    summary = ("every run, not just the best: per (N, D) cell the loss is a bowl in (log η, log B) around "
               "the cell's latent optimum, and the optima follow the law above (--slopes pooled|per_n); "
               "needs full sweeps (steplaw-dense, steplaw-moe, the trainer's tables); --approx advi for a "
               "fast, clearly labelled approximation")
    default = False
    bayesian = True
    level = "runs"


#: Every run-level kind, by name.
RUN_LEVEL_KINDS = {kind.name: kind for kind in (SurfaceKind(),)}


def check_approx(approx: str | None) -> None:
    """An unknown or unavailable ``--approx`` is an InputError (checked before any work)."""
    if approx == "pathfinder":
        raise InputError("--approx pathfinder needs pymc-extras, which is not installed here; use --approx advi")
    if approx is not None and approx not in APPROX:
        raise InputError(f"--approx must be one of {', '.join(APPROX)} (or omitted for NUTS), got {approx!r}")
