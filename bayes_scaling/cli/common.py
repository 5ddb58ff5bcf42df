"""What every command line shares: its option groups, its output directory and manifest.

The contract of ``fit``, ``fit --law``, ``plan``, ``backtest`` (and ``advise``):

* the same flag for the same thing, from the option groups here: data (``--data``,
  ``--lr-grid``, ``--batch-grid``), models (``--models``, ``--per-n-intercepts``, ``--slopes``,
  ``--approx``), sampler (``--sampler --draws --tune --chains --seed --target-accept`` →
  ``SamplerConfig.from_args``, whose defaults are the library's), output (``--out``,
  ``--no-plots``, ``--strict``);
* every option and the output directory are checked before any data is read or any model
  fitted; bad input is one ``error:`` line and exit 2 (``errors.guarded``), Ctrl-C one line
  and exit 130, a fit that fails its diagnostics under ``--strict`` exit 3;
* output goes to ``--out`` or ``runs/<command>-<data>-<UTC time>/``, through a staging
  directory (:class:`CommandRun`): the command's owned artifact set appears whole, with a
  ``manifest.json`` (command, data sha256, versions, seed, sampler, diagnostics, wall time,
  files) — or nothing appears.

Light on purpose: nothing here imports PyMC or ArviZ, so ``--help`` and input errors answer
at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bayes_scaling.errors import EXIT_STRICT, InputError
from bayes_scaling.inference.config import (MAX_REFITS, PER_N_LAW_TUNE, SAMPLERS, SURFACE_TARGET_ACCEPT, TARGET_ACCEPT,
                                            TUNE, SamplerConfig)
from bayes_scaling.io import check_out_dir, staged_dir, write_json

#: Packages whose versions every manifest records.
VERSIONED = ("bayes-scaling", "pymc", "pytensor", "arviz", "arviz-stats", "nutpie", "numpy", "pandas", "xarray")
DEFAULT_CI_PROB = 0.9
DEFAULT_WORKERS = os.cpu_count() or 1
SLOPES = ("pooled", "per_n")
#: ``optimum.specs.measured.law_forms()``'s names and ``surface.kind.AUTO``, repeated so a command's
#: --help imports no NumPy (tests/test_gp.py checks they agree)
LAW_FORMS = ("straight", "curved", "auto")


def group(p: argparse.ArgumentParser, title: str):
    """The option group called ``title`` (created once, so --help lists each group once)."""
    for g in p._action_groups:
        if g.title == title:
            return g
    return p.add_argument_group(title)


def data_options(p: argparse.ArgumentParser, *, default: str | None, help: str, grids: bool = True) -> None:
    g = group(p, "data")
    g.add_argument("--data", default=default, metavar="NAME|PATH", help=help)
    g.add_argument("--columns", metavar="OURS=YOURS,...",
                   help="map your table's column names onto the run table's, e.g. "
                        "lr=learning_rate,B=batch_size,D=tokens,N=params,loss=val_loss")
    g.add_argument("--batch-unit", choices=("tokens", "sequences"), default="tokens",
                   help="what the B column counts (default tokens); sequences: B is converted to B × seq_len tokens")
    g.add_argument("--seq-len", type=int, metavar="TOKENS",
                   help="tokens per sequence for --batch-unit sequences (default: the table's seq_len column)")
    if grids:
        g.add_argument("--lr-grid", metavar="SPEC",
                       help="declared lr grid of a best-runs-only table, e.g. 2^-12:2^-8:1 (base^lo:base^hi:log-step) "
                            "or 1e-3,2e-3,4e-3")
        g.add_argument("--batch-grid", metavar="SPEC", help="declared batch-size grid in tokens, e.g. 2^16:2^19:1")


def model_options(p: argparse.ArgumentParser, *, models_help: str, default_models: str | None = None,
                  law_form: bool = True) -> None:
    g = group(p, "models")
    g.add_argument("--models", default=default_models, metavar="LIST", help=models_help)
    g.add_argument("--per-n-intercepts", action="store_true", help="per-N kinds: add per-N intercept offsets")
    g.add_argument("--prior", action="append", metavar="NAME=DIST",
                   help="replace a parameter's prior in every kind that has it, e.g. tau_c=lognormal(log(0.03),0.75), "
                        "c=normal(0,0.5), sigma=gamma(2,10) (repeatable; a's prior is about the table's mean ȳ)")
    g.add_argument("--slopes", "--surface-slopes", dest="slopes", choices=SLOPES, default="pooled",
                   help="surface model: one slope on log D, or per-N slopes (default pooled)")
    g.add_argument("--approx", metavar="METHOD", help="surface model: fast approximate posterior instead of NUTS (advi)")
    if law_form:
        law_form_option(g)


def law_form_option(g) -> None:
    """--law-form on group ``g``: the form of the gp kind's η*/B* laws."""
    g.add_argument("--law-form", choices=LAW_FORMS, default="straight",
                   help="gp model: its η*/B* laws straight (default) or curved, + e·x_N² + f·x_D² with "
                        "e, f ~ Normal(0, 0.25) (x_N, x_D: log N, log D about the table's centre): an extrapolation "
                        "then carries the bend's uncertainty; auto: per optimum the form leave-one-N-out stacking "
                        "weighs most (a diagnostic: on StepLaw it backtests worse than either fixed form)")


