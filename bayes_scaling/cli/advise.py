"""``python -m bayes_scaling.advise`` — which sweeps to run next, within a FLOP budget.

Fits the laws of η* and B* to the table (with ``--models surface``, the surface model of every run,
which adds the loss L*(N, D)), simulates each candidate sweep's outcome from their posteriors, and
reweights the draws by it (``planning.advise``, ``planning.advise_surface``) to estimate how much each
sweep — and a greedy set of them that fits the budget — would narrow the intervals at the targets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bayes_scaling import catalog, progress
from bayes_scaling.cli import common
from bayes_scaling.errors import ArgumentParser, InputError, guarded
from bayes_scaling.inference.config import SamplerConfig

ARTIFACTS = ("advice.csv", "path.csv", "spec.toml", "advice.png")
DEFAULT_DATA = "blog-partII"
DEFAULT_TARGET = "4e9,1e11"
DEFAULT_MODEL = "hierarchical"
#: The run-level kind the advisor updates too (it adds the loss quantity).
SURFACE = "surface"
QUANTITIES = ("lr", "batch_size")
#: Sampler settings of the exact refits that check degenerate importance weights.
REFIT_DRAWS = 500
REFIT_CHAINS = 2
#: Exact refits per law of the chosen set's degenerate simulations (a few seconds each).
MAX_REFITS = 20


def build_parser() -> argparse.ArgumentParser:
    from bayes_scaling.planning.advise import DEFAULT_SIMS, MAX_DECADES

    p = ArgumentParser(
        prog="python -m bayes_scaling.advise",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Which (N, D) sweeps to run next, within a FLOP budget.\n\n"
            "For each candidate sweep (a cell swept over an lr x batch grid of G runs, costing G*6*N*D FLOPs)\n"
            "the best run it would find is simulated from the posterior of the lr and batch-size laws, the\n"
            "posterior draws are reweighted by it (importance sampling, Pareto-k checked, exact refits where\n"
            "the weights degenerate), and the expected 90% interval of eta* and B* at each target is averaged\n"
            "over simulations (the surface model has no exact refit: a linear-Gaussian update stands in).\n"
            "A greedy search picks the set with the most shrinkage per FLOP that fits\n"
            "--budget; spec.toml is that set as a sweep spec for `python -m training.sweep plan`.\n\n"
            "--models surface (a table of full sweeps) fits the surface model to every run instead and adds the\n"
            "loss at the target, L*(N, D): a sweep's outcome is then what it measures of its cell's minimum\n"
            "loss and optima."
        ),
        epilog=("example: python -m bayes_scaling.advise --data steplaw-dense --target 4e9,1e11 --budget 3e21 "
                "--out runs/advice"),
    )
    g = common.group(p, "question")
    g.add_argument("--target", action="append", metavar="N,D",
                   help=f"(N params, D tokens) whose intervals should shrink; repeatable (default {DEFAULT_TARGET}; "
                        f"at most {MAX_DECADES:g} decades beyond the table)")
    g.add_argument("--budget", type=float, required=True, metavar="FLOPS", help="FLOPs to spend on new sweeps, e.g. 3e21")
    g.add_argument("--candidates", type=Path, metavar="FILE",
                   help="candidate sweeps, a .toml ([[candidate]] N, D, lr, batch_tokens, runs) or .csv; default: "
                        "more D at every size, larger sizes, re-sweeps of off-grid optima")
    common.flops_options(g, cost="a run costs")
    g.add_argument("--sims", type=int, default=DEFAULT_SIMS,
                   help=f"simulated outcomes per candidate (default {DEFAULT_SIMS})")
    g.add_argument("--sweep-spec", type=Path, metavar="TOML",
                   help="your sweep's spec: spec.toml copies its [data], [train], [runtime] and seeds")
    common.data_options(p, default=DEFAULT_DATA, help=f"run table: bundled name or path (default {DEFAULT_DATA})")
    common.model_options(p, models_help=f"Bayesian kinds whose laws are updated (comma list; default {DEFAULT_MODEL}); "
                                        "the objective averages over them; surface (full sweeps) adds the loss",
                         default_models=DEFAULT_MODEL, law_form=False)
    common.ci_prob_option(p)
    common.sampler_options(p, refits=True, refits_default=MAX_REFITS,
                           refits_help="exact refits per law of simulated outcomes whose importance weights degenerate "
                                       "(Pareto k > 0.7); the rest count as no shrinkage")
    common.output_options(p, "advise")
    return p


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Validate, fit, simulate, choose, write advice.csv / path.csv / spec.toml / advice.png / manifest.json."""
    progress.set_quiet(args.quiet)
    ci_prob = common.check_ci_prob(args.ci_prob)
    common.check_workers(args.workers)
    common.check_max_refits(args.max_refits)
    config = SamplerConfig.from_args(args)
    if not 0 < args.budget < float("inf"):
        raise InputError(f"--budget {args.budget:g}: must be a positive number of FLOPs")
    if args.sims < 10:
        raise InputError(f"--sims {args.sims}: need at least 10 simulated outcomes per candidate")
    flops_model = common.flops_model_of(args)
    models = _models(args.models)
    options = common.model_options_of(args, models)
    targets = common.parse_targets(args.target, DEFAULT_TARGET)
    base_spec = _read_sweep_spec(args.sweep_spec) if args.sweep_spec else None
    from bayes_scaling.inputs.candidates import read_candidates

    specs = read_candidates(args.candidates) if args.candidates else None
    command = common.CommandRun("advise", argv, args.out, common.data_label(args.data), ARTIFACTS)
    loaded = common.load_run_table(args, args.data)

    import numpy as np

    from bayes_scaling.inputs.runtable import check_design
    from bayes_scaling.planning import advise as adv

    if SURFACE in models:                        # a best-runs-only table is refused before any work
        from bayes_scaling.surface.data import surface_data

        surface_data(loaded.runs, source=loaded.source)
    best = loaded.best()
    check_design(best.frame, loaded.source)
    adv.check_targets(targets, best.frame)
    shape = adv.sweep_shape(loaded.runs, {"lr": loaded.lr_grid, "batch_size": loaded.batch_grid})
    if specs is not None:
        cheapest = min(s.runs or shape.runs for s in specs)   # the budget check needs no fit when it can
        smallest = min(float(flops_model.per_token(np.array([s.N]))[0] * s.D) for s in specs)
        if args.budget < cheapest * smallest:
            raise InputError(f"--budget {args.budget:.3g} FLOPs is below the cheapest candidate of {args.candidates}")

    surface = _fit_surface(loaded, args, config) if SURFACE in models else None
    best_run_models = [m for m in models if m != SURFACE]
    if best_run_models:
        progress.note(f"  fitting the lr and batch-size laws ({', '.join(best_run_models)}) on {loaded.source}")
    fits = _fit(best, best_run_models, options, config, args.workers)
    primary = surface.as_optimum_fits() if models[0] == SURFACE else {q: fits[(models[0], q)] for q in QUANTITIES}
    candidates = ([adv.from_spec(s, primary, shape) for s in specs] if specs is not None
                  else adv.default_candidates(best.frame, primary, shape, targets))
    flops = np.array([c.flops(flops_model) for c in candidates])
    if args.budget < flops.min():
        c = int(np.argmin(flops))
        raise InputError(f"--budget {args.budget:.3g} FLOPs is below the cheapest candidate ({candidates[c].label}: "
                         f"{flops[c]:.3g} FLOPs for {candidates[c].runs} runs)")

    datas = {q: best.quantity(q) for q in QUANTITIES}
    preps = []
    with progress.steps(len(fits) + (surface is not None), "laws simulated at every candidate") as tick:
        for i, ((model, q), fit) in enumerate(fits.items()):
            preps.append(adv.simulate(fit, datas[q], candidates, targets, n_sims=args.sims, ci_prob=ci_prob,
                                      seed=args.seed + i))
            tick(f"{model} {q}")
        if surface is not None:
            from bayes_scaling.planning.advise_surface import simulate_surface

            preps += simulate_surface(surface, candidates, targets, n_sims=args.sims, ci_prob=ci_prob,
                                      seed=args.seed + len(fits))
            tick("surface: loss, lr, batch_size")
    progress.note(f"  choosing among {len(candidates)} candidates within {args.budget:.3g} FLOPs")
    with progress.steps(len(candidates), "candidates added (at most)") as tick:
        advice = adv.advise(preps, candidates, flops, args.budget, targets, workers=args.workers,
                            on_step=lambda c: tick(candidates[c].label))
    from bayes_scaling.optimum.fit import Fitter

    refit_config = config.capped(draws=REFIT_DRAWS, tune=REFIT_DRAWS, chains=REFIT_CHAINS)
    refittable = sum(p.refittable for p in preps)
    with progress.steps(args.max_refits * refittable, "exact refits of degenerate weights (at most)") as tick:
        adv.check_by_refits(advice, preps, fits, datas, Fitter(refit_config, options=options),
                            max_refits=args.max_refits, seed=args.seed, on_refit=tick)

    table, path = adv.advice_table(advice), adv.path_table(advice)
    seq_len = int(loaded.runs["seq_len"].median()) if "seq_len" in loaded.runs else 64
    spec_text = adv.sweep_spec(advice, base_spec, seq_len=seq_len)
    diagnostics = {f"{m} {q}": f.diagnostics for (m, q), f in fits.items()}
    if surface is not None:
        diagnostics[SURFACE] = None if surface.approximate else surface.diagnostics
        if surface.approximate:
            print(f"NOTE: the surface fit is APPROXIMATE ({surface.method}); mean-field spreads are too narrow, "
                  "so the expected shrinkage is optimistic.", file=sys.stderr)
    from bayes_scaling.io import write_csv, write_text

    with command.publish({
        "data": {"source": loaded.source, "sha256": loaded.sha256, "runs": len(loaded.runs)},
        "targets": targets, "budget": args.budget, "flops_model": args.flops_model, "models": models,
        "candidates": [c.label for c in candidates], "chosen": [candidates[c].label for c in advice.chosen],
        "flops_spent": advice.spent, "sims": args.sims, "ci_prob": ci_prob, "seed": config.seed,
        "sampler": config.as_dict(), "refits": advice.refits,
        "surface_method": surface.method if surface is not None else None,
        "diagnostics": {k: d.as_dict() if d else None for k, d in diagnostics.items()},
    }) as stage:
        write_csv(stage / "advice.csv", table)
        write_csv(stage / "path.csv", path)
        write_text(stage / "spec.toml", spec_text)
        if args.plots:
            from bayes_scaling.report.figures.advise import plot_advice
            from bayes_scaling.report.figures.save import save_figure

            save_figure(plot_advice(table, path, ci_prob=ci_prob), stage / "advice.png")

    from bayes_scaling.report.text import advice_text

    print(advice_text(table, path, advice.budget, ci_prob))
    failed = []
    for name, d in diagnostics.items():
        if d is not None and not d.ok:
            failed.append(name)
            print(f"WARNING: the {name} fit did not converge; do not trust this advice.", file=sys.stderr)
    print(f"wrote {command.out}/  (next: python -m training.sweep plan {command.out}/spec.toml --out runs/next)")
    return common.strict_exit(failed, args.strict)


