"""The full-surface model: the window rule, the bowl, and recovery of known optima from a simulated sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from bayes_scaling.evaluation.calibration import Design, sweep_runs
from bayes_scaling.errors import InputError
from bayes_scaling.inputs.runtable import validate_runs
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.surface.fit import fit_surface
from bayes_scaling.surface.data import surface_data
from bayes_scaling.math.bowl import bowl, linex_root
from bayes_scaling.math.student_t import t4_logsf
from bayes_scaling.report.figures.surface import plot_bowls

TRUE = {"lr": {"b": -0.713, "c": 0.307}, "batch_size": {"b": 0.0, "c": 0.571}}


def known_design() -> Design:
    N, D = np.meshgrid([1e8, 2e8, 4e8], [2e9, 8e9], indexing="ij")
    return Design(N=N.ravel(), D=D.ravel(),
                  log_grid={"lr": np.log(2.0) * np.arange(-12, -5.9, 0.5), "batch_size": np.log(2.0) * np.arange(15, 22)},
                  min_loss=3.0 - 0.1 * np.log(N.ravel() / 1e8))


def known_sweep(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A sweep around StepLaw-like optima (scatter 0.05 nats about the law); returns (runs, true log optima)."""
    design, rng = known_design(), np.random.default_rng(seed)
    log_opt = np.array([np.log(1.79) - 0.713 * np.log(design.N) + 0.307 * np.log(design.D),
                        np.log(0.58) + 0.571 * np.log(design.D)]) + 0.05 * rng.standard_normal((2, design.N.size))
    runs = sweep_runs(design, log_opt, rng, h=np.array([0.04, 0.03]), rho=-0.3, beta=np.array([0.5, -0.2]),
                      delta=np.zeros(design.N.size), l_star=design.min_loss, sigma_loss=0.004)
    return validate_runs(runs), log_opt


@pytest.fixture(scope="module")
def fitted():
    runs, log_opt = known_sweep()
    sf = fit_surface(runs, SamplerConfig(draws=300, tune=600, chains=2), source="sim")
    return sf, log_opt


def test_bowl_is_zero_at_the_optimum_and_positive_elsewhere():
    u, v = np.meshgrid(np.linspace(-3, 3, 41), np.linspace(-3, 3, 41))
    f = bowl(u, v, 1.0, np.array([0.05, 0.02]), -0.9, np.array([1.0, -0.7]))
    assert f[20, 20] == 0.0
    assert np.all(f[(u != 0) | (v != 0)] > 0)
    # β > 0: steeper above the optimum than below, by the LINEX shape
    assert bowl(1.0, 0.0, 1.0, [0.05, 0.05], 0.0, [1.0, 0.0]) > bowl(-1.0, 0.0, 1.0, [0.05, 0.05], 0.0, [1.0, 0.0])
    np.testing.assert_allclose(linex_root(np.array([-0.3, 0.2]), 0.0), [-0.3, 0.2], rtol=1e-5)


def test_valley_bowl_has_its_minimum_on_the_curved_valley_and_two_sides():
    from bayes_scaling.math.bowl import valley_bowl

    h, kappa, k1, k2 = (0.06, 0.02), (0.8, -0.3), 0.2, -0.15
    assert valley_bowl(0.0, 0.0, h, kappa, k1, k2) == 0.0
    v = np.linspace(-2, 2, 9)
    u = np.linspace(-3, 3, 601)[:, None]
    f = valley_bowl(u, v[None, :], h, kappa, k1, k2)
    np.testing.assert_allclose(u[f.argmin(axis=0), 0], k1 * v + k2 * v**2, atol=0.01)   # the valley's floor
    # per axis, the two sides differ by e^{2κ}: a step w above the floor costs e^{2κ} times one below
    up, down = valley_bowl(0.5, 0.0, h, kappa, k1, k2), valley_bowl(-0.5, 0.0, h, kappa, k1, k2)
    assert up / down == pytest.approx(np.exp(2 * kappa[0]))
    assert valley_bowl(0.0, 1.0, h, kappa, 0.0, 0.0) / valley_bowl(0.0, -1.0, h, kappa, 0.0, 0.0) == pytest.approx(np.exp(2 * kappa[1]))


