"""``python -m bayes_scaling.fit`` — posteriors over the laws of η*(N, D) and B*(N, D).

Reads a run table (a bundled dataset or your CSV/Parquet), keeps the best run of each
(N, D) cell with the grid cell it won in, fits each model to each optimum, compares
them by LOO, predicts the optimum at the target (N, D) with credible intervals and
writes everything (CSV tables, netCDF posteriors, plots, a manifest) to --out.
With ``--law`` it fits a loss law L(N, D) instead (``cli.law``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bayes_scaling import catalog, progress
from bayes_scaling.cli import common
from bayes_scaling.errors import ArgumentParser, InputError, guarded
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.datasets import DATASETS
from bayes_scaling.laws.base import registry as law_registry
from bayes_scaling.surface.kind import check_approx

DEFAULT_TARGET = "4e9,1e11"
DEFAULT_DATA = "blog-partII"
#: What a fit run owns in its --out directory: replaced as a set, so no stale artifact of
#: an earlier run (say compare.csv from a run with more models) survives beside the new manifest.
ARTIFACTS = ("best_runs.csv", "predictions.csv", "exponents.csv", "compare.csv", "held_out.csv", "sensitivity.csv",
             "surface_cells.csv", "gp_cells.csv", "akima_cells.csv", "run_predictions.csv", "posterior", "plots")
PREDICTION_COLUMNS = ["model", "quantity", "N", "D", "median", "mean", "lo", "hi", "ci_prob", "interval", "recommended"]
CV_SCHEMES = ("lono", "largest-n", "largest-d")


def epilog() -> str:
    return f"""\
{catalog.help_text()}
  (--per-n-intercepts adds per-N intercept offsets to the hierarchical model)

data (--data): a bundled name ({", ".join(DATASETS)}) or a CSV/Parquet run table with
  columns run_id, N, D, B, lr, loss [, status, seed, seq_len, ...]: one row per run.
  Full sweeps carry their own grid; a best-runs-only table needs --lr-grid/--batch-grid.

