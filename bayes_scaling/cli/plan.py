"""``python -m bayes_scaling.plan`` — a FLOP budget → N*, D*, tokens/param, loss, η, B, with intervals.

Fits the loss law (``chinchilla``: L = E + A/N^α + B/D^β) and the laws of the optimal learning
rate and batch size, then propagates both posteriors draw by draw (``planning.plan``). Given a
surface posterior (``--surface``, from ``fit --models surface``), it also predicts the loss of the
planned run and the loss penalty of the user's own learning rate / batch size (``--lr``, ``--batch-tokens``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from bayes_scaling import catalog, progress
from bayes_scaling.cli import common
from bayes_scaling.errors import ArgumentParser, InputError, guarded
from bayes_scaling.inference.config import SamplerConfig

ARTIFACTS = ("plan.csv", "plan_draws.csv", "plan_surface.csv", "plan.png")
DEFAULT_DATA = "blog-partII"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m bayes_scaling.plan",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Plan a training run for a FLOP budget with honest uncertainty.\n\n"
            "Fits the loss law L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla Method 3) and the\n"
            "laws of the optimal learning rate and batch size, then for every posterior draw finds\n"
            "the compute-optimal N*, D* for the budget and the lr / batch size at that (N*, D*).\n"
            "Reports medians with equal-tailed intervals beside the 20 tokens/param rule and\n"
            "DeepSeek's eta = 0.3118*C^-0.125, B = 0.2920*C^0.3271 (tokens)."
        ),
        epilog="examples:\n  python -m bayes_scaling.plan --compute 1e21 --compute 1e23 --max-N 7e10 --out runs/plan\n"
               "  python -m bayes_scaling.plan --compute 1e21 --surface runs/fit-steplaw/posterior/surface.nc --lr 3e-3",
    )
    g = common.group(p, "budget")
    g.add_argument("--compute", type=float, action="append", required=True, metavar="FLOPS",
                   help="training budget in FLOPs (repeatable), e.g. 1e21")
    g.add_argument("--max-N", type=float, default=None, help="largest model you can train (parameters); caps N*")
    common.flops_options(g, cost="C =")
    common.data_options(p, default=DEFAULT_DATA,
                        help=f"run table for the lr / batch-size laws: bundled name or path (default {DEFAULT_DATA})")
    common.group(p, "data").add_argument("--optimum-data", dest="data", help="the same as --data")
    common.group(p, "data").add_argument(
        "--loss-law-data", default="chinchilla",
        help="loss table for the loss law: chinchilla (default), porian[:filters] or a CSV/Parquet run table")
    g = common.group(p, "models")
    g.add_argument("--optimum-model", default="hierarchical",
                   help=f"kind for the lr / batch-size laws, one of {', '.join(catalog.kinds())} (default hierarchical; "
                        "surface, gp and akima need full sweeps in --optimum-data)")
    g.add_argument("--per-n-intercepts", action="store_true", help="per-N kinds: add per-N intercept offsets")
    g.add_argument("--prior", action="append", metavar="NAME=DIST",
                   help="replace a parameter's prior of the lr / batch-size laws, e.g. tau_c=lognormal(log(0.03),0.75)")
    common.law_form_option(g)
    g = common.group(p, "the loss of the planned run")
    g.add_argument("--surface", type=Path, metavar="SURFACE.nc",
                   help="a surface posterior (posterior/surface.nc of fit --models surface): predict the planned "
                        "run's loss, and the penalty of --lr / --batch-tokens; writes plan_surface.csv")
    g.add_argument("--lr", type=float, help="your learning rate, to price against the plan's (needs --surface)")
    g.add_argument("--batch-tokens", type=float, help="your batch size in tokens (needs --surface)")
    common.ci_prob_option(p)
    common.sampler_options(p)
    common.output_options(p, "plan")
    p.add_argument("--no-plot", dest="plots", action="store_false", help=argparse.SUPPRESS)
    return p


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Validate, fit both posteriors, plan, write plan.csv / plan_draws.csv / plan.png / manifest.json."""
    progress.set_quiet(args.quiet)
    ci_prob = common.check_ci_prob(args.ci_prob)
    common.check_workers(args.workers)
    config = SamplerConfig.from_args(args)
    flops = common.flops_model_of(args)
    kinds = catalog.kinds()
    if args.optimum_model not in kinds:
        raise InputError(f"--optimum-model {args.optimum_model!r}: choose one of {', '.join(kinds)}")
    options = common.model_options_of(args, [args.optimum_model])
    surface = _load_surface(args)
    command = common.CommandRun("plan", argv, args.out, common.data_label(args.loss_law_data), ARTIFACTS)

    from bayes_scaling.inputs.loss_tables import load_loss_table
    from bayes_scaling.planning.plan import check_budgets, draws_frame, make_plan, plan_grid

    table, source, loss_sha = load_loss_table(args.loss_law_data)
    check_budgets(args.compute, table, args.max_N, source)
    loaded = common.load_run_table(args, args.data)  # fails before any fitting

    from bayes_scaling.inputs.runtable import check_design
    from bayes_scaling.io import write_csv
    from bayes_scaling.surface.gp import law_choice

    best = loaded.best()
    check_design(best.frame, loaded.source)
    runs = None
    if kinds[args.optimum_model].level == "runs":           # a run-level kind fits every run: a full sweep
        from bayes_scaling.surface.data import surface_data

        try:
            surface_data(loaded.runs, source=loaded.source)
        except InputError as err:
            raise InputError(f"--optimum-model {args.optimum_model}: {err}") from None
        runs = loaded.runs
    progress.note(f"  fitting the loss law E + A/N^α + B/D^β to {source} and the lr / batch-size laws "
                  f"({args.optimum_model}) to {loaded.source}; {min(args.workers, 2)} process(es)")
    loss_fit, optimum = _fit_both(table, best, args.optimum_model, config, options, args.workers, runs,
                                  args.law_form)
    plan = make_plan(args.compute, loss_fit, optimum, flops=flops, max_N=args.max_N, ci_prob=ci_prob, seed=args.seed)
    diagnostics = {"loss_law": loss_fit.diagnostics, **{q: f.diagnostics for q, f in optimum.items()}}
    if surface is not None:
        from bayes_scaling.planning.plan import surface_losses

        priced = surface_losses(plan, surface, lr=args.lr, batch_size=args.batch_tokens, ci_prob=ci_prob,
                                seed=args.seed)
        diagnostics["surface"] = surface.diagnostics
    with command.publish({
        "data": {"loss_law": {"source": source, "sha256": loss_sha, "rows": len(table)},
                 "optimum": {"source": loaded.source, "sha256": loaded.sha256, "runs": len(loaded.runs)}},
        "compute": args.compute, "flops_model": args.flops_model, "max_N": args.max_N,
        "optimum_model": args.optimum_model, "surface": str(args.surface) if surface is not None else None,
        "law_form": args.law_form, "laws": {q: law_choice(f) for q, f in optimum.items() if "law" in f.meta},
        "ci_prob": ci_prob, "seed": config.seed, "sampler": config.as_dict(),
        "diagnostics": {k: d.as_dict() if d else None for k, d in diagnostics.items()},
    }) as stage:
        write_csv(stage / "plan.csv", plan.table)
        write_csv(stage / "plan_draws.csv", draws_frame(plan))
        if surface is not None:
            write_csv(stage / "plan_surface.csv", priced)
        if args.plots:
            from bayes_scaling.report.figures.plan import plot_plan
            from bayes_scaling.report.figures.save import save_figure

            curve = make_plan(plan_grid(plan.budgets, table), loss_fit, optimum, flops=flops, max_N=args.max_N,
                              ci_prob=ci_prob, seed=args.seed)
            save_figure(plot_plan(plan, curve, ci_prob=ci_prob), stage / "plan.png")

    from bayes_scaling.report.text import plan_text

    print(plan_text(plan, ci_prob, table, flops))
    if surface is not None:
        from bayes_scaling.report.text import plan_surface_text

        print(plan_surface_text(priced, str(args.surface)))
    failed = []
    for name, d in diagnostics.items():
        print(f"diagnostics {name}: {d.describe() if d else 'n/a'}")
        if d is not None and not d.ok:
            failed.append(name)
            print(f"WARNING: the {name} fit did not converge; do not trust its intervals.", file=sys.stderr)
    print(f"wrote {command.out}/")
    return common.strict_exit(failed, args.strict)