def test_t4_survival_matches_scipy_in_both_tails():
    t = np.array([-1e4, -40.0, -1.0, 0.0, 0.5, 40.0, 1e4])
    np.testing.assert_allclose(t4_logsf(t), st.t(4).logsf(t), rtol=1e-9, atol=1e-12)


def test_window_rule_censors_high_and_diverged_runs_and_drops_none():
    runs = pd.DataFrame({
        "run_id": [f"r{i}" for i in range(12)], "N": [1e8] * 6 + [2e8] * 6, "D": 1e9,
        "B": 2.0**17, "lr": np.tile(2.0 ** -np.arange(6.0, 12.0), 2),
        "loss": [3.00, 3.05, 3.11, 3.5, np.nan, 3.02, 2.9, 2.95, 2.99, 2.97, 2.91, 2.92],
        "status": ["ok"] * 4 + ["diverged"] + ["ok"] * 7,
    })
    sd = surface_data(validate_runs(runs), window=0.1)
    assert len(sd.runs) == len(runs)
    first = sd.runs[sd.runs["N"] == 1e8]
    assert first["censored"].tolist() == [False, False, True, True, True, False]
    np.testing.assert_allclose(first["y"], [3.00, 3.05, 3.10, 3.10, 3.10, 3.02])
    assert not sd.runs.loc[sd.runs["N"] == 2e8, "censored"].any()      # all within 2.90 + 0.1


def test_best_runs_only_table_is_refused():
    runs = pd.DataFrame({"run_id": ["a", "b"], "N": [1e8, 2e8], "D": 1e9, "B": 2.0**17, "lr": 1e-3, "loss": [3.0, 2.9]})
    with pytest.raises(InputError, match="needs a sweep"):
        surface_data(validate_runs(runs))


def test_recovers_cell_optima_and_exponents(fitted):
    sf, log_opt = fitted
    draws = sf.posterior.sizes["chain"] * sf.posterior.sizes["draw"]
    # a handful at most in this short fit (2 × 300 draws): 0 alone, 2 and 7 of 600 seen in full -n 2 runs
    assert sf.diagnostics.divergences <= 0.02 * draws
    est = np.median(sf.posterior["log_opt"].values.reshape(-1, 2, log_opt.shape[1]), axis=0)
    assert np.max(np.abs(est - log_opt)) < 0.15            # a fifth of a grid step (log 2 / 2 = 0.35)
    fits = sf.as_optimum_fits()
    for q, truth in TRUE.items():
        coef = fits[q].coefficients(ci_prob=0.95).set_index("param")
        assert coef.loc["c_D", "lo"] < truth["c"] < coef.loc["c_D", "hi"]
        assert coef.loc["b_N", "lo"] < truth["b"] < coef.loc["b_N", "hi"]


def test_optimum_fits_speak_the_optimumfit_interface(fitted, tmp_path):
    sf, _ = fitted
    fits = sf.as_optimum_fits()
    pred = fits["lr"].predict([1e9, 2e9], [1e10, 4e10], ci_prob=0.9)
    assert list(pred.columns) == ["model", "quantity", "N", "D", "median", "mean", "lo", "hi", "ci_prob"]
    assert (pred["model"] == "surface").all() and (pred["lo"] < pred["median"]).all() and (pred["median"] < pred["hi"]).all()
    assert fits["batch_size"].diagnostics is sf.diagnostics
    path = plot_bowls(sf, tmp_path / "bowls.png")
    assert path.stat().st_size > 10_000


def test_subset_keeps_the_runs_of_the_kept_cells_reindexed(fitted):
    sf, _ = fitted
    keep = sf.data.cells["N"].to_numpy() != sf.data.cells["N"].max()
    sub = sf.data.subset(keep)
    assert len(sub.cells) == keep.sum() and sub.n_levels.tolist() == [1e8, 2e8]
    assert len(sub.runs) == sf.data.runs["cell"].isin(np.flatnonzero(keep)).sum()
    assert sub.runs["cell"].max() == keep.sum() - 1
    np.testing.assert_array_equal(sub.cells.loc[sub.runs["cell"], "D"].to_numpy(), sub.runs["D"].to_numpy())


