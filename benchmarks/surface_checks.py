"""Can the surface model be caught out? Two checks that could fail.

    python benchmarks/surface_checks.py misspec [--sims 12] [--models surface,gp] [--law-form straight|curved]
                                                [--workers 2] [--out results/surface]
    python benchmarks/surface_checks.py ridge   [--out results/surface]

``misspec`` — calibration against a bowl family that is *not* the fitted one. Each simulation draws
a law of η* and B* (StepLaw's exponents, scatter 0.1) over 3 sizes × 2 token budgets, and per cell
a loss surface of a different shape than ``math.bowl.valley_bowl``: the straight-valley LINEX bowl
of ``math.bowl.bowl`` (exponential above the optimum, linear below, a correlation ρ between the
axes) with its valley bent by k₂·v² (concave in log B), Student-t noise, and a *cliff*: every run
above a fixed absolute learning rate (log₂ η > −6.25) blows up by +4 nats and is recorded
as "ok", as StepLaw's 181 blown-up runs are. Each kind of ``--models`` (default ``surface``; ``gp``, the
two-stage GP alternative, has the same two optima) is fitted to every run; per cell and optimum it is scored on the generating bowl's argmin (the smooth optimum: the truth of
``as_optimum_fits``) and on the measured best run (the truth of ``best_run``): bias (log₂),
90 % coverage with a Wilson interval, and the law's exponents b, c.

``ridge`` — a posterior predictive check of the ridge on steplaw-dense: in each cell, the best lr of
every batch-size column, fitted by a quadratic in log₂ B; its curvature in the data (concave in
17/17 cells) against the same statistic of replicated sweeps drawn from the posterior predictive
(every observed configuration, jointly per cell). Reports, per cell, the observed curvature, the
replicated median and 90 % interval, and the posterior predictive p-value P(rep ≤ obs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.evaluation.calibration import binomial_interval
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.runtable import validate_runs
from bayes_scaling.io import write_csv
from bayes_scaling.math.bowl import bowl
from bayes_scaling.math.student_t import NU

LAW = {"lr": (np.log(1.79), -0.713, 0.307), "batch_size": (np.log(0.58), 0.0, 0.571)}
SIGMA = 0.1
CLIFF_LOG2_LR = -6.25
BLOWUP = 4.0
SIZES, TOKENS_PER_PARAM = np.array([1e8, 2e8, 4e8]), np.array([20.0, 80.0])
LOG_GRID = {"lr": np.log(2.0) * np.arange(-11.0, -5.4, 0.5), "batch_size": np.log(2.0) * np.arange(16.0, 22.0)}
CONFIG = SamplerConfig(draws=500, tune=800, chains=2, cores=1)


def simulate(seed: int) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """(run table, true smooth optima (2, J), cells (N, D))."""
    rng = np.random.default_rng(seed)
    N, D = np.meshgrid(SIZES, TOKENS_PER_PARAM, indexing="ij")
    N, D = N.ravel(), (N * D).ravel()
    opt = np.array([a + b * np.log(N) + c * np.log(D) for a, b, c in LAW.values()])
    opt += SIGMA * rng.standard_normal(opt.shape)
    log_eta, log_b = np.meshgrid(LOG_GRID["lr"], LOG_GRID["batch_size"], indexing="ij")
    log_eta, log_b = log_eta.ravel(), log_b.ravel()
    frames = []
    for j in range(N.size):
        h = np.exp(rng.normal(np.log([0.06, 0.03]), 0.3))
        beta = np.array([rng.normal(1.2, 0.3), rng.normal(0.3, 0.3)])
        v = log_b - opt[1, j]
        u = log_eta - opt[0, j] + 0.12 * v**2                 # the valley bends down at both ends of log B
        l_star = 3.2 - 0.08 * np.log(N[j] / 1e8) - 0.05 * np.log(D[j] / (20 * N[j]))
        mean = l_star + bowl(u, v, 1.0, h, rng.uniform(-0.4, 0.0), beta)
        loss = mean + 0.0015 * rng.standard_t(NU, size=mean.size)
        loss = np.where(log_eta / np.log(2) > CLIFF_LOG2_LR, l_star + BLOWUP + 0.3 * rng.random(mean.size), loss)
        frames.append(pd.DataFrame({"N": N[j], "D": D[j], "B": np.exp(log_b), "lr": np.exp(log_eta), "loss": loss,
                                    "status": "ok"}))
    runs = pd.concat(frames, ignore_index=True)
    runs.insert(0, "run_id", [f"sim{seed}-{i}" for i in range(len(runs))])
    return validate_runs(runs), opt, pd.DataFrame({"N": N, "D": D})


def one_misspec(job: tuple[int, str, str]) -> list[dict]:
    from bayes_scaling import catalog

    seed, model, law_form = job
    runs, opt, cells = simulate(seed)
    t0 = time.perf_counter()
    sf = catalog.kinds()[model].fit(runs, CONFIG, catalog.RunOptions(law_form=law_form), source=f"misspec-{seed}")
    found = sf.cell_optima(ci_prob=0.9)
    rows = []
    for k, q in enumerate(("lr", "batch_size")):
        col = "lr" if q == "lr" else "B"
        got = found[found["quantity"] == q].set_index(["N", "D"])
        for j, cell in cells.iterrows():
            est = got.loc[(cell["N"], cell["D"])]
            in_cell = runs[(runs["N"] == cell["N"]) & (runs["D"] == cell["D"])]
            best = float(in_cell.loc[in_cell["loss"].idxmin(), col])
            br = sf.best_run(cell["N"], cell["D"], B=in_cell["B"].to_numpy(), lr=in_cell["lr"].to_numpy(),
                             ci_prob=0.9, seed=seed)
            br = br[br["quantity"] == q].iloc[0]
            smooth = np.exp(opt[k, j])
            rows.append({"model": model, "sim": seed, "quantity": q, "N": cell["N"], "D": cell["D"], "truth_smooth": smooth,
                         "median": est["median"], "lo": est["lo"], "hi": est["hi"],
                         "bias_log2": float(np.log2(est["median"] / smooth)),
                         "covered": bool(est["lo"] <= smooth <= est["hi"]),
                         "truth_best_run": best, "best_run_median": br["median"],
                         "best_run_bias_log2": float(np.log2(br["median"] / best)),
                         "best_run_covered": bool(br["lo"] <= best <= br["hi"]),
                         "fit_ok": sf.diagnostics.ok, "wall_s": time.perf_counter() - t0})
        coef = sf.as_optimum_fits()[q].coefficients(ci_prob=0.9).set_index("param")
        for name, truth in (("b_N", LAW[q][1]), ("c_D", LAW[q][2])):
            rows.append({"model": model, "sim": seed, "quantity": q, "param": name, "truth_smooth": truth,
                         "median": coef.loc[name, "median"], "lo": coef.loc[name, "lo"], "hi": coef.loc[name, "hi"],
                         "covered": bool(coef.loc[name, "lo"] <= truth <= coef.loc[name, "hi"]),
                         "fit_ok": sf.diagnostics.ok})
    print(f"  {model} sim {seed}: {time.perf_counter() - t0:.0f} s  {sf.diagnostics.describe()}", flush=True)
    return rows


def run_misspec(args) -> None:
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("fork")) as pool:
        jobs = [(seed, model, args.law_form) for model in args.models.split(",") for seed in range(args.sims)]
        frame = pd.DataFrame([r for rows in pool.map(one_misspec, jobs) for r in rows])
    write_csv(args.out / "misspec.csv", frame)
    cells = frame[frame["param"].isna()] if "param" in frame else frame
    summary = []
    for (model, q), g in cells.groupby(["model", "quantity"]):
        for what, cov, bias in (("smooth optimum", "covered", "bias_log2"),
                                ("best grid run", "best_run_covered", "best_run_bias_log2")):
            k, n = int(g[cov].sum()), len(g)
            lo, hi = binomial_interval(np.array([k]), np.array([n]))
            summary.append({"model": model, "quantity": q, "target": what, "n": n, "coverage": k / n, "coverage_lo": float(lo[0]),
                            "coverage_hi": float(hi[0]), "mean_bias_log2": g[bias].mean(),
                            "mean_abs_bias_log2": g[bias].abs().mean()})
    for (model, q, p), g in frame[frame["param"].notna()].groupby(["model", "quantity", "param"]):
        k, n = int(g["covered"].sum()), len(g)
        lo, hi = binomial_interval(np.array([k]), np.array([n]))
        summary.append({"model": model, "quantity": q, "target": p, "n": n, "coverage": k / n, "coverage_lo": float(lo[0]),
                        "coverage_hi": float(hi[0]), "mean_bias_log2": np.nan, "mean_abs_bias_log2": np.nan,
                        "mean_error": float((g["median"] - g["truth_smooth"]).mean())})     # an exponent: plain units
    summary = pd.DataFrame(summary)
    write_csv(args.out / "misspec_summary.csv", summary)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(summary.to_string(index=False))
    passing = frame.groupby(["model", "sim"])["fit_ok"].first().groupby("model").mean()
    print("fits passing diagnostics: " + ", ".join(f"{m} {v:.2f}" for m, v in passing.items())
          + f"; {args.sims} simulations per model in {time.perf_counter() - t0:.0f} s")


def ridge_curvature(runs: pd.DataFrame, loss: np.ndarray) -> float:
    """Curvature (log₂ lr per log₂ B²) of the quadratic through each batch column's best lr."""
    frame = runs.assign(loss=loss)
    best = frame.loc[frame.groupby("B")["loss"].idxmin()]
    if len(best) < 3:
        return np.nan
    return float(np.polyfit(np.log2(best["B"]), np.log2(best["lr"]), 2)[0])


