"""The run-level model kinds, as the command lines list them (light: the fitting is imported lazily).

A run-level kind is fitted to every run of a full-sweep table, both optima at once. Its ``fit``
returns a result that yields one ``OptimumFit`` per optimum (``as_optimum_fits``), names its
``method`` (``approximate`` when it is no MCMC), saves itself (``to_netcdf``) and writes its own
extra artifacts (``write_artifacts``). The best-run kinds live in ``optimum.spec``'s registry;
``catalog`` puts both in one mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from bayes_scaling.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from bayes_scaling.inference.config import SamplerConfig


@dataclass(frozen=True)
class RunOptions:
    """How run-level kinds are fitted: slopes of the law, an approximation, the loss window,
    whether one fit reports its own progress (a line at every tenth of its NUTS draws), and the
    ``--prior`` replacements (``ModelOptions.priors``) for kinds whose laws take them (``gp``), and the
    form of the gp kind's laws (``--law-form``: ``optimum.specs.measured.law_forms``)."""

    slopes: str = "pooled"
    law_form: str = "straight"
    approx: str | None = None
    window: float | None = None
    progress: bool = False
    priors: tuple = ()


class RunLevelKind(Protocol):
    name: ClassVar[str]
    summary: ClassVar[str]
    default: ClassVar[bool]
    bayesian: ClassVar[bool]
    level: ClassVar[str]
    #: its result has ``predict_loss`` and takes ``predict_runs=`` in ``write_artifacts`` (``--predict-runs``)
    predicts_loss: ClassVar[bool]
    #: its result tells the smooth optimum from the best grid run a sweep would find (``best_run``) and
    #: gives every fitted cell's smooth optimum (``cell_optima``): a backtest scores both targets
    two_optima: ClassVar[bool]

    def law_spec(self, options: RunOptions) -> str | None:
        """The optimum spec of its laws when ``--prior`` reaches them (``RunOptions.priors``), else None."""

    def fit(self, runs: pd.DataFrame, config: SamplerConfig, options: RunOptions, *, source: str, cache: dict): ...


#: ``--law-form`` that lets leave-one-N-out stacking pick the gp kind's law form per optimum.
AUTO = "auto"
#: Fast approximations of the surface posterior (``--approx``), labelled approximate wherever shown.
APPROX = ("advi",)


class SurfaceKind:
    """The full-surface latent-optimum model (``surface.model``)."""

    name = "surface"
    summary = ("every run, not just the best: per (N, D) cell the loss is a curved, two-sided bowl in "
               "(log η, log B) around the cell's latent optimum, its minimum on a loss law L(N, D), the optima "
               "on the law above (--slopes pooled|per_n); predicts any run's loss (--predict-runs); needs full "
               "sweeps (steplaw-dense, steplaw-moe, the trainer's tables); --approx advi for a fast, clearly "
               "labelled approximation")
    default = False
    bayesian = True
    level = "runs"
    predicts_loss = True
    two_optima = True

    def law_spec(self, options):
        return None

    def fit(self, runs, config, options, *, source="<table>", cache=None):
        """The surface model on every run of ``runs`` (``cache`` keeps its compiled model across calls)."""
        from bayes_scaling.surface.data import WINDOW, surface_data
        from bayes_scaling.surface.fit import SurfaceFitter

        cache = {} if cache is None else cache
        fitter = cache.setdefault((config, "fitter"), SurfaceFitter(config))
        data = surface_data(runs, window=options.window or WINDOW, source=source)
        label = f"  surface NUTS ({len(data.runs):,} runs)" if options.progress else None
        return fitter.fit(data, slopes=options.slopes, approx=options.approx, progress=label)


class AkimaKind:
    """Porian et al. 2024's baseline: Akima-interpolated optima per cell, then OLS (``surface.akima``)."""

    name = "akima"
    summary = ("baseline: per sweep cell the argmin of an Akima interpolant of loss along log η (at the best B) "
               "and along log B (at the best η), then OLS through those optima (Porian et al. 2024); full sweeps")
    default = False
    bayesian = False
    level = "runs"
    predicts_loss = False
    two_optima = False

    def law_spec(self, options):
        return None

    def fit(self, runs, config, options, *, source="<table>", cache=None):
        from bayes_scaling.surface.akima import fit_akima

        return fit_akima(runs, config, source=source)


class GpKind:
    """The two-stage alternative to the surface model: a GP per cell, then the laws (``surface.gp``)."""

    name = "gp"
    summary = ("two stages: per sweep cell a Gaussian process (Matérn-3/2) through the runs near its best loss "
               "gives the cell's optimum with its error (the GP's argmin draws), then the η*/B* laws through those "
               "estimates, each weighted by its error; no bowl shape assumed; one slope per law, straight or "
               "curved (--law-form; --slopes and --approx are the surface's); full sweeps")
    default = False
    bayesian = True
    level = "runs"
    predicts_loss = False
    two_optima = True

    def laws(self, options) -> tuple[str, ...]:
        """The measured laws of ``--law-form``: one (``measured``: straight; ``measured-curved``), or
        every form for ``auto`` (each optimum keeps the one leave-one-N-out stacking weighs most)."""
        from bayes_scaling.optimum.specs.measured import law_forms

        forms = law_forms()
        if options.law_form == AUTO:
            return tuple(forms.values())
        if options.law_form not in forms:
            raise InputError(f"--law-form must be one of {', '.join([*forms, AUTO])}, got {options.law_form!r}")
        return (forms[options.law_form],)

    def law_spec(self, options):
        """The law whose priors ``--prior`` may name: the form's, or for ``auto`` the one with most
        parameters (the curved law's priors hold the straight law's)."""
        from bayes_scaling.optimum.spec import get

        return max(self.laws(options), key=lambda name: len(get(name).priors()))

    def fit(self, runs, config, options, *, source="<table>", cache=None):
        """Both stages on every run of ``runs`` (``cache`` keeps the law's compiled model across calls)."""
        from bayes_scaling.optimum.fit import Fitter
        from bayes_scaling.optimum.spec import ModelOptions
        from bayes_scaling.surface.data import WINDOW, surface_data
        from bayes_scaling.surface.gp import fit_gp

        cache = {} if cache is None else cache
        key = (config, options.priors, "fitter")
        if key not in cache:
            cache[key] = Fitter(config, options=ModelOptions(priors=options.priors))
        data = surface_data(runs, window=options.window or WINDOW, source=source)
        return fit_gp(data, config, source=source, fitter=cache[key], laws=self.laws(options))


#: Every run-level kind, by name.
RUN_LEVEL_KINDS = {kind.name: kind for kind in (SurfaceKind(), GpKind(), AkimaKind())}


def check_approx(approx: str | None) -> None:
    """An unknown or unavailable ``--approx`` is an InputError (checked before any work)."""
    if approx == "pathfinder":
        raise InputError("--approx pathfinder needs pymc-extras, which is not installed here; use --approx advi")
    if approx is not None and approx not in APPROX:
        raise InputError(f"--approx must be one of {', '.join(APPROX)} (or omitted for NUTS), got {approx!r}")
