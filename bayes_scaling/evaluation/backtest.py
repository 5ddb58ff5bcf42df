"""Backtests: hold cells out, fit every model on the rest, score the held-out optima.

    python -m bayes_scaling.backtest --data steplaw-dense --out results/backtest

Splits (``--splits``):

* ``largest-n``   hold out every cell of the largest model size N;
* ``largest-d``   hold out, for each N with ≥ 2 cells, its largest-D cell;
* ``each-n``      leave-one-N-out: one fold per model size.

For each model kind (``catalog``: the best-run kinds on the best runs, surface on every run)
and each held-out cell and optimum q ∈ {η*, B*}:

    log_ratio = log(q̂ / q_meas)     q̂ = posterior-predictive median, q_meas = the cell's best run
    covered   = q_meas ∈ 90 % predictive interval          (the rule ranked on)
    covered_cell = the interval overlaps q_meas's grid cell (the looser rule, also reported)
    regret    = L̃(η̂, B̂) − min loss,  L̃ = the cell's measured surface, linearly interpolated in
                (log η, log B) over its ok runs (nearest run outside their hull: ``regret_nearest``)

The published StepLaw formula (η* = 1.79·N^-0.713·D^0.307, B* = 0.58·D^0.571) is scored
as a reference row; on StepLaw's own table it is *in-sample* (it was fitted on every cell).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

from bayes_scaling import catalog
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.errors import InputError
from bayes_scaling.inputs.runtable import QUANTITIES, BestRuns, best_runs, check_design
from bayes_scaling.io import write_csv, write_json
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.progress import steps
from bayes_scaling.surface.data import WINDOW, SurfaceData, surface_data

SPLITS = ("largest-n", "largest-d", "each-n")
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


@dataclass(frozen=True)
class Fold:
    """One held-out set of cells of one split."""

    split: str
    name: str
    test: np.ndarray


def plan_folds(best: pd.DataFrame, splits: tuple[str, ...], source: str, log: Callable[[str], None]) -> list[Fold]:
    """Every fold of ``splits`` whose training cells can identify a law (others are named and skipped)."""
    out = []
    for split in splits:
        for name, test in folds(best, split):
            train = ~test
            if best.loc[train, "N"].nunique() < 2:
                log(f"  {split} / {name}: skipped (fewer than two model sizes left to fit)")
                continue
            try:
                check_design(best.loc[train], source)
            except InputError as err:
                log(f"  {split} / {name}: skipped (the training cells cannot identify the law: {err})")
                continue
            out.append(Fold(split, name, test))
    return out


#: Compiled models kept per worker process across its folds (keyed by sampler settings).
_FITTERS: dict = {}


def run_fold(fold: Fold, best: pd.DataFrame, runs: pd.DataFrame, models: list[str], config: SamplerConfig,
             ci_prob: float, window: float, slopes: str, source: str) -> list[dict]:
    """Fit every model on the fold's training cells and score its held-out cells (rows of backtest.csv)."""
    fitter, caches = _FITTERS.setdefault(config, (Fitter(config, n_boot=2000), {}))
    test, train = fold.test, ~fold.test
    target_N, target_D = best.loc[test, "N"].to_numpy(), best.loc[test, "D"].to_numpy()
    meta = {"split": fold.split, "fold": fold.name, "n_train_cells": int(train.sum())}
    ref = steplaw_formula(target_N, target_D)
    preds = {q: pd.DataFrame({"median": v, "lo": np.nan, "hi": np.nan}) for q, v in ref.items()}
    rows = score(best, test, runs, REFERENCE, preds, {**meta, "fit_ok": True, "problems": "", "wall_s": 0.0})
    sub = _best_subset(best, train, source)
    train_keys = pd.MultiIndex.from_frame(best.loc[train, ["N", "D"]])
    train_runs = runs[pd.MultiIndex.from_frame(runs[["N", "D"]]).isin(train_keys)].reset_index(drop=True)
    for model in models:
        t0 = time.perf_counter()
        fitted = catalog.fit_all([model], list(QUANTITIES), sub, fitter, runs=train_runs, caches=caches,
                                 options=catalog.RunOptions(slopes=slopes, window=window), source=source)
        fits = {q: fitted.fits[q][model] for q in QUANTITIES}
        diag = [f.diagnostics for f in fits.values() if f.diagnostics is not None]
        problems = "; ".join(dict.fromkeys(p for d in diag for p in d.problems()))
        preds = {q: f.predict(target_N, target_D, ci_prob=ci_prob) for q, f in fits.items()}
        rows += score(best, test, runs, model, preds, {**meta, "fit_ok": not problems, "problems": problems,
                                                       "wall_s": time.perf_counter() - t0})
    return rows