def test_unavailable_approximation_is_a_one_line_input_error():
    runs, _ = known_sweep()
    with pytest.raises(InputError, match="pymc-extras"):
        fit_surface(runs, SamplerConfig(), approx="pathfinder")
    with pytest.raises(InputError, match="--approx must be one of advi"):
        fit_surface(runs, SamplerConfig(), approx="laplace")


def test_the_whole_surface_posterior_reloads(fitted, tmp_path):
    from bayes_scaling.surface.fit import SurfaceFit

    sf, _ = fitted
    sf.to_netcdf(tmp_path / "surface.nc")
    again = SurfaceFit.from_netcdf(tmp_path / "surface.nc")
    assert (again.slopes, again.method, again.data.window) == (sf.slopes, sf.method, sf.data.window)
    pd.testing.assert_frame_equal(again.cell_optima(), sf.cell_optima())
    a = again.as_optimum_fits()["lr"].predict([1e9], [1e10], seed=3)
    b = sf.as_optimum_fits()["lr"].predict([1e9], [1e10], seed=3)
    np.testing.assert_allclose(a[["median", "lo", "hi"]].to_numpy(), b[["median", "lo", "hi"]].to_numpy())
    assert plot_bowls(again, tmp_path / "bowls.png").stat().st_size > 10_000
    assert again.diagnostics == sf.diagnostics


def test_predicts_the_loss_of_every_run_and_is_wider_at_a_new_cell(fitted):
    """The measured losses near each bowl's bottom fall inside their 90 % predictive intervals about
    90 % of the time; a run at a new (N, D) carries the loss law's and the optima's uncertainty too."""
    sf, _ = fitted
    runs = sf.data.runs[~sf.data.runs["censored"]]
    pred = sf.predict_loss(runs[["N", "D", "B", "lr"]], ci_prob=0.9)
    assert list(pred.columns[-5:]) == ["loss_median", "loss_mean", "loss_lo", "loss_hi", "ci_prob"]
    inside = (pred["loss_lo"] <= runs["loss"].to_numpy()) & (runs["loss"].to_numpy() <= pred["loss_hi"])
    assert 0.75 <= inside.mean() <= 1.0
    assert np.median(np.abs(pred["loss_median"] - runs["loss"].to_numpy())) < 0.01     # σ_loss is 0.004
    best = runs.loc[runs["loss"].idxmin()]
    here = sf.predict_loss(pd.DataFrame({"N": [best["N"]], "D": [best["D"]], "B": [best["B"]], "lr": [best["lr"]]}))
    new = sf.predict_loss(pd.DataFrame({"N": [8e8], "D": [1.6e10], "B": [best["B"]], "lr": [best["lr"]]}))
    assert (new["loss_hi"] - new["loss_lo"]).iloc[0] > 2 * (here["loss_hi"] - here["loss_lo"]).iloc[0]


def test_the_best_run_a_sweep_finds_is_one_of_its_configurations_exactly(fitted):
    """The predicted best run's median and 90 % bounds are configurations of the sweep, bit for bit:
    a backtest compares them with a measured best run by ``<=``, and a log/exp round trip had put a
    bound one ulp beside the measured value, scoring a hit as a miss."""
    sf, _ = fitted
    lr = np.array([6.905e-4, 9.766e-4, 1.381e-3, 1.953e-3, 2.762e-3, 3.906e-3, 5.524e-3, 7.812e-3])   # StepLaw's
    B = np.array([131072.0, 262144.0, 393216.0, 524288.0, 720896.0])
    assert (np.exp(np.log(lr)) != lr).sum() >= 5 and (np.exp(np.log(B)) != B).sum() >= 4   # what a round trip breaks
    lr_grid, B_grid = (g.ravel() for g in np.meshgrid(lr, B))
    for n, d in ((1e8, 2e9), (8e8, 1.6e10)):                                # a fitted cell and a new one
        best = sf.best_run(n, d, B=B_grid, lr=lr_grid).set_index("quantity")
        for q, grid in (("lr", lr), ("batch_size", B)):
            assert {best.loc[q, k] for k in ("median", "lo", "hi")} <= set(grid)


