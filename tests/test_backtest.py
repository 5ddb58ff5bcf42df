"""Backtest: folds, the measured-surface read-out, and the CLI end to end on a small simulated sweep."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import assert_manifest

from bayes_scaling.evaluation.backtest import folds, measured_surface, score, steplaw_formula
from test_surface import known_sweep

COLUMNS = {"ci_prob", "split", "fold", "n_train_cells", "fit_ok", "wall_s", "model", "N", "D", "quantity", "measured",
           "median", "lo", "hi", "log_ratio", "covered", "covered_cell", "width_log", "regret", "regret_nearest"}


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bayes_scaling.backtest", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_folds_of_each_split():
    cells = pd.DataFrame({"N": [1, 1, 2, 2, 3], "D": [10, 20, 10, 30, 10]})
    (name, test), = folds(cells, "largest-n")
    assert test.tolist() == [False, False, False, False, True]
    (_, test), = folds(cells, "largest-d")
    assert test.tolist() == [False, True, False, True, False]      # N=3 has one cell: kept
    assert [t.sum() for _, t in folds(cells, "each-n")] == [2, 2, 1]


def test_measured_surface_interpolates_inside_and_falls_back_outside():
    lr, B = np.meshgrid([1e-3, 2e-3], [1e5, 2e5])
    runs = pd.DataFrame({"lr": lr.ravel(), "B": B.ravel(), "loss": [3.0, 3.2, 3.4, 3.6], "status": "ok"})
    read = measured_surface(runs)
    mid, nearest = read(np.log(np.sqrt(2) * 1e-3), np.log(1e5))
    assert mid == pytest.approx(3.1) and not nearest
    far, nearest = read(np.log(1e-2), np.log(2e5))
    assert far == pytest.approx(3.6) and nearest


def test_steplaw_formula_reference_values():
    ref = steplaw_formula(np.array([1e9]), np.array([1e11]))
    assert ref["lr"][0] == pytest.approx(1.79 * 1e9**-0.713 * 1e11**0.307)
    assert ref["batch_size"][0] == pytest.approx(0.58 * 1e11**0.571)


def test_a_bound_one_ulp_beside_the_measured_best_run_covers_it():
    """Coverage is decided on the interval, not on float rounding: a bound that is the measured value
    up to a log/exp round trip covers it; a bound a grid step away does not."""
    meas = 1.381e-3
    assert np.exp(np.log(meas)) != meas
    cells = pd.DataFrame({"N": [1e8], "D": [2e9], "lr": [meas], "B": [262144.0], "loss": [3.0],
                          "lr_lo": [np.log(meas) - 0.17], "lr_hi": [np.log(meas) + 0.17],
                          "B_lo": [np.log(262144.0) - 0.2], "B_hi": [np.log(262144.0) + 0.2]})
    runs = pd.DataFrame({"N": 1e8, "D": 2e9, "lr": [meas, 2 * meas, meas, 2 * meas], "B": [262144.0] * 2 + [524288.0] * 2,
                         "loss": [3.0, 3.1, 3.05, 3.2], "status": "ok"})

    def pred(lo, hi):
        return pd.DataFrame({"median": [lo], "lo": [lo], "hi": [hi]})

    for lo, hi, covered in ((np.exp(np.log(meas)), 2 * meas, True), (meas / 2, np.exp(np.log(meas)), True),
                            (meas * 2**0.5, 2 * meas, False), (meas / 2, meas * 2**-0.5, False)):
        rows = score(cells, np.array([True]), runs, "m", {"lr": pred(lo, hi), "batch_size": pred(131072.0, 524288.0)}, {})
        assert rows[0]["quantity"] == "lr" and rows[0]["covered"] is covered
        assert rows[1]["covered"]


def test_cli_end_to_end_on_a_simulated_sweep(tmp_path, repo_root):
    runs, _ = known_sweep(seed=3)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out = tmp_path / "bt"
    res = _cli("--data", str(tmp_path / "runs.csv"), "--models", "ols,quantized,surface", "--splits", "largest-n",
               "--draws", "150", "--tune", "250", "--chains", "2", "--out", str(out), cwd=repo_root)
    assert res.returncode == 0, res.stderr[-2000:]
    table = pd.read_csv(out / "backtest.csv")
    assert COLUMNS <= set(table.columns)
    assert set(table["model"]) == {"ols", "quantized", "surface", "surface (smooth optimum)", "steplaw-formula"}
    assert len(table) == 5 * 2 * 2                         # model rows × held-out cells (N = 4e8) × optima
    assert table["regret"].ge(0).all()
    assert (out / "ranking.csv").exists() and (out / "backtest.png").exists()
    losses = pd.read_csv(out / "run_losses.csv")
    assert set(losses["N"]) == {4e8} and {"loss", "loss_median", "loss_lo", "loss_hi", "covered"} <= set(losses)
    assert {"run_r2", "run_coverage"} <= set(pd.read_csv(out / "ranking.csv"))
    assert_manifest(out, "backtest")
    assert "ranking" in res.stdout


@pytest.mark.parametrize("args, message", [
    (("--data", "no/such/file.csv"), "no such file"),
    (("--data", "blog-partII"), "needs a sweep"),
    (("--models", "ols,magic"), "--models: magic"),
    (("--target-accept", "1.2"), "--target-accept 1.2"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, repo_root, args, message):
    res = _cli(*args, "--out", str(tmp_path / "bt"), cwd=repo_root)
    assert res.returncode == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bt").exists()


def test_a_fold_never_sees_its_held_out_cells(monkeypatch):
    """Every fit of every fold — best-run kinds and the surface — is given only the training cells' runs."""
    from bayes_scaling import catalog
    from bayes_scaling.evaluation import backtest
    from bayes_scaling.inference.config import SamplerConfig

    seen = []
    real = catalog.fit_all

    def spy(names, quantities, best, fitter, **kw):
        seen.append((set(zip(best.frame["N"], best.frame["D"])), set(zip(kw["runs"]["N"], kw["runs"]["D"]))))
        return real(names, quantities, best, fitter, **kw)

    monkeypatch.setattr(backtest.catalog, "fit_all", spy)
    runs, _ = known_sweep(seed=1)
    logged = []
    result = backtest.run_backtest(runs, models=["ols", "surface"], splits=("largest-n", "each-n", "largest-d"),
                                   config=SamplerConfig(draws=100, tune=150, chains=2), log=logged.append)
    table = result.optima
    held = {fold: set(zip(g["N"], g["D"])) for fold, g in table.groupby(["split", "fold"], sort=False)}
    assert len(held) == 4 and len(seen) == 8               # 4 folds (largest-n, each N) × 2 models
    for (best_cells, run_cells), fold in zip(seen, [f for f in held for _ in range(2)]):
        assert best_cells and not best_cells & held[fold]
        assert run_cells == best_cells
    # the surface is scored twice per held-out cell — its predicted best grid run against the measured
    # one, its smooth optimum against the all-cells fit's — and predicts every held-out ok run's loss
    surf = table[table["model"].str.startswith("surface")]
    assert set(zip(surf["model"], surf["target"])) == {("surface", backtest.BEST_RUN),
                                                       ("surface" + backtest.SMOOTH, backtest.SMOOTH_OPTIMUM)}
    best = surf[surf["target"] == backtest.BEST_RUN]
    key = ["split", "fold", "N", "D", "quantity"]
    ols = table[table["model"] == "ols"].set_index(key)["measured"]
    np.testing.assert_allclose(best.set_index(key)["measured"], ols.loc[best.set_index(key).index])   # the measured best run
    smooth = surf[surf["target"] == backtest.SMOOTH_OPTIMUM]
    assert (smooth["measured"].to_numpy() != best["measured"].to_numpy()).all()   # a different truth
    rl = result.runs
    assert set(rl["model"]) == {"surface"}
    for fold, g in rl.groupby(["split", "fold"]):
        assert set(zip(g["N"], g["D"])) == held[fold]                     # only held-out runs
        ok_runs = runs[runs.set_index(["N", "D"]).index.isin(list(held[fold])) & (runs["status"] == "ok")]
        assert len(g) == len(ok_runs)
    rank = backtest.ranking(table, rl)
    row = rank.set_index("model").loc["surface"]
    near = 0                                  # held-out ok runs within RUN_SCORE_WINDOW of their cell's best, by hand
    for cells in held.values():
        for n, d in cells:
            c = runs[(runs["N"] == n) & (runs["D"] == d) & (runs["status"] == "ok")]
            near += int((c["loss"] - c["loss"].min() <= backtest.RUN_SCORE_WINDOW).sum())
    assert row["n_runs_scored"] == near and row["run_coverage"] > 0.3
    assert np.isnan(rank.set_index("model").loc["ols", "run_coverage"])
    # largest-d leaves one D per size here: c_D is unidentified, so that fold is skipped, and says so
    assert any("largest-d" in line and "cannot identify" in line for line in logged)


