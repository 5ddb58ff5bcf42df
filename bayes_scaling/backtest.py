"""Backtests: hold cells out, fit every model on the rest, score the held-out optima.

    python -m bayes_scaling.backtest --data steplaw-dense --out results/backtest

Splits (``--splits``):

* ``largest-n``   hold out every cell of the largest model size N;
* ``largest-d``   hold out, for each N with ≥ 2 cells, its largest-D cell;
* ``each-n``      leave-one-N-out: one fold per model size.

For each model (ols, pooled, quantized, hierarchical on the best runs; surface on every
run) and each held-out cell and optimum q ∈ {η*, B*}:

    log_ratio = log(q̂ / q_meas)     q̂ = posterior-predictive median, q_meas = the cell's best run
    covered   = q_meas ∈ 90 % predictive interval          (the rule ranked on)
    covered_cell = the interval overlaps q_meas's grid cell (the looser rule, also reported)
    regret    = L̃(η̂, B̂) − min loss,  L̃ = the cell's measured surface, linearly interpolated in
                (log η, log B) over its ok runs (nearest run outside their hull: ``regret_nearest``)

The published StepLaw formula (η* = 1.79·N^-0.713·D^0.307, B* = 0.58·D^0.571) is scored
as a reference row; on StepLaw's own table it is *in-sample* (it was fitted on every cell).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

from bayes_scaling.api import ALL_MODELS, Fitter
from bayes_scaling.datasets import DATASETS, load_runs
from bayes_scaling.errors import InputError
from bayes_scaling.cli import ArgumentParser
from bayes_scaling.io import atomic_path, write_csv
from bayes_scaling.optimum_models import Centers
from bayes_scaling.runtable import QUANTITIES, BestRuns, best_runs
from bayes_scaling.sampling import SamplerConfig
from bayes_scaling.surface import SurfaceFitter
from bayes_scaling.surface_data import WINDOW, SurfaceData, surface_data

SPLITS = ("largest-n", "largest-d", "each-n")
MODELS = ALL_MODELS + ("surface",)
REFERENCE = "steplaw-formula"


def steplaw_formula(N: np.ndarray, D: np.ndarray) -> dict[str, np.ndarray]:
    """StepLaw's published optima (Li et al. 2025): η* = 1.79·N^-0.713·D^0.307, B* = 0.58·D^0.571 tokens."""
    return {"lr": 1.79 * N**-0.713 * D**0.307, "batch_size": 0.58 * D**0.571}


def folds(cells: pd.DataFrame, split: str) -> list[tuple[str, np.ndarray]]:
    """(fold name, held-out mask over cells) of one split."""
    N = cells["N"].to_numpy()
    if split == "largest-n":
        return [(f"N={N.max():.3g}", N == N.max())]
    if split == "largest-d":
        test = np.zeros(len(cells), dtype=bool)
        for n in np.unique(N):
            idx = np.flatnonzero(N == n)
            if idx.size >= 2:
                test[idx[np.argmax(cells["D"].to_numpy()[idx])]] = True
        return [("largest D per N", test)] if test.any() else []
    if split == "each-n":
        return [(f"N={n:.3g}", N == n) for n in np.unique(N)]
    raise ValueError(f"unknown split {split!r}")


def measured_surface(runs: pd.DataFrame):
    """(log η, log B) → loss over a cell's ok runs: linear inside their hull, nearest outside."""
    ok = runs[runs["status"] == "ok"]
    pts = np.column_stack([np.log(ok["lr"]), np.log(ok["B"])])
    lin = LinearNDInterpolator(pts, ok["loss"].to_numpy())
    near = NearestNDInterpolator(pts, ok["loss"].to_numpy())

    def read(log_lr: float, log_b: float) -> tuple[float, bool]:
        v = float(lin(log_lr, log_b))
        return (v, False) if np.isfinite(v) else (float(near(log_lr, log_b)), True)

    return read


