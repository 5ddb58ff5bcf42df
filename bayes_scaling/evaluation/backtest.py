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

Each row says what it predicts (``target``). A best-run kind predicts the cell's best run. A kind
that tells the two optima apart (``two_optima``: ``surface``, ``gp``) gives two rows per cell and
optimum: "best grid run" (model ``surface``: the best run a sweep of the held-out cell's own
configurations would find — for the surface the argmin of a joint predictive draw of their losses,
with selection noise and the grid; scored against the measured best run, like every other kind) and
"smooth optimum" (model ``surface (smooth optimum)``: the argmin of the cell's bowl, whose truth is
not measured: it is scored against the cell's smooth optimum as the same kind fitted to *every*
cell estimates it). A kind that predicts losses (``surface``) also predicts the loss of every
held-out run (``run_losses``: median, interval, covered), scored on the runs within
``RUN_SCORE_WINDOW`` nats of their cell's best loss.

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
from bayes_scaling.optimum.spec import ModelOptions
from bayes_scaling.progress import steps
from bayes_scaling.surface.data import WINDOW, SurfaceData, surface_data

SPLITS = ("largest-n", "largest-d", "each-n")
REFERENCE = "steplaw-formula"
#: Held-out runs whose loss is scored: those within this many nats of their cell's best loss (the
#: blown-up runs, +4 nats, are outside what any bowl claims to describe).
RUN_SCORE_WINDOW = 0.1
#: Suffix of the model label of a loss-predicting kind's smooth-optimum rows.
SMOOTH = " (smooth optimum)"
#: Version of the fold files kept for a resume (a directory of another version starts afresh).
#: 3: a predicted best run's median and bounds are the sweep's configurations exactly.
FOLD_FORMAT = 3
#: Relative tolerance of the coverage rule: a bound equal to the truth up to float rounding covers it
#: (a predicted best run's bound *is* a configuration; a log/exp round trip puts it one ulp beside).
COVER_RTOL = 1e-9
BEST_RUN, SMOOTH_OPTIMUM = "best grid run", "smooth optimum"