def test_the_akima_baseline_finds_a_bowls_minimum_between_grid_points():
    """On a smooth bowl sampled every half power of two, the interpolated argmin lands near the true
    optimum, closer than the best grid point; the baseline then predicts like the OLS kind."""
    from bayes_scaling.inference.config import SamplerConfig
    from bayes_scaling.surface.akima import akima_argmin, fit_akima

    x = np.log(2.0) * np.arange(-12, -5.9, 0.5)
    truth = np.log(2.0) * -8.8
    loss = 3 + 0.05 * (x - truth) ** 2 + 0.02 * (x - truth) ** 3 * (x > truth)
    assert abs(akima_argmin(x, loss) - truth) < 0.3 * abs(x[np.argmin(loss)] - truth) + 0.02
    runs, _ = known_sweep(seed=2)
    fit = fit_akima(runs, SamplerConfig(), n_boot=500)
    assert set(fit.as_optimum_fits()) == {"lr", "batch_size"} and len(fit.cells) == 6
    pred = fit.as_optimum_fits()["lr"].predict([4e8], [8e9])
    assert pred["model"].iloc[0] == "akima" and pred["lo"].iloc[0] < pred["median"].iloc[0] < pred["hi"].iloc[0]
    grid_step = np.log(2.0) / 2
    assert np.all(np.abs(np.log(fit.cells["lr"] / fit.cells["best_lr"])) <= grid_step + 1e-9)