def sampler_options(p: argparse.ArgumentParser, *, refits: bool = False, refits_default: int = MAX_REFITS,
                    refits_help: str = "exact LOO refits per model for points with Pareto k > 0.7") -> None:
    d = SamplerConfig()
    g = group(p, "sampler")
    g.add_argument("--sampler", choices=SAMPLERS, default=d.sampler, help=f"NUTS implementation (default {d.sampler})")
    g.add_argument("--draws", type=int, default=d.draws, help=f"posterior draws per chain (default {d.draws})")
    g.add_argument("--tune", type=int, default=None,
                   help=f"tuning steps per chain (default: each model's own, {TUNE}; the hierarchical law {PER_N_LAW_TUNE})")
    g.add_argument("--chains", type=int, default=d.chains, help=f"chains (default {d.chains}; {d.cores} at a time)")
    g.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    g.add_argument("--target-accept", type=float, default=None,
                   help=f"NUTS target acceptance (default: {TARGET_ACCEPT} for the laws of the optima, small steps "
                        f"through the per-N funnel; {SURFACE_TARGET_ACCEPT} for the surface model, which has none)")
    g.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                   help=f"processes working at once (model kinds, folds or simulations; default {DEFAULT_WORKERS}, "
                        "the number of CPUs)")
    if refits:
        g.add_argument("--max-refits", type=int, default=refits_default, help=f"{refits_help} (default {refits_default})")


#: ``planning.plan.FLOPS_MODELS``, repeated so a command's --help imports no NumPy (tests/test_commands.py)
FLOPS_MODELS = ("6ND", "deepseek")


def flops_options(g, *, cost: str) -> None:
    """--flops-model / --run-seq-len / --aspect on group ``g``: how a run of N params on D tokens is
    priced (``cost`` says what is priced, e.g. "a run costs")."""
    g.add_argument("--flops-model", choices=FLOPS_MODELS, default="6ND",
                   help=f"{cost} 6*N*D (default) or DeepSeek's M*D, M = 72*L*d^2 + 12*L*d*seq_len")
    g.add_argument("--run-seq-len", type=int, default=4096, help="sequence length for --flops-model deepseek (default 4096)")
    g.add_argument("--aspect", type=float, default=128.0, help="d_model / n_layer for --flops-model deepseek (default 128)")


def flops_model_of(args: argparse.Namespace):
    """The ``planning.plan.FlopsModel`` of :func:`flops_options` (one-line error on a bad shape)."""
    if args.run_seq_len < 0 or not args.aspect > 0:
        raise InputError(f"--run-seq-len must be >= 0 and --aspect > 0, got {args.run_seq_len} and {args.aspect}")
    from bayes_scaling.planning.plan import FlopsModel

    return FlopsModel(args.flops_model, args.run_seq_len, args.aspect)


def output_options(p: argparse.ArgumentParser, command: str) -> None:
    g = group(p, "output")
    g.add_argument("--out", type=Path, help=f"output directory (default runs/{command}-<data>-<UTC time>/)")
    g.add_argument("--no-plots", dest="plots", action="store_false", help="write no figures")
    g.add_argument("--strict", action="store_true", help=f"exit {EXIT_STRICT} if any fit fails its convergence checks")
    g.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (bars on a terminal, one line per finished unit in a log)")


def load_run_table(args: argparse.Namespace, data: str):
    """The validated run table named by ``data`` with the command's data options (``inputs.datasets.load_runs``)."""
    from bayes_scaling.inputs.datasets import load_runs

    return load_runs(data, lr_grid=getattr(args, "lr_grid", None), batch_grid=getattr(args, "batch_grid", None),
                     columns=args.columns, batch_unit=args.batch_unit, seq_len=args.seq_len)