def run_backtest(runs: pd.DataFrame, *, models: list[str] | None = None, splits: tuple[str, ...] = SPLITS,
                 config: SamplerConfig = SamplerConfig(), ci_prob: float = 0.9, window: float = WINDOW,
                 slopes: str = "pooled", source: str = "<table>", log: Callable[[str], None] = print,
                 workers: int = 1, executor: str = "local", partial: Path | None = None,
                 slurm: dict | None = None) -> pd.DataFrame:
    """Every (split, fold, model, held-out cell, optimum) score of a full-sweep run table.

    Folds are independent: ``workers`` processes run them at once (``executor="local"``), or each is
    a Slurm job (``"slurm"``, via submitit; ``slurm`` holds its parameters). With ``partial`` (a
    directory), every finished fold is kept there at once, and a rerun with the same settings
    resumes: it runs only the folds that are not there yet.
    """
    models = models or list(catalog.kinds())
    sd: SurfaceData = surface_data(runs, window=window, source=source)
    best = best_runs(runs, source=source).frame.sort_values(["N", "D"], ignore_index=True)
    runs = sd.runs
    plan = plan_folds(best, splits, source, log)
    done = _resume(partial, {"models": models, "splits": list(splits), "config": config.as_dict(), "ci_prob": ci_prob,
                             "window": window, "slopes": slopes, "source": source, "runs": len(runs)}, log)
    todo = [k for k in range(len(plan)) if k not in done]
    args = (best, runs, models, config, ci_prob, window, slopes, source)

    def keep(k: int, rows: list[dict]) -> None:
        done[k] = rows
        if partial is not None:
            write_csv(partial / f"fold-{k:03d}.csv", pd.DataFrame(rows))
        failed = sorted({r["model"] for r in rows if not r["fit_ok"]})
        tick(f"{plan[k].split} / {plan[k].name}" + (f" (diagnostics failed: {', '.join(failed)})" if failed else ""))

    with steps(len(todo), "backtest folds") as tick:
        if executor == "slurm":
            _run_slurm(plan, todo, args, partial, slurm or {}, keep)
        elif workers > 1 and len(todo) > 1:
            import multiprocessing
            import os
            from concurrent.futures import ProcessPoolExecutor, as_completed

            cores = max(1, (os.cpu_count() or 1) // workers)
            args = (best, runs, models, replace(config, cores=cores), ci_prob, window, slopes, source)
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(run_fold, plan[k], *args): k for k in todo}
                for future in as_completed(futures):
                    keep(futures[future], future.result())
        else:
            for k in todo:
                keep(k, run_fold(plan[k], *args))
    rows = [r for k in sorted(done) for r in done[k]]
    out = pd.DataFrame(rows)
    out["problems"] = out["problems"].fillna("")          # a fold read back from its CSV has NaN for ""
    out.insert(0, "ci_prob", ci_prob)
    return out


def _resume(partial: Path | None, key: dict, log: Callable[[str], None]) -> dict[int, list[dict]]:
    """The folds already finished in ``partial`` under the same settings (else a fresh, empty start)."""
    import json
    import shutil

    if partial is None:
        return {}
    stamp = partial / "settings.json"
    if partial.exists() and (not stamp.exists() or json.loads(stamp.read_text()) != json.loads(json.dumps(key))):
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    write_json(stamp, key)
    done = {int(p.stem.split("-")[1]): pd.read_csv(p).to_dict("records") for p in sorted(partial.glob("fold-*.csv"))}
    if done:
        log(f"  resuming: {len(done)} fold(s) already done in {partial}")
    return done


def _run_slurm(plan: list[Fold], todo: list[int], args: tuple, partial: Path | None, params: dict, keep) -> None:
    """Each fold a Slurm job (submitit); results kept as the jobs finish."""
    try:
        import submitit
    except ImportError:
        raise InputError("--executor slurm needs submitit: pip install submitit") from None
    folder = (partial or Path("runs")) / "submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster=params.get("cluster", "slurm"))
    executor.update_parameters(timeout_min=params.get("timeout_min", 120), cpus_per_task=params.get("cpus", 2),
                               slurm_partition=params.get("partition"), name="bayes_scaling.backtest")
    jobs = {executor.submit(run_fold, plan[k], *args): k for k in todo}
    for job in submitit.helpers.as_completed(list(jobs)):
        keep(jobs[job], job.result())


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