def test_folds_run_in_parallel_resume_after_an_interruption_and_go_through_submitit(tmp_path, monkeypatch):
    from bayes_scaling.evaluation import backtest
    from bayes_scaling.inference.config import SamplerConfig

    runs, _ = known_sweep(seed=4)
    config = SamplerConfig(draws=100, tune=150, chains=2)
    kw = dict(models=["ols", "quantized"], splits=("each-n",), config=config, log=lambda _: None)
    partial = tmp_path / "folds"
    full = backtest.run_backtest(runs, **kw, workers=2, partial=partial).optima
    assert sorted(p.name for p in partial.glob("fold-???.csv")) == ["fold-000.csv", "fold-001.csv", "fold-002.csv"]
    (partial / "fold-001.csv").unlink()                       # as if the run had been killed before this fold
    ran = []
    real = backtest.run_fold
    monkeypatch.setattr(backtest, "run_fold", lambda fold, *a: ran.append(fold.name) or real(fold, *a))
    resumed = backtest.run_backtest(runs, **kw, partial=partial).optima
    assert ran == [backtest.plan_folds(backtest.best_runs(runs).frame.sort_values(["N", "D"], ignore_index=True),
                                       ("each-n",), "<table>", lambda _: None)[1].name]
    pd.testing.assert_frame_equal(resumed.drop(columns="wall_s"), full.drop(columns="wall_s"), check_dtype=False)
    changed = backtest.run_backtest(runs, **{**kw, "models": ["ols"]}, partial=partial).optima  # other settings: fresh
    assert set(changed["model"]) == {"ols", "steplaw-formula"} and len(ran) == 4
    pytest.importorskip("submitit")
    monkeypatch.setattr(backtest, "run_fold", real)
    slurm = backtest.run_backtest(runs, **{**kw, "models": ["ols"]}, executor="slurm", partial=tmp_path / "s",
                                  slurm={"cluster": "debug"}).optima
    pd.testing.assert_frame_equal(slurm.drop(columns="wall_s"), changed.drop(columns="wall_s"), check_dtype=False)


def test_a_resume_keeps_whole_folds_only_and_their_run_losses(tmp_path):
    """A fold counts as done only with its run-loss file (written first); settings of another
    format or run start afresh; a fold's run losses come back with it."""
    from bayes_scaling.evaluation import backtest

    key = {"format": backtest.FOLD_FORMAT, "models": ["surface"]}
    partial = tmp_path / "folds"
    assert backtest._resume(partial, key, lambda _: None) == {}
    pd.DataFrame([{"model": "surface", "quantity": "lr"}]).to_csv(partial / "fold-000.csv", index=False)
    pd.DataFrame([{"model": "surface", "loss": 3.1, "scored": True}]).to_csv(partial / "fold-000-runs.csv", index=False)
    pd.DataFrame([{"model": "surface", "quantity": "lr"}]).to_csv(partial / "fold-001.csv", index=False)  # killed mid-write
    (partial / "fold-002-runs.csv").write_text("")                                    # an empty table
    pd.DataFrame([{"model": "ols", "quantity": "lr"}]).to_csv(partial / "fold-002.csv", index=False)
    done = backtest._resume(partial, key, lambda _: None)
    assert sorted(done) == [0, 2]
    assert done[0][1] == [{"model": "surface", "loss": 3.1, "scored": True}] and done[2][1] == []
    assert backtest._resume(partial, {**key, "format": 1}, lambda _: None) == {}      # an older format: afresh
    assert not list(partial.glob("fold-*"))


def test_the_all_cells_fit_is_kept_for_a_resume(tmp_path):
    """The smooth optima of the all-cells fit are computed once per folder and read back as they were."""
    from bayes_scaling.evaluation import backtest

    calls = []
    truth = {"surface": {"lr": np.array([-6.1, -5.2]), "batch_size": np.array([13.0, 13.5])}}
    partial = tmp_path / "folds"
    partial.mkdir()
    first = backtest._kept(partial, lambda: calls.append(1) or truth)
    again = backtest._kept(partial, lambda: calls.append(1) or truth)
    assert calls == [1] and (partial / backtest.SMOOTH_TRUTH).exists()
    for out in (first, again):
        np.testing.assert_array_equal(out["surface"]["lr"], truth["surface"]["lr"])
        np.testing.assert_array_equal(out["surface"]["batch_size"], truth["surface"]["batch_size"])
    assert backtest._kept(None, lambda: calls.append(1) or truth) is truth and calls == [1, 1]