def score(cells: pd.DataFrame, test: np.ndarray, runs: pd.DataFrame, model: str,
          preds: dict[str, pd.DataFrame], meta: dict) -> list[dict]:
    """Rows of backtest.csv for one model on the held-out cells of one fold."""
    rows = []
    for i, k in enumerate(np.flatnonzero(test)):
        cell = cells.iloc[k]
        in_cell = runs[(runs["N"] == cell["N"]) & (runs["D"] == cell["D"])]
        p_lr, p_b = preds["lr"].iloc[i], preds["batch_size"].iloc[i]
        loss, nearest = measured_surface(in_cell)(np.log(p_lr["median"]), np.log(p_b["median"]))
        for q, p in preds.items():
            col = QUANTITIES[q]
            meas = float(cell[col])
            lo, hi = float(p.iloc[i]["lo"]), float(p.iloc[i]["hi"])
            has_ci = np.isfinite(lo) and np.isfinite(hi)
            rows.append({
                **meta, "model": model, "N": cell["N"], "D": cell["D"], "quantity": q,
                "measured": meas, "median": float(p.iloc[i]["median"]), "lo": lo, "hi": hi,
                "log_ratio": float(np.log(p.iloc[i]["median"] / meas)),
                "covered": (lo <= meas <= hi) if has_ci else np.nan,
                "covered_cell": (np.log(lo) <= cell[f"{col}_hi"] and np.log(hi) >= cell[f"{col}_lo"]) if has_ci else np.nan,
                "width_log": float(np.log(hi / lo)) if has_ci else np.nan,
                "regret": loss - float(cell["loss"]), "regret_nearest": nearest,
            })
    return rows


def run_backtest(runs: pd.DataFrame, *, models: tuple[str, ...] = MODELS, splits: tuple[str, ...] = SPLITS,
                 config: SamplerConfig = SamplerConfig(), ci_prob: float = 0.9, window: float = WINDOW,
                 slopes: str = "pooled", source: str = "<table>", log=print) -> pd.DataFrame:
    """Every (split, fold, model, held-out cell, optimum) score of a full-sweep run table."""
    sd: SurfaceData = surface_data(runs, window=window, source=source)
    best = best_runs(runs, source=source).frame.sort_values(["N", "D"], ignore_index=True)
    runs = sd.runs
    fitter = Fitter(config, n_boot=2000)   # compiles once per model kind and set of N levels
    surface_fitter = SurfaceFitter(config)
    rows = []
    for split in splits:
        for fold, test in folds(best, split):
            train = ~test
            if best.loc[train, "N"].nunique() < 2:
                log(f"  {split} / {fold}: skipped (fewer than two model sizes left to fit)")
                continue
            target_N, target_D = best.loc[test, "N"].to_numpy(), best.loc[test, "D"].to_numpy()
            meta = {"split": split, "fold": fold, "n_train_cells": int(train.sum())}
            ref = steplaw_formula(target_N, target_D)
            preds = {q: pd.DataFrame({"median": v, "lo": np.nan, "hi": np.nan}) for q, v in ref.items()}
            rows += score(best, test, runs, REFERENCE, preds, {**meta, "fit_ok": True, "wall_s": 0.0})
            for model in models:
                t0 = time.perf_counter()
                if model == "surface":
                    sf = surface_fitter.fit(sd.subset(train), slopes=slopes)
                    fits = sf.as_optimum_fits()
                else:
                    sub = _best_subset(best, train, source)
                    fits = {q: fitter.fit(model, sub.quantity(q), Centers.of(sub.quantity(q))) for q in QUANTITIES}
                diag = [f.diagnostics for f in fits.values() if f.diagnostics is not None]
                ok = all(d.ok for d in diag)
                preds = {q: f.predict(target_N, target_D, ci_prob=ci_prob) for q, f in fits.items()}
                wall = time.perf_counter() - t0
                rows += score(best, test, runs, model, preds, {**meta, "fit_ok": ok, "wall_s": wall})
                log(f"  {split} / {fold}: {model:<12} {wall:6.1f} s"
                    + ("" if ok else "  [diagnostics: " + "; ".join(dict.fromkeys(p for d in diag for p in d.problems())) + "]"))
    out = pd.DataFrame(rows)
    out.insert(0, "ci_prob", ci_prob)
    return out


def _best_subset(best: pd.DataFrame, train: np.ndarray, source: str) -> BestRuns:
    """The best-runs table restricted to the training cells."""
    return BestRuns(frame=best[train].reset_index(drop=True), source=source)