def run_ridge(args) -> None:
    from bayes_scaling.inputs.datasets import load_runs
    from bayes_scaling.surface import predict
    from bayes_scaling.surface.fit import fit_surface

    t0 = time.perf_counter()
    loaded = load_runs("steplaw-dense")
    sf = fit_surface(loaded.runs, SamplerConfig(), source=loaded.source)
    print(f"  fit: {time.perf_counter() - t0:.0f} s  {sf.diagnostics.describe()}", flush=True)
    runs = sf.data.runs
    rows = []
    for (n, d), cell in runs[runs["status"] == "ok"].groupby(["N", "D"]):
        reps = predict.loss_draws(sf, cell["N"], cell["D"], cell["B"], cell["lr"], seed=1)[::20]
        obs = ridge_curvature(cell, cell["loss"].to_numpy())
        rep = np.array([ridge_curvature(cell, r) for r in reps])
        rows.append({"N": n, "D": d, "observed": obs, "rep_median": np.nanmedian(rep),
                     "rep_lo": np.nanquantile(rep, 0.05), "rep_hi": np.nanquantile(rep, 0.95),
                     "p_rep_le_obs": float(np.mean(rep[np.isfinite(rep)] <= obs)), "rep_concave": float(np.nanmean(rep < 0))})
    table = pd.DataFrame(rows)
    write_csv(args.out / "ridge.csv", table)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    print(f"observed concave in {int((table['observed'] < 0).sum())}/{len(table)} cells; replicated concave "
          f"{table['rep_concave'].mean():.2f} of the time; cells with p < 0.05 or > 0.95: "
          f"{int(((table['p_rep_le_obs'] < 0.05) | (table['p_rep_le_obs'] > 0.95)).sum())}/{len(table)}; "
          f"{time.perf_counter() - t0:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("check", choices=("misspec", "ridge"))
    p.add_argument("--sims", type=int, default=12)
    p.add_argument("--models", default="surface", help="misspec: comma-separated run-level kinds (surface, gp)")
    p.add_argument("--law-form", default="straight", help="misspec: the gp kind's law form (straight, curved)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("results/surface"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (run_misspec if args.check == "misspec" else run_ridge)(args)


if __name__ == "__main__":
    main()