def model_options_of(args: argparse.Namespace, models: list[str]):
    """The ``ModelOptions`` of the command line: per-N intercepts and the ``--prior`` replacements, each
    checked against the parameters of the chosen kinds."""
    from bayes_scaling import catalog
    from bayes_scaling.catalog import RunOptions, prior_specs
    from bayes_scaling.optimum.priors import parse_prior
    from bayes_scaling.optimum.spec import ModelOptions

    priors = tuple(parse_prior(text) for text in args.prior or ())
    law_form = getattr(args, "law_form", "straight")
    if law_form != "straight" and not any(hasattr(catalog.kinds().get(m), "laws") for m in models):
        raise InputError(f"--law-form {law_form}: only the gp model's laws take a form; add gp to the models")
    kinds = prior_specs(models, RunOptions(law_form=law_form))
    known = {name for spec in kinds.values() for name in spec.priors()}
    for name, _ in priors:
        if name not in known:
            bent = prior_specs(models, RunOptions(law_form="curved")).values()
            hint = ("; the gp model's curved law has it: add --law-form curved"
                    if any(name in spec.priors() for spec in bent) else "")
            raise InputError(f"--prior {name}: no chosen model has a parameter {name!r} with a prior "
                             f"(they have: {', '.join(sorted(known)) or 'none'}){hint}")
    options = ModelOptions(per_n_intercepts=args.per_n_intercepts, priors=priors)
    for spec in kinds.values():          # a kind may refuse a family for a parameter (ρ takes lkj only)
        for name, _ in priors:
            if name in spec.priors():
                spec.prior(name, options)
    return options


def ci_prob_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ci-prob", type=float, default=DEFAULT_CI_PROB,
                   help=f"equal-tailed credible interval mass (default {DEFAULT_CI_PROB})")


def check_ci_prob(value: float) -> float:
    if not 0 < value < 1:
        raise InputError(f"--ci-prob {value}: must be between 0 and 1")
    return value


def parse_choices(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """A comma-separated subset of ``allowed`` ("none" or "": the empty subset), in the given order."""
    items = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip() and s.strip() != "none"))
    bad = [s for s in items if s not in allowed]
    if bad:
        raise InputError(f"{flag}: {', '.join(bad)} not in {', '.join(allowed)} (or none)")
    return items


def check_workers(value: int) -> int:
    if value < 1:
        raise InputError(f"--workers {value}: must be at least 1")
    return value


def check_max_refits(value: int) -> int:
    if value < 0:
        raise InputError(f"--max-refits {value}: must be >= 0")
    return value


def parse_targets(specs: list[str] | None, default: str) -> list[tuple[float, float]]:
    """``--target N,D`` values (repeatable) → [(N, D)], positive and finite."""
    targets = []
    for spec in specs or [default]:
        try:
            n, d = (float(x) for x in spec.split(","))
        except ValueError:
            raise InputError(f"--target {spec!r}: expected N,D such as 4e9,1e11") from None
        if not (0 < n < float("inf") and 0 < d < float("inf")):
            raise InputError(f"--target {spec!r}: N and D must be positive and finite")
        targets.append((n, d))
    return targets


def data_label(data: str) -> str:
    """How a data source names an output directory: the bundled name, or the file's stem."""
    return Path(data.split(":", 1)[0]).stem or "data"


def default_out(command: str, label: str) -> Path:
    return Path("runs") / f"{command}-{label}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


class CommandRun:
    """One run of a command: its checked output directory, its clock and its manifest.

    Create it once the options are valid and before reading data (it checks ``out`` and
    creates nothing); ``publish`` yields the staging directory and, when the block succeeds,
    adds ``manifest.json`` and moves the owned artifact set into place.
    """

    def __init__(self, command: str, argv: list[str], out: Path | None, label: str, owned: tuple[str, ...]) -> None:
        self.t0 = time.perf_counter()
        self.command = command
        self.argv = list(argv)
        self.out = check_out_dir(out or default_out(command, label))
        self.owned = tuple(owned) + ("manifest.json",)

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.t0

    @contextlib.contextmanager
    def publish(self, manifest: dict) -> Iterator[Path]:
        """Yield the staging directory; on success write ``manifest.json`` (``manifest`` plus the
        command, versions, wall time and the files written) and publish the owned set."""
        with staged_dir(self.out, owned=self.owned) as stage:
            yield stage
            files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
            write_json(stage / "manifest.json", {
                "command": " ".join([f"python -m bayes_scaling.{self.command}", *self.argv]),
                **manifest,
                "wall_time_s": round(self.wall_s, 2),
                "versions": versions(),
                "files": files + ["manifest.json"],
            })


def strict_exit(failed: list[str], strict: bool) -> int:
    """Exit code of a finished command: EXIT_STRICT when a fit failed its checks under --strict."""
    return EXIT_STRICT if failed and strict else 0