def _load_surface(args: argparse.Namespace):
    """The ``--surface`` posterior (checked before any fitting), or None; --lr / --batch-tokens need it."""
    for flag, v in (("--lr", args.lr), ("--batch-tokens", args.batch_tokens)):
        if v is not None and args.surface is None:
            raise InputError(f"{flag}: pricing your own value needs a loss surface: add --surface SURFACE.nc "
                             "(posterior/surface.nc of fit --models surface)")
        if v is not None and not (math.isfinite(v) and v > 0):
            raise InputError(f"{flag} {v:g}: must be a positive number")
    if args.surface is None:
        return None
    if not args.surface.is_file():
        raise InputError(f"--surface {args.surface}: no such file")
    from bayes_scaling.surface.fit import SurfaceFit

    try:
        return SurfaceFit.from_netcdf(args.surface)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"--surface {args.surface}: not a surface posterior written by fit --models surface "
                         f"({type(err).__name__})") from None


def _fit_both(table, best, optimum_model: str, config, options, workers: int, runs=None, law_form: str = "straight"):
    """The loss law and the two optimum laws (a run-level kind's from every run of ``runs``) — in two
    processes at once when ``workers`` allows. Each optimum's law is a task of its own, unless the
    kind fits both at once (run-level, or ``couples``)."""
    import os
    from dataclasses import replace

    kind = catalog.kinds()[optimum_model]
    apart = kind.level == "best-runs" and not kind.couples
    groups = {"lr law": ["lr"], "batch-size law": ["batch_size"]} if apart else {
        "lr and batch-size laws": ["lr", "batch_size"]}
    optima = {name: (_fit_optima, (best, optimum_model, options, runs, law_form, qs))
              for name, qs in groups.items()}
    # the loss law second: two processes compiling one kind at once would compile it twice on a cold
    # cache, while the batch-size law, started third, loads the lr law's compiled model
    first, *rest = optima.items()
    tasks = dict([first, ("loss law", (_fit_loss_law, (table,))), *rest])
    results = {}
    with progress.steps(len(tasks), "laws fitted") as tick:
        if workers < 2:
            for name, (fn, fn_args) in tasks.items():
                results[name] = fn(*fn_args, config)
                tick(name)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            from bayes_scaling.inference.sampling import preload

            config = replace(config, cores=max(1, (os.cpu_count() or 1) // 2))
            preload(config)                   # once here, not once per forked worker
            with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(fn, *fn_args, config): name for name, (fn, fn_args) in tasks.items()}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    tick(futures[future])
    optimum = {q: f for name in groups for q, f in results[name].items()}
    return results["loss law"], optimum


def _fit_loss_law(table, config):
    from bayes_scaling.laws.base import fit_law
    from bayes_scaling.laws.chinchilla import ParametricLaw

    return fit_law(ParametricLaw(table), config, log_likelihood=False)


def _fit_optima(best, kind: str, options, runs, law_form, quantities: list[str], config):
    from bayes_scaling.optimum.fit import Fitter

    fitter = Fitter(config, options=options)
    fitted = catalog.fit_all([kind], quantities, best, fitter, runs=runs, source=best.source,
                             options=catalog.RunOptions(law_form=law_form))
    return {q: fitted.fits[q][kind] for q in quantities}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return guarded(lambda: run(args, argv))