def ranking(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model: mean |log ratio|, coverage and log-width of each optimum, mean regret."""
    g = table.groupby(["model", "quantity"])
    per_q = pd.DataFrame({"abs_log_ratio": g["log_ratio"].apply(lambda s: s.abs().mean()),
                          "bias": g["log_ratio"].mean(),
                          "coverage": g["covered"].mean(), "width_log": g["width_log"].mean()}).unstack("quantity")
    per_q.columns = [f"{m}_{'lr' if q == 'lr' else 'B'}" for m, q in per_q.columns]
    regret = table[table["quantity"] == "lr"].groupby("model")
    per_q["regret_mean"] = regret["regret"].mean()
    per_q["regret_max"] = regret["regret"].max()
    per_q["n_cells"] = regret.size()
    per_q["fits_ok"] = table.groupby("model")["fit_ok"].mean()
    return per_q.sort_values("regret_mean").reset_index()


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Held-out log ratio (with 90 % interval) per model and optimum, and the loss regret."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(ranking(table)["model"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(models) * max(1, table["split"].nunique()) + 2.5))
    for ax, q in zip(axes[:2], ("lr", "batch_size")):
        sub = table[table["quantity"] == q]
        for y, m in enumerate(models):
            s = sub[sub["model"] == m]
            jitter = y + np.linspace(-0.3, 0.3, len(s)) if len(s) > 1 else np.full(len(s), y)
            ax.errorbar(s["log_ratio"], jitter,
                        xerr=[s["log_ratio"] - np.log(s["lo"] / s["measured"]), np.log(s["hi"] / s["measured"]) - s["log_ratio"]],
                        fmt="o", ms=3, lw=0.8, capsize=0)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(models)), models)
        ax.set_xlabel(f"log(predicted / measured) {'η*' if q == 'lr' else 'B*'}  (bars: 90 % interval)")
    sub = table[table["quantity"] == "lr"]
    axes[2].boxplot([sub[sub["model"] == m]["regret"].to_numpy() for m in models], orientation="horizontal",
                    tick_labels=models)
    axes[2].set_xlabel("loss regret at the predicted (η, B) (nats)")
    fig.suptitle("backtest on held-out cells: " + ", ".join(sorted(table["split"].unique())))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m bayes_scaling.backtest",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python -m bayes_scaling.backtest --data steplaw-dense --models ols,hierarchical,surface "
               "--splits largest-n --draws 500 --out results/bt",
    )
    p.add_argument("--data", default="steplaw-dense",
                   help=f"bundled full sweep ({', '.join(d for d in DATASETS if d != 'blog-partII')}) or a run-table CSV/Parquet "
                        "with several runs per (N, D) cell (default: steplaw-dense)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)} (default: all)")
    p.add_argument("--splits", default=",".join(SPLITS), help=f"comma-separated subset of {', '.join(SPLITS)} (default: all)")
    p.add_argument("--out", default="backtest", help="output folder for backtest.csv, ranking.csv, backtest.png")
    p.add_argument("--ci-prob", type=float, default=0.9, help="predictive interval probability (default 0.9)")
    p.add_argument("--window", type=float, default=WINDOW, help=f"surface model: nats above a cell's best loss kept exact (default {WINDOW})")
    p.add_argument("--slopes", choices=("pooled", "per_n"), default="pooled", help="surface model: D-slope pooled or per N (default pooled)")
    p.add_argument("--draws", type=int, default=1000, help="posterior draws per chain (default 1000)")
    p.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default 1000)")
    p.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--target-accept", type=float, default=0.99,
                   help="NUTS target acceptance (default 0.99, as in bayes_scaling.fit: small steps through the per-N funnel)")
    return p


def _parse_list(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise InputError(f"{flag}: {', '.join(bad) or 'empty'} not in {', '.join(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        models = _parse_list(args.models, MODELS, "--models")
        splits = _parse_list(args.splits, SPLITS, "--splits")
        if not 0 < args.ci_prob < 1:
            raise InputError(f"--ci-prob must be in (0, 1), got {args.ci_prob:g}")
        if min(args.draws, args.tune, args.chains) < 1:
            raise InputError("--draws, --tune and --chains must be >= 1")
        if not 0.5 <= args.target_accept < 1:
            raise InputError(f"--target-accept {args.target_accept}: must be in [0.5, 1)")
        loaded = load_runs(args.data)
        surface_data(loaded.runs, window=args.window, source=loaded.source)   # fail fast on best-runs-only tables
        config = SamplerConfig(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                               target_accept=args.target_accept)
        print(f"backtest of {', '.join(models)} on {loaded.source} ({len(loaded.runs)} runs), splits: {', '.join(splits)}")
        table = run_backtest(loaded.runs, models=models, splits=splits, config=config, ci_prob=args.ci_prob,
                             window=args.window, slopes=args.slopes, source=loaded.source)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    if table.empty:
        print("error: no fold left two model sizes to fit", file=sys.stderr)
        return 2
    out = Path(args.out)
    rank = ranking(table)
    write_csv(out / "backtest.csv", table)
    write_csv(out / "ranking.csv", rank)
    plot(table, out / "backtest.png")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(f"\nranking (by mean loss regret; coverage = measured optimum inside the {args.ci_prob:.0%} interval):")
        print(rank.to_string(index=False))
    print(f"\nwrote {out / 'backtest.csv'}, {out / 'ranking.csv'}, {out / 'backtest.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
