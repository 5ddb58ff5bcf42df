"""``python -m bayes_scaling.fit`` — posteriors over the laws of η*(N, D) and B*(N, D).

Reads a run table (a bundled dataset or your CSV/Parquet), keeps the best run of each
(N, D) cell with the grid cell it won in, fits each model to each optimum, compares
them by LOO, predicts the optimum at the target (N, D) with credible intervals and
writes everything (CSV tables, netCDF posteriors, plots, a manifest) to --out.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from bayes_scaling import report
from bayes_scaling.api import ALL_MODELS, Fitter, OptimumFit
from bayes_scaling.cli import ArgumentParser, guarded
from bayes_scaling.compare import MAX_REFITS, compare
from bayes_scaling.datasets import DATASETS, load_runs
from bayes_scaling.errors import InputError
from bayes_scaling.io import staged_dir, write_csv, write_json
from bayes_scaling.runtable import QUANTITIES, best_runs
from bayes_scaling.sampling import SAMPLERS, SamplerConfig

LAWS = ("chinchilla", "isoflop", "envelope", "kaplan")
CLI_MODELS = ALL_MODELS + ("surface",)
DEFAULT_TARGET = "4e9,1e11"

EPILOG = f"""\
models (--models, comma-separated; default: ols,pooled,quantized,hierarchical):
  ols           log q* = β0 + β1 log N + β2 log D by least squares on the best grid
                values; interval from 10,000 row-bootstrap refits (the usual baseline)
  pooled        the same law, Bayesian, Normal noise: grid values taken as exact
  quantized     the best value only says the latent optimum lies in its grid cell
                (half a grid step either side in log space; edge cells open-ended):
                interval-censored likelihood Φ(hi) − Φ(lo)
  hierarchical  quantized + a slope on log D per model size, drawn from a population
                (non-centred); a new N draws its slope from it, so extrapolation
                carries the spread between sizes
  surface       every run, not just the best: per (N, D) cell the loss is a bowl in
                (log η, log B) around the cell's latent optimum, and the optima follow
                the law above (--surface-slopes pooled|per_n); needs full sweeps
                (steplaw-dense, steplaw-moe, the trainer's tables); --approx advi for a
                fast, clearly labelled approximation
  (--per-n-intercepts adds per-N intercept offsets to the hierarchical model)

data (--data): a bundled name ({", ".join(DATASETS)}) or a CSV/Parquet run table with
  columns run_id, N, D, B, lr, loss [, status, seed, seq_len, ...]: one row per run.
  Full sweeps carry their own grid; a best-runs-only table needs --lr-grid/--batch-grid.

outputs (--out DIR): predictions.csv, exponents.csv, compare.csv, best_runs.csv,
  posterior/<model>_<quantity>.nc, manifest.json, plots/ (unless --no-plots).

loss laws: --law {"|".join(LAWS)} fits L(N, D) instead (see README).

examples:
  python -m bayes_scaling.fit                                   # blog-partII, all models
  python -m bayes_scaling.fit --data steplaw-dense --target 4e9,1e11 --target 1e10,2e11
  python -m bayes_scaling.fit --data runs.csv --lr-grid 2^-12:2^-6:0.5 --batch-grid 2^16:2^20:1
  python -m bayes_scaling.fit --models quantized,hierarchical --draws 2000 --sampler pymc
"""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m bayes_scaling.fit",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="NAME|PATH",
                   help="bundled dataset name or run-table path (default: blog-partII; for --law, the law's dataset)")
    g.add_argument("--lr-grid", metavar="SPEC", help="declared lr grid, e.g. 2^-12:2^-8:1 (base^lo:base^hi:log-step) or 1e-3,2e-3,4e-3")
    g.add_argument("--batch-grid", metavar="SPEC", help="declared batch-size grid in tokens, e.g. 2^16:2^19:1")
    g = p.add_argument_group("models")
    g.add_argument("--models", default="ols,pooled,quantized,hierarchical", metavar="LIST",
                   help=f"comma-separated subset of {','.join(CLI_MODELS)}")
    g.add_argument("--quantity", choices=("both",) + tuple(QUANTITIES), default="both",
                   help="which optimum to fit (default both)")
    g.add_argument("--per-n-intercepts", action="store_true", help="hierarchical model: add per-N intercept offsets")
    g.add_argument("--surface-slopes", choices=("pooled", "per_n"), default="pooled",
                   help="surface model: one slope on log D, or per-N slopes (default pooled)")
    g.add_argument("--approx", choices=("advi",), help="surface model: fast approximate posterior instead of NUTS")
    g.add_argument("--law", choices=LAWS, help="fit a loss law L(N, D) instead of the optima")
    g = p.add_argument_group("prediction")
    g.add_argument("--target", action="append", metavar="N,D",
                   help=f"(N params, D tokens) to predict at; repeatable (default {DEFAULT_TARGET})")
    g.add_argument("--ci-prob", type=float, default=0.9, help="equal-tailed credible interval mass (default 0.9)")
    g = p.add_argument_group("sampler")
    g.add_argument("--sampler", choices=SAMPLERS, default="nutpie", help="NUTS implementation (default nutpie, ~10x faster)")
    g.add_argument("--draws", type=int, default=1000, help="posterior draws per chain (default 1000)")
    g.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default 1000)")
    g.add_argument("--chains", type=int, default=4, help="chains (default 4; run 2 at a time)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--target-accept", type=float, default=0.99, help="NUTS target acceptance (default 0.99: small steps through the per-N funnel)")
    g.add_argument("--max-refits", type=int, default=MAX_REFITS,
                   help=f"exact LOO refits per model for points with Pareto k > 0.7 (default {MAX_REFITS})")
    g.add_argument("--strict", action="store_true", help="exit 3 if any fit fails its convergence diagnostics")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, help="output directory (default runs/fit-<data>-<time>/)")
    g.add_argument("--no-plots", dest="plots", action="store_false", help="skip the plots/ directory")
    return p


def parse_targets(specs: list[str] | None) -> list[tuple[float, float]]:
    targets = []
    for spec in specs or [DEFAULT_TARGET]:
        try:
            n, d = (float(x) for x in spec.split(","))
        except ValueError:
            raise InputError(f"--target {spec!r}: expected N,D such as 4e9,1e11") from None
        if not (0 < n < float("inf") and 0 < d < float("inf")):
            raise InputError(f"--target {spec!r}: N and D must be positive and finite")
        targets.append((n, d))
    return targets


def check_args(args: argparse.Namespace) -> list[str]:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in CLI_MODELS]
    if unknown or not models:
        raise InputError(f"--models: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(CLI_MODELS)}")
    if not 0 < args.ci_prob < 1:
        raise InputError(f"--ci-prob {args.ci_prob}: must be between 0 and 1")
    for name in ("draws", "tune", "chains"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1")
    if not 0.5 <= args.target_accept < 1:
        raise InputError(f"--target-accept {args.target_accept}: must be in [0.5, 1)")
    return models


def run(args: argparse.Namespace, argv: list[str]) -> int:
    t_start = time.perf_counter()
    models = check_args(args)
    targets = parse_targets(args.target)
    data_name = args.data or "blog-partII"
    loaded = load_runs(data_name, lr_grid=args.lr_grid, batch_grid=args.batch_grid)
    best = best_runs(loaded.runs, source=loaded.source, lr_grid=loaded.lr_grid, batch_grid=loaded.batch_grid)
    quantities = list(QUANTITIES) if args.quantity == "both" else [args.quantity]
    out = args.out or Path("runs") / f"fit-{Path(data_name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = SamplerConfig(sampler=args.sampler, draws=args.draws, tune=args.tune, chains=args.chains,
                           seed=args.seed, target_accept=args.target_accept)
    print(f"bayes-scaling: {loaded.description}")
    print(f"  {len(loaded.runs)} runs -> {len(best.frame)} best runs in {best.frame['N'].nunique()} model sizes; "
          f"models {', '.join(models)}; sampler {config.sampler} ({config.chains}x{config.draws} draws)")

    fitter = Fitter(config, per_n_intercepts=args.per_n_intercepts)
    fits: dict[str, dict[str, OptimumFit]] = {}
    for q in quantities:
        data = best.quantity(q)
        fits[q] = {}
        for m in models:
            if m == "surface":
                continue
            fit = fitter.fit(m, data)
            fits[q][m] = fit
            extra = f"  {fit.diagnostics.describe()}" if fit.diagnostics else ""
            print(f"  fitted {m:<13} {q:<10} {fit.wall_s:6.1f} s{extra}", flush=True)
    surface = None
    if "surface" in models:
        from bayes_scaling.surface import fit_surface

        surface = fit_surface(loaded.runs, config, slopes=args.surface_slopes, approx=args.approx, source=loaded.source)
        for q, fit in surface.as_optimum_fits().items():
            if q in fits:
                fits[q]["surface"] = fit
        print(f"  fitted surface       both       {surface.wall_s:6.1f} s  {surface.method}; "
              f"{surface.diagnostics.describe()}", flush=True)

    predictions = pd.concat([f.predict([t[0] for t in targets], [t[1] for t in targets], ci_prob=args.ci_prob)
                             for fq in fits.values() for f in fq.values()], ignore_index=True)
    exponents = pd.concat([f.coefficients(ci_prob=args.ci_prob) for fq in fits.values() for f in fq.values()],
                          ignore_index=True)
    bayes = [m for m in models if m not in ("ols", "surface")]  # surface scores runs' losses, not cells
    comparison = None
    if len(bayes) >= 2:
        comparison = pd.concat([compare({m: fits[q][m] for m in bayes}, best.quantity(q), fitter, args.max_refits)
                                for q in quantities], ignore_index=True)
    diagnostics = {f"{m}/{q}": f.diagnostics.as_dict() for q, fq in fits.items() for m, f in fq.items() if f.diagnostics}
    if surface is not None and surface.method.startswith("ADVI"):
        for q in quantities:  # an approximation has no MCMC diagnostics to pass or fail
            diagnostics.pop(f"surface/{q}", None)

    with staged_dir(out, owned=ARTIFACTS) as stage:
        write_csv(stage / "best_runs.csv", best.frame)
        write_csv(stage / "predictions.csv", predictions[["model", "quantity", "N", "D", "median", "mean", "lo", "hi", "ci_prob"]])
        write_csv(stage / "exponents.csv", exponents)
        if comparison is not None:
            write_csv(stage / "compare.csv", comparison)
        for q, fq in fits.items():
            for m, f in fq.items():
                if f.idata is not None:
                    f.to_netcdf(stage / "posterior" / f"{m}_{q}.nc")
        if surface is not None:
            write_csv(stage / "surface_cells.csv", surface.cell_optima(ci_prob=args.ci_prob))
        if args.plots:
            from bayes_scaling import plots
            plots.write_all(stage / "plots", fits, best, targets, ci_prob=args.ci_prob)
            if surface is not None:
                surface.plot_bowls(stage / "plots" / "surface_bowls.png")
        write_json(stage / "manifest.json", {
            "command": " ".join(["python -m bayes_scaling.fit", *argv]),
            "data": {"source": loaded.source, "sha256": loaded.sha256, "runs": len(loaded.runs), "best_runs": len(best.frame),
                     "lr_grid": str(loaded.lr_grid) if loaded.lr_grid else "per-cell sweep",
                     "batch_grid": str(loaded.batch_grid) if loaded.batch_grid else "per-cell sweep"},
            "models": models, "quantities": quantities, "targets": targets, "ci_prob": args.ci_prob,
            "sampler": vars(config) | {"per_n_intercepts": args.per_n_intercepts},
            "surface": {"method": surface.method, "slopes": surface.slopes} if surface is not None else None,
            "diagnostics": diagnostics,
            "wall_time_s": round(time.perf_counter() - t_start, 2),
            "versions": _versions(),
        })

    print("\nexponents (median [90% interval]):" if args.ci_prob == 0.9 else f"\nexponents (median [{args.ci_prob:.0%} interval]):")
    print(report.exponents_text(exponents))
    if comparison is not None:
        print("\nLOO comparison (elpd of the observed grid cells; higher is better):")
        print(report.compare_text(comparison))
    print("\npredicted optimum:")
    print(report.predictions_text(predictions))
    if diagnostics:
        print("\nsampler diagnostics:")
        print(report.diagnostics_text(diagnostics))
    failed = [k for k, d in diagnostics.items() if not d["ok"]]
    if failed:
        print(f"\nWARNING: {len(failed)} fit(s) failed convergence checks ({', '.join(failed)}): "
              "treat their intervals with suspicion; try --draws/--tune larger or --target-accept 0.99",
              file=sys.stderr)
    print(f"\nwrote {out}/  ({time.perf_counter() - t_start:.1f} s)")
    return 3 if failed and args.strict else 0


#: What a fit run owns in its --out directory: replaced as a set, so no stale artifact of
#: an earlier run (say compare.csv from a run with more models) survives beside the new manifest.
ARTIFACTS = ("best_runs.csv", "predictions.csv", "exponents.csv", "compare.csv", "surface_cells.csv",
             "manifest.json", "posterior", "plots")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("bayes-scaling", "pymc", "pytensor", "arviz", "nutpie", "numpy", "pandas", "xarray"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.law:
        from bayes_scaling.loss_laws import run_law
        return guarded(lambda: run_law(args))
    return guarded(lambda: run(args, argv))


if __name__ == "__main__":
    sys.exit(main())