def _models(text: str | None) -> list[str]:
    models = catalog.parse_models(text or DEFAULT_MODEL)
    kinds = catalog.kinds()
    usable = [k for k, v in kinds.items() if v.bayesian and (v.level == "best-runs" or k == SURFACE)]
    bad = [m for m in models if m not in usable]
    if bad:
        raise InputError(f"--models {', '.join(bad)}: the advisor updates a posterior; choose among {', '.join(usable)}")
    return models


def _fit_surface(loaded, args: argparse.Namespace, config: SamplerConfig):
    """The surface model on every run of the table (with its own progress lines: NUTS's tenths, or
    ADVI's windows with ``--approx advi``)."""
    progress.note(f"  fitting the surface model to every run of {loaded.source}")
    return catalog.kinds()[SURFACE].fit(loaded.runs, config,
                                        catalog.RunOptions(slopes=args.slopes, approx=args.approx, progress=True),
                                        source=loaded.source, cache={})


def _read_sweep_spec(path: Path) -> dict:
    import tomllib

    if not path.is_file():
        raise InputError(f"--sweep-spec {path}: no such file")
    if path.suffix.lower() != ".toml":
        raise InputError(f"--sweep-spec {path}: expected a .toml sweep spec")
    try:
        spec = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"--sweep-spec {path}: not valid TOML ({str(err).splitlines()[0]})") from None
    return {k: spec[k] for k in ("data", "grid", "train", "runtime") if isinstance(spec.get(k), dict)}


def _fit(best, models: list[str], options, config, workers: int) -> dict:
    """Every (kind, quantity) law — one task each, in up to ``workers`` processes."""
    import os
    from dataclasses import replace

    tasks = [(m, q) for m in models for q in QUANTITIES]
    out = {}
    workers = max(1, min(workers, len(tasks)))
    with progress.steps(len(tasks), "laws fitted") as tick:
        if workers == 1:
            for task in tasks:
                out[task] = _fit_one(best, *task, options, config)
                tick(" ".join(task))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            config = replace(config, cores=max(1, (os.cpu_count() or 1) // workers))
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(_fit_one, best, *task, options, config, True): task for task in tasks}
                for future in as_completed(futures):
                    out[futures[future]] = future.result()
                    tick(" ".join(futures[future]))
    return {task: out[task] for task in tasks}


def _fit_one(best, model: str, quantity: str, options, config, in_pool: bool = False):
    from bayes_scaling.optimum.fit import Fitter

    if in_pool:
        progress.set_quiet(True)
    return Fitter(config, options=options).fit(model, best.quantity(quantity))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return guarded(lambda: run(args, argv))