def test_fit_cli_predicts_planned_runs_and_refuses_bad_ones_before_fitting(tmp_path, repo_root):
    import re
    import subprocess
    import sys

    runs, _ = known_sweep(seed=5)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    planned = pd.DataFrame({"run_id": ["p1", "p2"], "N": [2e8, 8e8], "D": [8e9, 1.6e10], "B": [2.0**18, 2.0**18],
                            "lr": [2.0**-9, 2.0**-10]})

    def fit(*args):
        return subprocess.run([sys.executable, "-m", "bayes_scaling.fit", "--data", str(tmp_path / "runs.csv"), *args],
                              cwd=repo_root, capture_output=True, text=True, timeout=900)

    planned.drop(columns="lr").to_csv(tmp_path / "no_lr.csv", index=False)
    planned.assign(B=[2.0**18, -1.0]).to_csv(tmp_path / "neg_b.csv", index=False)
    for path, models, message in [(tmp_path / "no_lr.csv", "surface", "lr"), (tmp_path / "neg_b.csv", "surface", "'B'"),
                                  (tmp_path / "no_lr.csv", "quantized", "predicts run losses")]:
        res = fit("--models", models, "--predict-runs", str(path), "--out", str(tmp_path / "bad"))
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
    planned.to_csv(tmp_path / "planned.csv", index=False)
    out = tmp_path / "fit"
    res = fit("--models", "surface", "--predict-runs", str(tmp_path / "planned.csv"), "--draws", "150",
              "--tune", "300", "--chains", "2", "--no-plots", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r"surface NUTS \([\d,]+ runs\) 100% \(elapsed \d+ s", res.stderr)   # the long run's own progress
    table = pd.read_csv(out / "run_predictions.csv")
    assert table["run_id"].tolist() == ["p1", "p2"]
    measured = runs[(runs["N"] == 2e8) & (runs["D"] == 8e9) & np.isclose(runs["B"], 2.0**18) & np.isclose(runs["lr"], 2.0**-9)]
    assert len(measured) == 1
    assert abs(table.loc[0, "loss_median"] - measured["loss"].iloc[0]) < 0.02      # a fitted cell's own run
    assert (table["loss_hi"] - table["loss_lo"]).iloc[1] > (table["loss_hi"] - table["loss_lo"]).iloc[0]  # new cell


def test_the_planner_prices_a_mis_set_learning_rate_on_the_fitted_bowl(fitted):
    """At a fitted cell, with the plan recommending that cell's own optimum: your run at the same
    (η, B) costs exactly nothing, one 8× too large costs a clearly positive penalty, and the losses
    are the surface's predictive for that run."""
    from bayes_scaling.planning.plan import Plan, surface_losses

    sf, _ = fitted
    cells = sf.cell_optima()
    at = cells[(cells["N"] == 2e8) & (cells["D"] == 8e9)].set_index("quantity")["median"]
    S = 400
    plan = Plan(np.array([1e19]), {1e19: {"N_opt": np.full(S, 2e8), "D_opt": np.full(S, 8e9),
                                          "lr": np.full(S, at["lr"]), "batch_size": np.full(S, at["batch_size"])}},
                pd.DataFrame())
    same = surface_losses(plan, sf, lr=at["lr"])
    assert list(same["run"]) == ["recommended", "yours"]
    assert (same[["penalty_median", "penalty_lo", "penalty_hi"]].to_numpy() == 0).all()
    off = surface_losses(plan, sf, lr=8 * at["lr"]).set_index("run")
    assert off.loc["yours", "penalty_lo"] > 0.01 and off.loc["yours", "loss_median"] > off.loc["recommended", "loss_median"]
    direct = sf.predict_loss(pd.DataFrame({"N": [2e8], "D": [8e9], "B": [at["batch_size"]], "lr": [at["lr"]]}))
    assert off.loc["recommended", "loss_median"] == pytest.approx(direct["loss_median"].iloc[0], abs=2e-3)