@dataclass
class Backtest:
    """What a backtest scored: the held-out optima (``backtest.csv``) and run losses (``run_losses.csv``)."""

    optima: pd.DataFrame
    runs: pd.DataFrame


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
          preds: dict[str, pd.DataFrame], meta: dict, *, truth: dict[str, np.ndarray] | None = None,
          target: str = BEST_RUN) -> list[dict]:
    """Rows of backtest.csv for one model on the held-out cells of one fold: ``preds`` scored against
    ``truth`` (per optimum, one value per held-out cell; default the measured best run)."""
    rows = []
    for i, k in enumerate(np.flatnonzero(test)):
        cell = cells.iloc[k]
        in_cell = runs[(runs["N"] == cell["N"]) & (runs["D"] == cell["D"])]
        p_lr, p_b = preds["lr"].iloc[i], preds["batch_size"].iloc[i]
        loss, nearest = measured_surface(in_cell)(np.log(p_lr["median"]), np.log(p_b["median"]))
        for q, p in preds.items():
            col = QUANTITIES[q]
            meas = float(cell[col]) if truth is None else float(truth[q][i])
            lo, hi = float(p.iloc[i]["lo"]), float(p.iloc[i]["hi"])
            has_ci = np.isfinite(lo) and np.isfinite(hi)
            rows.append({
                **meta, "model": model, "target": target, "N": cell["N"], "D": cell["D"], "quantity": q,
                "measured": meas, "median": float(p.iloc[i]["median"]), "lo": lo, "hi": hi,
                "log_ratio": float(np.log(p.iloc[i]["median"] / meas)),
                "covered": (lo <= meas * (1 + COVER_RTOL) and meas <= hi * (1 + COVER_RTOL)) if has_ci else np.nan,
                "covered_cell": (np.log(lo) <= cell[f"{col}_hi"] + COVER_RTOL and np.log(hi) >= cell[f"{col}_lo"] - COVER_RTOL)
                if has_ci and truth is None else np.nan,            # the measured best run's grid cell
                "width_log": float(np.log(hi / lo)) if has_ci else np.nan,
                "regret": loss - float(cell["loss"]), "regret_nearest": nearest, "best_loss": float(cell["loss"]),
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


#: What ``_kept`` names the all-cells fits' smooth optima in a ``partial`` folder.
SMOOTH_TRUTH = "smooth-truth.json"
#: Compiled models kept per worker process across its folds (keyed by sampler settings).
_FITTERS: dict = {}


def run_fold(fold: Fold, best: pd.DataFrame, runs: pd.DataFrame, models: list[str], config: SamplerConfig,
             ci_prob: float, window: float, slopes: str, law_form: str, source: str,
             smooth_truth: dict[str, dict[str, np.ndarray]],
             options: ModelOptions = ModelOptions()) -> tuple[list[dict], list[dict]]:
    """Fit every model on the fold's training cells and score its held-out cells: (rows of
    backtest.csv, rows of run_losses.csv). ``smooth_truth``: per kind that tells the two optima apart
    (``two_optima``), every cell's smooth optimum from the kind fitted to all cells."""
    if (config, options) not in _FITTERS:
        _FITTERS[config, options] = (Fitter(config, options=options, n_boot=2000), {})
    fitter, caches = _FITTERS[config, options]
    test, train = fold.test, ~fold.test
    target_N, target_D = best.loc[test, "N"].to_numpy(), best.loc[test, "D"].to_numpy()
    meta = {"split": fold.split, "fold": fold.name, "n_train_cells": int(train.sum())}
    ref = steplaw_formula(target_N, target_D)
    preds = {q: pd.DataFrame({"median": v, "lo": np.nan, "hi": np.nan}) for q, v in ref.items()}
    rows = score(best, test, runs, REFERENCE, preds, {**meta, "fit_ok": True, "problems": "", "wall_s": 0.0})
    sub = _best_subset(best, train, source)
    keys = pd.MultiIndex.from_frame(runs[["N", "D"]])
    train_runs = runs[keys.isin(pd.MultiIndex.from_frame(best.loc[train, ["N", "D"]]))].reset_index(drop=True)
    test_runs = runs[keys.isin(pd.MultiIndex.from_frame(best.loc[test, ["N", "D"]]))].reset_index(drop=True)
    known = catalog.kinds()
    run_rows: list[dict] = []
    for model in models:
        t0 = time.perf_counter()
        fitted = catalog.fit_all([model], list(QUANTITIES), sub, fitter, runs=train_runs, caches=caches,
                                 options=catalog.RunOptions(slopes=slopes, window=window, law_form=law_form),
                                 source=source)
        fits = {q: fitted.fits[q][model] for q in QUANTITIES}
        diag = [f.diagnostics for f in fits.values() if f.diagnostics is not None]
        problems = "; ".join(dict.fromkeys(p for d in diag for p in d.problems()))
        preds = {q: f.predict(target_N, target_D, ci_prob=ci_prob) for q, f in fits.items()}
        fold_meta = {**meta, "fit_ok": not problems, "problems": problems, "wall_s": time.perf_counter() - t0}
        if known[model].two_optima:
            sf = fitted.run_level[model]
            rows += score(best, test, runs, model + SMOOTH, preds, fold_meta,
                          truth={q: v[test] for q, v in smooth_truth[model].items()}, target=SMOOTH_OPTIMUM)
            preds = _best_run_predictions(sf, best, test, test_runs, ci_prob)
        if known[model].predicts_loss:
            run_rows += _run_scores(fitted.run_level[model], test_runs, model, fold_meta, ci_prob)
        rows += score(best, test, runs, model, preds, fold_meta)
    return rows, run_rows


def _best_run_predictions(sf, best: pd.DataFrame, test: np.ndarray, test_runs: pd.DataFrame,
                          ci_prob: float) -> dict[str, pd.DataFrame]:
    """Per optimum, the predicted best grid run of each held-out cell: a sweep of that cell's own
    configurations (its design, never its losses)."""
    parts = []
    for k in np.flatnonzero(test):
        n, d = best.loc[k, "N"], best.loc[k, "D"]
        design = test_runs[(test_runs["N"] == n) & (test_runs["D"] == d)]
        parts.append(sf.best_run(n, d, B=design["B"].to_numpy(), lr=design["lr"].to_numpy(), ci_prob=ci_prob))
    table = pd.concat(parts, ignore_index=True)
    return {q: table[table["quantity"] == q].reset_index(drop=True) for q in QUANTITIES}


def _run_scores(sf, test_runs: pd.DataFrame, model: str, meta: dict, ci_prob: float) -> list[dict]:
    """One row per held-out ok run: its measured and predicted loss, the interval, whether it covers."""
    ok = test_runs[test_runs["status"] == "ok"].reset_index(drop=True)
    pred = sf.predict_loss(ok[["N", "D", "B", "lr"]], ci_prob=ci_prob)
    cell_min = ok.groupby(["N", "D"])["loss"].transform("min").to_numpy()
    loss = ok["loss"].to_numpy(float)
    return pd.DataFrame({
        **meta, "model": model, "N": ok["N"], "D": ok["D"], "B": ok["B"], "lr": ok["lr"], "loss": loss,
        "above_best": loss - cell_min, "scored": loss - cell_min <= RUN_SCORE_WINDOW,
        "loss_median": pred["loss_median"], "loss_lo": pred["loss_lo"], "loss_hi": pred["loss_hi"],
        "covered": (pred["loss_lo"] <= loss) & (loss <= pred["loss_hi"]), "ci_prob": ci_prob,
    }).to_dict("records")


def run_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model, over the scored held-out runs: R² of the predicted median (pooled, and within cells:
    each cell's mean removed from both), coverage and median width of the predictive interval."""
    rows = []
    for model, g in runs[runs["scored"].eq(True)].groupby("model"):
        y, m = g["loss"].to_numpy(), g["loss_median"].to_numpy()
        cell = g.groupby(["split", "fold", "N", "D"])
        yc = y - cell["loss"].transform("mean").to_numpy()
        mc = m - cell["loss_median"].transform("mean").to_numpy()
        rows.append({"model": model, "run_r2": 1 - np.sum((y - m) ** 2) / np.sum((y - y.mean()) ** 2),
                     "run_r2_within_cell": 1 - np.sum((yc - mc) ** 2) / np.sum(yc**2),
                     "run_coverage": g["covered"].eq(True).mean(),
                     "run_width": (g["loss_hi"] - g["loss_lo"]).median(), "n_runs_scored": len(g)})
    return pd.DataFrame(rows, columns=["model", "run_r2", "run_r2_within_cell", "run_coverage", "run_width",
                                       "n_runs_scored"])


def run_backtest(runs: pd.DataFrame, *, models: list[str] | None = None, splits: tuple[str, ...] = SPLITS,
                 config: SamplerConfig = SamplerConfig(), ci_prob: float = 0.9, window: float = WINDOW,
                 slopes: str = "pooled", law_form: str = "straight", source: str = "<table>",
                 log: Callable[[str], None] = print,
                 workers: int = 1, executor: str = "local", partial: Path | None = None,
                 slurm: dict | None = None, options: ModelOptions = ModelOptions()) -> Backtest:
    """Every (split, fold, model, held-out cell, optimum) score of a full-sweep run table, and every
    held-out run's loss for the kinds that predict losses.

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
    done = _resume(partial, {"format": FOLD_FORMAT, "models": models, "splits": list(splits), "config": config.as_dict(), "ci_prob": ci_prob,
                             "window": window, "slopes": slopes, "law_form": law_form, "source": source, "runs": len(runs),
                             "model_options": options.as_dict()}, log)
    todo = [k for k in range(len(plan)) if k not in done]
    smooth_truth = _kept(partial, lambda: _smooth_truth(runs, models, config, window, slopes, law_form, source,
                                                        ci_prob, log, options)) if todo else {}
    args = (best, runs, models, config, ci_prob, window, slopes, law_form, source, smooth_truth, options)

    def keep(k: int, result: tuple[list[dict], list[dict]]) -> None:
        done[k] = result
        rows, run_rows = result
        if partial is not None:
            write_csv(partial / f"fold-{k:03d}-runs.csv", pd.DataFrame(run_rows))
            write_csv(partial / f"fold-{k:03d}.csv", pd.DataFrame(rows))      # last: its presence marks the fold done
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
            args = (best, runs, models, replace(config, cores=cores), ci_prob, window, slopes, law_form, source,
                    smooth_truth, options)
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(run_fold, plan[k], *args): k for k in todo}
                for future in as_completed(futures):
                    keep(futures[future], future.result())
        else:
            for k in todo:
                keep(k, run_fold(plan[k], *args))
    rows = [r for k in sorted(done) for r in done[k][0]]
    out = pd.DataFrame(rows)
    out["problems"] = out["problems"].fillna("")          # a fold read back from its CSV has NaN for ""
    out.insert(0, "ci_prob", ci_prob)
    return Backtest(optima=out, runs=pd.DataFrame([r for k in sorted(done) for r in done[k][1]]))


def _smooth_truth(runs: pd.DataFrame, models: list[str], config: SamplerConfig, window: float, slopes: str,
                  law_form: str, source: str, ci_prob: float, log: Callable[[str], None],
                  options: ModelOptions = ModelOptions()) -> dict[str, dict[str, np.ndarray]]:
    """Per kind among ``models`` that tells the two optima apart (``two_optima``): every cell's smooth
    optimum, the kind fitted to all cells (what its held-out smooth-optimum predictions are scored against)."""
    known, out = catalog.kinds(), {}
    for model in [m for m in models if known[m].two_optima]:
        t0 = time.perf_counter()
        full = known[model].fit(runs, config, catalog.RunOptions(slopes=slopes, window=window, law_form=law_form,
                                                                   priors=options.priors),
                                source=source, cache={})
        cells = full.cell_optima(ci_prob=ci_prob)
        out[model] = {q: cells.loc[cells["quantity"] == q, "median"].to_numpy() for q in QUANTITIES}
        log(f"  every cell: {model} {time.perf_counter() - t0:.1f} s (the smooth optima its held-out cells are "
            f"scored against)  {full.diagnostics.describe()}")
    return out


def _kept(partial: Path | None, compute: Callable[[], dict]) -> dict[str, dict[str, np.ndarray]]:
    """The all-cells smooth optima: computed once per settings, kept in ``partial`` (smooth-truth.json)
    for a resume — the all-cells surface fit takes minutes; ``_resume`` clears it with other settings."""
    import json

    path = partial / SMOOTH_TRUTH if partial is not None else None
    if path is not None and path.exists():
        return {m: {q: np.asarray(v, dtype=float) for q, v in d.items()} for m, d in json.loads(path.read_text()).items()}
    out = compute()
    if path is not None:
        write_json(path, {m: {q: np.asarray(v).tolist() for q, v in d.items()} for m, d in out.items()})
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
    done = {}
    for p in sorted(partial.glob("fold-[0-9][0-9][0-9].csv")):
        run_rows = partial / f"{p.stem}-runs.csv"            # written first: without it the fold is not done
        if run_rows.exists():
            done[int(p.stem.split("-")[1])] = (pd.read_csv(p).to_dict("records"), _read_rows(run_rows))
    if done:
        log(f"  resuming: {len(done)} fold(s) already done in {partial}")
    return done


def _read_rows(path: Path) -> list[dict]:
    """A fold's CSV as rows (an empty table, written for a fold with no rows, is no rows)."""
    try:
        return pd.read_csv(path).to_dict("records")
    except pd.errors.EmptyDataError:
        return []


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


def ranking(table: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model: mean |log ratio|, bias (log₂), coverage and log-width of each optimum, mean
    regret (nats and % of the cell's best loss), and, from ``runs``, the held-out run-loss scores."""
    g = table.groupby(["model", "quantity"])
    per_q = pd.DataFrame({"abs_log_ratio": g["log_ratio"].apply(lambda s: s.abs().mean()),
                          "bias_log2": g["log_ratio"].mean() / np.log(2),
                          "coverage": g["covered"].mean(), "width_log": g["width_log"].mean(),
                          "median_width_log": g["width_log"].median()}).unstack("quantity")
    per_q.columns = [f"{m}_{'lr' if q == 'lr' else 'B'}" for m, q in per_q.columns]
    lr_rows = table[table["quantity"] == "lr"]
    regret = lr_rows.groupby("model")
    per_q["regret_mean"] = regret["regret"].mean()
    per_q["regret_pct"] = 100 * (lr_rows["regret"] / lr_rows["best_loss"]).groupby(lr_rows["model"]).mean()
    per_q["regret_max"] = regret["regret"].max()
    per_q["n_cells"] = regret.size()
    per_q["fits_ok"] = table.groupby("model")["fit_ok"].mean()
    out = per_q.sort_values("regret_mean").reset_index()
    if runs is not None and len(runs):
        out = out.merge(run_scores(runs), on="model", how="left")
    return out
