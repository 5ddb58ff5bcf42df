"""``python -m bayes_scaling.backtest`` — hold cells out, fit every model kind on the rest, score them.

See ``evaluation.backtest`` for the splits and the scores. Writes backtest.csv (one row per
split, fold, model, held-out cell and optimum), run_losses.csv (one row per held-out run, for the
kinds that predict losses), ranking.csv, backtest.png and manifest.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from bayes_scaling import catalog, progress
from bayes_scaling.cli import common
from bayes_scaling.errors import ArgumentParser, InputError, guarded
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.datasets import DATASETS

SPLITS = ("largest-n", "largest-d", "each-n")
ARTIFACTS = ("backtest.csv", "run_losses.csv", "ranking.csv", "backtest.png")
DEFAULT_DATA = "steplaw-dense"
#: Window of the surface model (nats above a cell's best loss kept exact): ``surface.data.WINDOW``.
DEFAULT_WINDOW = 0.03


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m bayes_scaling.backtest",
        description="Backtests: hold cells out, fit every model kind on the rest, score the held-out optima.\n\n"
                    "Splits: largest-n (every cell of the largest N), largest-d (each N's largest-D cell), "
                    "each-n (leave-one-N-out).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=catalog.help_text() + "\n\nexample: python -m bayes_scaling.backtest --data steplaw-dense "
               "--models ols,hierarchical,surface --splits largest-n --draws 500 --out results/bt",
    )
    common.data_options(p, default=DEFAULT_DATA, grids=False,
                        help=f"bundled full sweep ({', '.join(d for d in DATASETS if d != 'blog-partII')}) or a "
                             f"run-table CSV/Parquet with several runs per (N, D) cell (default: {DEFAULT_DATA})")
    common.model_options(p, models_help=f"comma-separated subset of {', '.join(catalog.kinds())} (default: all)")
    common.group(p, "models").add_argument(
        "--window", type=float, default=DEFAULT_WINDOW,
        help=f"run-level kinds (surface, gp): nats above a cell's best loss kept exact (default {DEFAULT_WINDOW})")
    p.add_argument("--splits", default=",".join(SPLITS), help=f"comma-separated subset of {', '.join(SPLITS)} (default: all)")
    g = p.add_argument_group("executor (folds are independent)")
    g.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: --workers processes on this machine; slurm: one submitit job per fold")
    g.add_argument("--slurm-partition", help="--executor slurm: partition to submit to")
    g.add_argument("--timeout-min", type=int, default=120, help="--executor slurm: job time limit in minutes (default 120)")
    g.add_argument("--cluster", choices=("slurm", "local", "debug"), default="slurm",
                   help="--executor slurm: submitit backend (local/debug try the path without a cluster)")
    g.add_argument("--restart", action="store_true",
                   help="forget the folds an interrupted run of the same --out finished (default: resume them)")
    common.ci_prob_option(p)
    common.sampler_options(p)
    common.output_options(p, "backtest")
    return p


def _parse_list(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise InputError(f"{flag}: {', '.join(bad) or 'empty'} not in {', '.join(allowed)}")
    return items


def run(args: argparse.Namespace, argv: list[str]) -> int:
    models = catalog.parse_models(args.models) if args.models else list(catalog.kinds())
    splits = _parse_list(args.splits, SPLITS, "--splits")
    progress.set_quiet(args.quiet)
    ci_prob = common.check_ci_prob(args.ci_prob)
    common.check_workers(args.workers)
    config = SamplerConfig.from_args(args)
    options = common.model_options_of(args, models)
    if args.approx:
        raise InputError("--approx: the backtest fits the surface model with NUTS only")
    command = common.CommandRun("backtest", argv, args.out, common.data_label(args.data), ARTIFACTS)

    from bayes_scaling.evaluation.backtest import ranking, run_backtest
    from bayes_scaling.io import write_csv
    from bayes_scaling.surface.data import surface_data

    loaded = common.load_run_table(args, args.data)
    from bayes_scaling.inputs.runtable import check_design

    sd = surface_data(loaded.runs, window=args.window, source=loaded.source)   # fail fast on best-runs-only tables
    check_design(sd.cells, loaded.source)
    print(f"backtest of {', '.join(models)} on {loaded.source} ({len(loaded.runs)} runs), splits: {', '.join(splits)}",
          flush=True)
    partial = command.out.parent / f".{command.out.name}.folds"     # finished folds, kept until the run succeeds
    if args.restart:
        shutil.rmtree(partial, ignore_errors=True)
    result = run_backtest(loaded.runs, models=models, splits=splits, config=config, ci_prob=ci_prob,
                          window=args.window, slopes=args.slopes, law_form=args.law_form, source=loaded.source,
                          log=progress.note, workers=args.workers, executor=args.executor, partial=partial,
                          slurm={"partition": args.slurm_partition, "timeout_min": args.timeout_min,
                                 "cluster": args.cluster, "cpus": config.cores}, options=options)
    table = result.optima
    if table.empty:
        raise InputError("no fold left two model sizes to fit")
    rank = ranking(table, result.runs)
    failed = sorted({f"{r.model} {r.split}/{r.fold}" for r in table.itertuples() if not r.fit_ok})
    with command.publish({
        "data": {"source": loaded.source, "sha256": loaded.sha256, "runs": len(loaded.runs)},
        "models": models, "model_options": options.as_dict(), "splits": list(splits), "ci_prob": ci_prob,
        "window": args.window, "slopes": args.slopes, "law_form": args.law_form,
        "seed": config.seed, "sampler": config.as_dict(), "diagnostics": {"failed_fits": failed},
    }) as stage:
        write_csv(stage / "backtest.csv", table)
        if len(result.runs):
            write_csv(stage / "run_losses.csv", result.runs)
        write_csv(stage / "ranking.csv", rank)
        if args.plots:
            from bayes_scaling.report.figures.backtest import plot_backtest

            plot_backtest(table, stage / "backtest.png")

    from bayes_scaling.report.text import ranking_text

    print("\n" + ranking_text(rank, ci_prob))
    shutil.rmtree(partial, ignore_errors=True)
    print(f"\nwrote {command.out}/")
    return common.strict_exit(failed, args.strict)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return guarded(lambda: run(args, argv))