def test_plan_cli_writes_the_surface_pricing(fitted, tmp_path, capsys):
    from conftest import assert_manifest

    from bayes_scaling.plan import main

    sf, _ = fitted
    sf.to_netcdf(tmp_path / "surface.nc")
    out = tmp_path / "plan"
    rc = main(["--compute", "1e21", "--surface", str(tmp_path / "surface.nc"), "--lr", "1e-2", "--draws", "200",
               "--tune", "300", "--chains", "2", "--no-plots", "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out / "plan_surface.csv")
    assert list(table["run"]) == ["recommended", "yours"] and table.loc[1, "lr"] == 1e-2
    plan = pd.read_csv(out / "plan.csv").set_index("quantity")
    assert table.loc[0, "lr"] == pytest.approx(plan.loc["lr", "median"], rel=1e-3)
    assert (table["loss_lo"] < table["loss_hi"]).all() and table.loc[0, "penalty_median"] == 0
    assert "penalty" in capsys.readouterr().out
    assert assert_manifest(out, "plan")["surface"].endswith("surface.nc")


def test_advi_stops_when_its_loss_settles_and_reports_its_way_there(capsys):
    """The ADVI callback raises StopIteration (pm.fit's stop) once the windowed mean loss settles,
    not while it still falls, and hands each step's loss to the progress line."""
    from bayes_scaling.surface import fit as surface_fit

    reports = []
    falling = surface_fit._Converged(lambda done, detail: reports.append((done, detail)))
    losses = 1000.0 - np.arange(10 * surface_fit.ADVI_WINDOW, dtype=float)      # still falling, by one per step
    for i in range(1, losses.size + 1):
        falling(None, losses[:i], i)
    assert falling.steps == losses.size and reports[-1][0] == losses.size
    assert reports[-1][1].startswith(f"loss {losses[-100:].mean():.6g}")
    slow = surface_fit._Converged(None)         # still improving by 50 nats a window at a scale of 10⁶
    creeping = 1e6 - 0.05 * np.arange(10 * surface_fit.ADVI_WINDOW) + np.random.default_rng(0).standard_normal(
        10 * surface_fit.ADVI_WINDOW)
    for i in range(1, creeping.size + 1):
        slow(None, creeping[:i], i)
    assert not slow.settled
    noisy = surface_fit._Converged(None)        # settled, with noise: stops at the first window it may
    level = 5.0 + np.random.default_rng(1).standard_normal(10 * surface_fit.ADVI_WINDOW)
    with pytest.raises(StopIteration):
        for i in range(1, level.size + 1):
            noisy(None, level[:i], i)
    assert noisy.settled and noisy.steps <= 6 * surface_fit.ADVI_WINDOW
    flat = surface_fit._Converged(None)
    settled = np.full(10 * surface_fit.ADVI_WINDOW, 5.0)
    with pytest.raises(StopIteration):
        for i in range(1, settled.size + 1):
            flat(None, settled[:i], i)
    assert flat.steps == 4 * surface_fit.ADVI_WINDOW and flat.settled and not falling.settled


def test_advi_fit_is_labelled_approximate_shows_progress_and_finds_the_exponents(capsys):
    from bayes_scaling import progress
    from bayes_scaling.surface.fit import ADVI_STEPS, SurfaceFitter

    runs, _ = known_sweep()
    progress.set_quiet(False)
    sa = SurfaceFitter(SamplerConfig(draws=500, chains=1)).fit(surface_data(runs, source="sim"), approx="advi",
                                                            progress="  surface NUTS (probe)")
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("  surface ADVI (probe)")]
    assert lines and "loss" in lines[0] and "done after" in lines[-1]
    assert sa.approximate and "APPROXIMATE" in sa.method
    steps = int(sa.method.split("(")[1].split()[0])
    assert 0 < steps <= ADVI_STEPS
    for q, truth in TRUE.items():
        b = sa.as_optimum_fits()[q].coefficients().set_index("param").loc["b_N", "median"]
        assert abs(b - truth["b"]) < 0.35, (q, b)