outputs (--out DIR): predictions.csv, exponents.csv, compare.csv (LOO, cross-validation, stacking
  weights, the recommendation), held_out.csv, sensitivity.csv (prior sensitivity), best_runs.csv,
  posterior/<model>_<quantity>.nc, manifest.json, plots/ (unless --no-plots); with --models surface
  also surface_cells.csv, posterior/surface.nc and, with --predict-runs, run_predictions.csv
  ([run_id,] N, D, B, lr, loss_median, loss_mean, loss_lo, loss_hi, ci_prob); with --models gp
  gp_cells.csv (each cell's GP estimate of its optimum) and posterior/gp.nc. compare.csv and
  held_out.csv need two Bayesian best-run kinds to compare.

loss laws: --law {"|".join(law_registry())} fits L(N, D) instead (see README).

examples:
  python -m bayes_scaling.fit                                   # blog-partII, the default models
  python -m bayes_scaling.fit --data steplaw-dense --target 4e9,1e11 --target 1e10,2e11
  python -m bayes_scaling.fit --data runs.csv --lr-grid 2^-12:2^-6:0.5 --batch-grid 2^16:2^20:1
  python -m bayes_scaling.fit --models quantized,hierarchical --draws 2000 --sampler pymc
  python -m bayes_scaling.fit --data steplaw-dense --models surface --predict-runs planned.csv
"""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m bayes_scaling.fit",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common.data_options(p, default=None, help=f"bundled dataset name or run-table path (default: {DEFAULT_DATA}; "
                                               "for --law, the law's dataset)")
    common.model_options(p, models_help=f"comma-separated subset of {','.join(catalog.kinds())}")
    common.group(p, "models").add_argument("--quantity", choices=("both", "lr", "batch_size"), default="both",
                                                help="which optimum to fit (default both)")
    p.add_argument("--law", choices=tuple(law_registry()), help="fit a loss law L(N, D) instead of the optima")
    g = common.group(p, "prediction")
    g.add_argument("--target", action="append", metavar="N,D",
                   help=f"(N params, D tokens) to predict at; repeatable (default {DEFAULT_TARGET})")
    g.add_argument("--cv", default=",".join(CV_SCHEMES), metavar="LIST",
                   help="extrapolation cross-validation beside LOO: comma-separated subset of "
                        f"{','.join(CV_SCHEMES)} (leave one N out; the largest N; each N's largest D), or none "
                        "(default all; each fold refits every compared kind)")
    g.add_argument("--predict-runs", metavar="RUNS.csv",
                   help="CSV/Parquet of runs to predict the final loss of (columns N, D, B in tokens per step, lr "
                        "[, run_id]); needs a model that predicts losses (surface); writes run_predictions.csv")
    common.ci_prob_option(g)
    common.sampler_options(p, refits=True)
    common.output_options(p, "fit")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="keep each kind's finished fit and scores in DIR and reuse them when the data, kind, sampler "
                        "settings and options are the same (opt-in, for reruns and notebooks; delete DIR to clear)")
    return p


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Validate every option, then load, fit, compare, predict, write and report."""
    progress.set_quiet(args.quiet)
    if args.cache is not None and args.cache.exists() and not args.cache.is_dir():
        raise InputError(f"--cache {args.cache}: not a folder")
    models = catalog.parse_models(args.models)
    targets = common.parse_targets(args.target, DEFAULT_TARGET)
    ci_prob = common.check_ci_prob(args.ci_prob)
    common.check_max_refits(args.max_refits)
    common.check_workers(args.workers)
    cv = common.parse_choices(args.cv, CV_SCHEMES, "--cv")
    config = SamplerConfig.from_args(args)
    check_approx(args.approx)
    options = common.model_options_of(args, models)
    if args.predict_runs and not catalog.loss_predicting(models):
        raise InputError(f"--predict-runs: none of the chosen models ({', '.join(models)}) predicts run losses; "
                         f"add one of {', '.join(catalog.loss_predicting(list(catalog.kinds())))} to --models")
    data_name = args.data or DEFAULT_DATA
    command = common.CommandRun("fit", argv, args.out, common.data_label(data_name), ARTIFACTS)

    from bayes_scaling.inputs.runtable import read_planned_runs

    planned = read_planned_runs(args.predict_runs) if args.predict_runs else None   # before any fitting
    loaded = common.load_run_table(args, data_name)

    from bayes_scaling.inputs.runtable import QUANTITIES, check_design

    best = loaded.best()
    check_design(best.frame, loaded.source)
    quantities = list(QUANTITIES) if args.quantity == "both" else [args.quantity]
    kinds = catalog.kinds()
    print(f"bayes-scaling: {loaded.description}")
    print(f"  {len(loaded.runs)} runs -> {len(best.frame)} best runs in {best.frame['N'].nunique()} model sizes; "
          f"models {', '.join(models)}; {_methods(models, kinds, config, args.approx)}", flush=True)
    for line in best.dropped_text():
        print(f"  {line}", flush=True)
    if best.sigma_sel:
        print("  selection jitter σ_sel of the best runs, from the sweeps: "
              + ", ".join(f"{q} {v:.3f}" for q, v in best.sigma_sel.items()), flush=True)

    import pandas as pd

    from bayes_scaling.optimum.compare import aggregate

    def announce(kind: str, quantity: str, fit) -> None:
        label = "both" if quantity == "both" else quantity
        method = f"{fit.method}; " if quantity == "both" else ""
        extra = f"  {method}{fit.diagnostics.describe()}" if fit.diagnostics else ""
        progress.note(f"  fitted {kind:<13} {label:<10} {fit.wall_s:6.1f} s{extra}")

    compared = [m for m in models if kinds[m].bayesian and kinds[m].level == "best-runs"]  # run-level: losses, not cells
    compared = compared if len(compared) >= 2 else []
    cv = cv if compared else ()                          # cross-validation compares kinds: none without two
    if compared:
        progress.note(f"  fitting and comparing {', '.join(compared)}: LOO" + (f" and {', '.join(cv)} refits" if cv else "")
                      + f"; {min(args.workers, len(models))} process(es)")
    scoring = catalog.Scoring(compared=tuple(compared), cv=cv, max_refits=args.max_refits, ci_prob=ci_prob,
                              targets=tuple(targets))
    fitted = catalog.fit_and_score(models, quantities, best, config, options, runs=loaded.runs, source=loaded.source,
                                   run_options=catalog.RunOptions(slopes=args.slopes, law_form=args.law_form,
                                                                          approx=args.approx, progress=True),
                                   scoring=scoring, workers=args.workers, on_fit=announce, cache=args.cache)
    fits = fitted.fits
    every = [f for fq in fits.values() for f in fq.values()]
    predictions = pd.concat([f.predict([t[0] for t in targets], [t[1] for t in targets], ci_prob=ci_prob)
                             .assign(interval=f.spec.interval) for f in every], ignore_index=True)
    exponents = pd.concat([f.coefficients(ci_prob=ci_prob) for f in every], ignore_index=True)
    comparisons = {q: aggregate({m: fits[q][m] for m in compared}, best.quantity(q),
                                {m: fitted.scores[q][m] for m in compared}) for q in quantities} if compared else {}
    stacked = [c.stacked.predict([t[0] for t in targets], [t[1] for t in targets], ci_prob=ci_prob)
               .assign(interval=f"stacked mixture ({c.stacked.basis} weights: {c.stacked.describe()})")
               for c in comparisons.values() if c.stacked is not None]
    predictions = pd.concat([predictions, *stacked], ignore_index=True)
    recommended = {q: c.recommended for q, c in comparisons.items()}
    predictions["recommended"] = [recommended.get(q) == m for q, m in zip(predictions["quantity"], predictions["model"])]
    sensitive = pd.concat(fitted.sensitivity, ignore_index=True) if fitted.sensitivity else None
    approximate = {name for name, sf in fitted.run_level.items() if sf.approximate}
    diagnostics = {f"{m}/{q}": f.diagnostics.as_dict() for q, fq in fits.items() for m, f in fq.items()
                   if f.diagnostics and m not in approximate}   # an approximation has no MCMC diagnostics

    progress.note("  writing tables, posteriors" + (" and figures" if args.plots else ""))
    with command.publish({
        "data": {"source": loaded.source, "sha256": loaded.sha256, "runs": len(loaded.runs), "best_runs": len(best.frame),
                 "lr_grid": str(loaded.lr_grid) if loaded.lr_grid else "per-cell sweep",
                 "batch_grid": str(loaded.batch_grid) if loaded.batch_grid else "per-cell sweep",
                 "dropped": best.dropped_text(),
                 "sigma_sel": best.sigma_sel or {q: best.quantity(q).sigma_sel for q in quantities}},
        "models": models, "quantities": quantities, "targets": targets, "ci_prob": ci_prob,
        "seed": config.seed, "sampler": config.as_dict(), "fit_cache": str(args.cache) if args.cache else None,
        "model_options": options.as_dict(),
        "run_level": {name: {"method": f.method, **({"law_form": args.law_form, "laws": f.laws()}
                                                   if hasattr(f, "laws") else {})}
                      for name, f in fitted.run_level.items()},
        "cross_validation": list(cv), "recommended": {q: {"model": c.recommended, "why": c.reason}
                                                       for q, c in comparisons.items()},
        "predict_runs": {"source": str(args.predict_runs), "runs": len(planned)} if planned is not None else None,
        "diagnostics": diagnostics,
    }) as stage:
        from bayes_scaling.io import write_csv
        from bayes_scaling.report.jobs import run_jobs

        write_csv(stage / "best_runs.csv", best.frame)
        write_csv(stage / "predictions.csv", predictions[PREDICTION_COLUMNS])
        write_csv(stage / "exponents.csv", exponents)
        if sensitive is not None:
            write_csv(stage / "sensitivity.csv", sensitive)
        if comparisons:
            write_csv(stage / "compare.csv", pd.concat([c.table for c in comparisons.values()], ignore_index=True))
            held = [c.held_out for c in comparisons.values() if not c.held_out.empty]
            if held:
                write_csv(stage / "held_out.csv", pd.concat(held, ignore_index=True))
        # the posterior files and the figures are independent writes: --workers processes share them
        jobs = [(f.to_netcdf, (stage / "posterior" / f"{m}_{q}.nc",), {})
                for q, fq in fits.items() for m, f in fq.items()]
        for name, run_fit in fitted.run_level.items():
            jobs.append((run_fit.to_netcdf, (stage / "posterior" / f"{name}.nc",), {}))
            extra = {"predict_runs": planned} if kinds[name].predicts_loss else {}
            run_fit.write_artifacts(stage, ci_prob=ci_prob, **extra)
        if args.plots:
            from bayes_scaling.report.figures import optimum as optimum_figures
            from bayes_scaling.report.figures.surface import write_figures

            for run_fit in fitted.run_level.values():
                write_figures(run_fit, stage / "plots")
            jobs += optimum_figures.figure_jobs(stage / "plots", fits, best, targets, ci_prob=ci_prob,
                                                main=recommended)
        run_jobs(jobs, args.workers)

    from bayes_scaling.report import text

    interval = "90% interval" if ci_prob == 0.9 else f"{ci_prob:.0%} interval"
    print(f"\nexponents (median [{interval}]):")
    print(text.exponents_text(exponents))
    if comparisons:
        print("\ncomparison (elpd of the observed grid cells; higher is better):")
        print(text.compare_text(pd.concat([c.table for c in comparisons.values()], ignore_index=True)))
        for q, c in comparisons.items():
            print(f"  recommended for {q} at a new N: {c.recommended} — {c.reason}")
    print("\npredicted optimum:")
    smooth = frozenset(m for m in models if catalog.kinds()[m].two_optima)
    print(text.predictions_text(predictions, smooth))
    if smooth:
        print(f"  ({', '.join(sorted(smooth))}: the law's smooth optimum; the best grid run a sweep would find "
              "is wider: best_run(N, D, B=..., lr=...) in the library)")
    for name, run_fit in fitted.run_level.items():
        if hasattr(run_fit, "laws") and args.law_form == "auto":
            print(f"  {name}'s law form per optimum, by leave-one-N-out stacking: " + "; ".join(
                f"{q} {v['law']} ({', '.join(f'{k} {w:.2f}' for k, w in v['weights'].items())})"
                for q, v in run_fit.laws().items()))
    if sensitive is not None:
        print("\nprior sensitivity (power-scaling; contraction = 1 − posterior/prior variance):")
        print(text.sensitivity_text(sensitive))
    if diagnostics:
        print("\nsampler diagnostics:")
        print(text.diagnostics_text(diagnostics))
    failed = [k for k, d in diagnostics.items() if not d["ok"]]
    if failed:
        print(f"\nWARNING: {len(failed)} fit(s) failed convergence checks ({', '.join(failed)}): "
              "treat their intervals with suspicion; try --draws/--tune larger or --target-accept 0.995",
              file=sys.stderr)
    if planned is not None:
        print(f"\npredicted the loss of {len(planned)} planned run(s) from "
              f"{', '.join(catalog.loss_predicting(models))}: run_predictions.csv")
    print(f"\nwrote {command.out}/  ({command.wall_s:.1f} s)")
    return common.strict_exit(failed, args.strict)


def _methods(models: list[str], kinds: dict, config: SamplerConfig, approx: str | None) -> str:
    """How the chosen kinds are fitted, as the header says it (no NUTS settings for an approximation)."""
    parts = []
    nuts = [m for m in models if kinds[m].bayesian and not (kinds[m].level == "runs" and approx)]
    if nuts:
        parts.append(f"sampler {config.sampler} ({config.chains}x{config.draws} draws)")
    if any(kinds[m].level == "runs" for m in models) and approx:
        parts.append(f"surface: {approx.upper()} (approximate)")
    if not parts:
        parts.append("least squares only")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.law and args.predict_runs:
        parser.error("--predict-runs: a loss law predicts L(N, D) only; predict runs with --models surface")
    if args.law:
        from bayes_scaling.cli.law import run_law

        return guarded(lambda: run_law(args, argv))
    return guarded(lambda: run(args, argv))
