"""The two-stage ``gp`` kind: the GP's math against hand computations, its argmin on a known bowl, the
``measured`` law against PyMC, recovery of known optima from a simulated sweep, and the CLIs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import scipy.stats as st
import xarray as xr

from bayes_scaling import catalog
from bayes_scaling.errors import InputError
from bayes_scaling.evaluation.backtest import run_backtest
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.math.gp import argmin_draws, fit_cell_gp, matern32, neg_log_marginal
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.fit import Fitter, OptimumFit
from bayes_scaling.optimum.priors import parse_prior
from bayes_scaling.optimum.spec import ModelOptions
from bayes_scaling.surface.data import surface_data
from bayes_scaling.surface.gp import fit_gp, measured_data
from test_surface import TRUE, known_sweep

CONFIG = SamplerConfig(draws=1000, tune=1000, chains=2, seed=5)


@pytest.fixture(scope="module")
def fitted():
    runs, log_opt = known_sweep()
    return fit_gp(surface_data(runs, source="sim"), CONFIG, source="sim"), log_opt, runs


def test_matern_and_marginal_likelihood_equal_hand_computations():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=7)
    lengths, amp, noise, mean = np.array([0.7, 1.9]), 0.3, 0.05, 0.2
    r = np.sqrt(3 * (((x[2] - x[5]) / lengths) ** 2).sum())
    assert matern32(x, x, lengths, amp)[2, 5] == pytest.approx(amp**2 * (1 + r) * np.exp(-r))
    assert matern32(x, x, lengths, amp)[3, 3] == pytest.approx(amp**2)
    cov = matern32(x, x, lengths, amp) + noise**2 * np.eye(7)
    theta = np.array([*np.log(lengths), np.log(amp), np.log(noise), mean])
    expected = -st.multivariate_normal(np.full(7, mean), cov).logpdf(y) - 3.5 * np.log(2 * np.pi)
    assert neg_log_marginal(theta, x, y) == pytest.approx(expected, rel=1e-6)


def test_argmin_draws_find_a_minimum_between_grid_points_and_say_how_well():
    rng = np.random.default_rng(1)
    u, v = np.meshgrid(np.arange(-2.0, 2.01, 0.35), np.arange(-2.0, 2.01, 0.35), indexing="ij")
    x = np.column_stack([u.ravel(), v.ravel()])
    truth = np.array([0.23, -0.41])                           # off the grid in both axes
    d = x - truth
    loss = 3.0 + 0.04 * d[:, 0] ** 2 + 0.03 * d[:, 1] ** 2 + 0.01 * d[:, 0] * d[:, 1]
    gp = fit_cell_gp(x, loss + 0.001 * rng.standard_normal(len(loss)))
    at, low, spacing = argmin_draws(gp, draws=300, points=30, rng=rng)
    error, spread = np.abs(at.mean(axis=0) - truth), at.std(axis=0)
    assert np.all(error < 0.15)                                # under half a grid step (0.35)
    assert np.all(spread > 0) and np.all(spread < 0.3) and np.all(error < 3 * spread)
    assert abs(np.median(low) - 3.0) < 0.003
    assert np.allclose(spacing, np.ptp(x, axis=0) / 29)        # the box of the runs, 30 points an axis


def test_measured_law_log_likelihood_equals_pymc_and_weighs_by_the_errors(fitted):
    gp, _, _ = fitted
    fit = gp.fits["lr"]
    q = measured_data(gp.cells, "lr", source="sim")
    spec = specs.get("measured")
    ours = spec.log_likelihood(fit.posterior, fit.centers, fit.n_levels, q)
    tree = xr.DataTree.from_dict({"posterior": fit.posterior})
    theirs = pm.compute_log_likelihood(tree, model=spec.build(q, fit.centers), progressbar=False)
    theirs = theirs["log_likelihood"]["q_obs"].transpose("chain", "draw", "cell").values.reshape(ours.shape)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)


def test_the_measured_law_leans_less_on_a_cell_whose_estimate_is_uncertain(fitted):
    gp, _, _ = fitted
    q = measured_data(gp.cells, "lr", source="sim")
    odd = dataclasses.replace(q, y=q.y + np.where(np.arange(len(q.y)) == 0, 1.0, 0.0))   # cell 0 off by e
    fitter = Fitter(CONFIG)

    def pull(data) -> float:                   # how far the law's mean at cell 0 follows the odd value
        fit = fitter.fit("measured", data)
        return float(np.median(fit.log_draws(np.exp(q.log_N[:1]), np.exp(q.log_D[:1]), noise=False)) - q.y[0])

    sure, unsure = pull(odd), pull(dataclasses.replace(odd, se=np.where(np.arange(len(q.y)) == 0, 2.0, q.se)))
    assert sure > 0.2 and unsure < 0.5 * sure


def test_standard_errors_follow_subsets_and_new_cells(fitted):
    q = measured_data(fitted[0].cells, "lr", source="sim")
    keep = np.arange(len(q.y)) % 2 == 0
    assert np.array_equal(q.subset(keep).se, q.se[keep])
    more = q.with_cells([np.log(1e9)], [np.log(1e10)], [-6.0], [-np.inf], [np.inf], ["new"])
    assert np.array_equal(more.se, np.concatenate([q.se, [0.0]]))


def test_diagnostics_of_two_laws_are_judged_together():
    from bayes_scaling.inference.diagnostics import Diagnostics

    a, b = Diagnostics(1.002, 900, 800, 0, 4, 1000), Diagnostics(1.02, 1200, 150, 2, 4, 1000)
    both = Diagnostics.worst([a, b])
    assert (both.max_rhat, both.min_ess_bulk, both.min_ess_tail, both.divergences) == (1.02, 900, 150, 2)
    assert a.ok and not both.ok


def test_recovers_cell_optima_and_exponents_from_a_sweep_of_another_bowl_family(fitted):
    gp, log_opt, _ = fitted
    assert gp.diagnostics.ok
    error = np.abs(gp.cells[["log_lr", "log_B"]].to_numpy().T - log_opt)
    se = gp.cells[["se_lr", "se_B"]].to_numpy().T
    # the LINEX bowl is no GP's and 0.004-nat noise is large on it: errors up to a grid step, but each
    # within its own standard error's reach
    assert np.median(error) < 0.2 and np.all(error < 3.5 * se)
    for q, truth in TRUE.items():
        coef = gp.fits[q].coefficients(ci_prob=0.95).set_index("param")
        assert coef.loc["c_D", "lo"] < truth["c"] < coef.loc["c_D", "hi"]
        assert coef.loc["b_N", "lo"] < truth["b"] < coef.loc["b_N", "hi"]


def test_the_best_grid_run_adds_an_independent_offset_and_stays_inside_the_sweep(fitted):
    gp, _, runs = fitted
    n, d = 4e8, 8e9
    wide = gp.best_run(n, d, B=[1.0, 1e12], lr=[1e-9, 1e3]).set_index("quantity")      # a range that never clips
    for k, q in enumerate(("lr", "batch_size")):
        smooth = gp.fits[q].log_draws([n], [d], seed=k)[:, 0]
        # law + σ and the offset are independent, so their spreads add in quadrature
        expected = np.diff(np.quantile(smooth, [0.05, 0.95]))[0] * np.sqrt(1 + gp.offset[q] ** 2 / smooth.var())
        assert np.log(wide.loc[q, "hi"] / wide.loc[q, "lo"]) == pytest.approx(expected, rel=0.1)
    here = runs[(runs["N"] == n) & (runs["D"] == d)]
    lr = np.sort(here["lr"].unique())[4:7]                # a narrow sweep: the best run must be one of its lr
    inside = gp.best_run(n, d, B=here["B"].to_numpy(), lr=lr).set_index("quantity")
    assert lr.min() <= inside.loc["lr", "lo"] < inside.loc["lr", "hi"] <= lr.max()
    assert inside.loc["lr", "hi"] < wide.loc["lr", "hi"] or inside.loc["lr", "lo"] > wide.loc["lr", "lo"]


def test_the_gp_kind_is_offered_and_its_law_is_not():
    kinds = catalog.kinds()
    assert kinds["gp"].level == "runs" and kinds["gp"].two_optima and not kinds["gp"].predicts_loss
    assert "measured" not in kinds and "measured" not in catalog.help_text()
    assert "measured" in specs.registry(every=True) and specs.get("measured").offered is False


def test_fit_cli_writes_the_cell_estimates_and_laws_that_reload(tmp_path, repo_root):
    import subprocess
    import sys

    runs, _ = known_sweep(seed=2)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out = tmp_path / "fit"
    res = subprocess.run([sys.executable, "-m", "bayes_scaling.fit", "--data", str(tmp_path / "runs.csv"),
                          "--models", "gp", "--draws", "200", "--tune", "300", "--chains", "2", "--no-plots",
                          "--prior", "sigma=gamma(2,10)", "--out", str(out)], cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    gp_lines = [line for line in res.stdout.splitlines() if line.strip().startswith("gp ") and "90% [" in line]
    assert len(gp_lines) == 2 and all(line.endswith("smooth optimum") for line in gp_lines)   # both optima labelled
    assert "fits done and scored" not in res.stderr and "fits done" in res.stderr           # gp alone is not compared
    cells = pd.read_csv(out / "gp_cells.csv")
    assert len(cells) == 6 and {"se_log_lr", "lr_median", "lr_lo", "lr_hi", "B_median", "best_B", "ci_prob",
                                "noise_at_bound"} <= set(cells.columns)
    assert (cells["lr_lo"] <= cells["lr_median"]).all() and (cells["lr_median"] <= cells["lr_hi"]).all()
    pred = pd.read_csv(out / "predictions.csv")
    assert set(pred["model"]) == {"gp"} and set(pred["quantity"]) == {"lr", "batch_size"}
    again = OptimumFit.from_netcdf(out / "posterior" / "gp_lr.nc")
    row = pred[pred["quantity"] == "lr"].iloc[0]
    assert again.predict([row["N"]], [row["D"]])["median"].iloc[0] == pytest.approx(row["median"], rel=1e-9)
    sens = pd.read_csv(out / "sensitivity.csv")                  # how much of its laws is prior
    assert set(sens["model"]) == {"gp"} and {"a", "b", "c", "sigma"} <= set(sens["variable"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_level"]["gp"]["method"].startswith("GP per cell")
    assert manifest["cross_validation"] == []                    # nothing to compare, so no refits claimed
    assert manifest["model_options"]["priors"] == {"sigma": str(parse_prior("sigma=gamma(2,10)")[1])}
    refused = subprocess.run([sys.executable, "-m", "bayes_scaling.fit", "--data", str(tmp_path / "runs.csv"),
                              "--models", "gp", "--predict-runs", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "x")],
                             cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


def test_backtest_scores_both_optima_and_never_fits_the_held_out_runs(fitted, monkeypatch):
    _, _, runs = fitted
    seen = []
    real = catalog.kinds()["gp"].fit

    def spy(table, *args, **kwargs):
        seen.append(set(zip(table["N"], table["D"])))
        return real(table, *args, **kwargs)

    monkeypatch.setattr(type(catalog.kinds()["gp"]), "fit", lambda self, table, *a, **k: spy(table, *a, **k))
    bt = run_backtest(runs, models=["gp"], splits=("largest-n",), config=CONFIG, source="sim", log=lambda _: None)
    table = bt.optima
    assert set(zip(table["model"], table["target"])) >= {("gp", "best grid run"), ("gp (smooth optimum)", "smooth optimum")}
    assert len(table[table["model"] == "gp"]) == 2 * 2            # held-out cells (N = 4e8) × optima
    held = {(4e8, 2e9), (4e8, 8e9)}
    assert len(seen) == 2 and held <= seen[0] and not (held & seen[1])   # all cells (the smooth truth), then the fold
    assert bt.runs.empty                                           # it predicts no run's loss


def test_a_prior_reaches_the_gp_laws_in_the_backtest(fitted):
    _, _, runs = fitted

    def widths(options: ModelOptions) -> np.ndarray:
        bt = run_backtest(runs, models=["gp"], splits=("largest-n",), config=CONFIG, source="sim",
                          log=lambda _: None, options=options)
        return bt.optima.loc[bt.optima["model"] == "gp (smooth optimum)", "width_log"].to_numpy()

    tight = ModelOptions(priors=(parse_prior("sigma=gamma(400,40000)"),))      # σ pinned near 0.01
    assert np.all(widths(tight) < 0.8 * widths(ModelOptions()))


def test_plan_takes_the_gp_laws_from_a_full_sweep_and_refuses_a_best_runs_table(tmp_path, capsys):
    from bayes_scaling.plan import main as plan

    runs, _ = known_sweep(seed=2)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    args = ["--compute", "1e21", "--optimum-model", "gp", "--draws", "200", "--tune", "300", "--chains", "2",
            "--workers", "1", "--no-plots"]
    assert plan(args + ["--optimum-data", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "plan")]) == 0
    table = pd.read_csv(tmp_path / "plan" / "plan.csv")
    lr = table[table["quantity"] == "lr"].iloc[0]
    assert 0 < lr["lo"] < lr["median"] < lr["hi"]
    manifest = json.loads((tmp_path / "plan" / "manifest.json").read_text())
    assert manifest["optimum_model"] == "gp" and manifest["laws"]["lr"] == {"law": "straight", "weights": {"straight": 1.0}}
    capsys.readouterr()
    assert plan(args + ["--out", str(tmp_path / "refused")]) == 2            # blog-partII: best runs only
    err = capsys.readouterr().err.strip()
    assert "needs a sweep" in err and "\n" not in err and not (tmp_path / "refused").exists()


def bent_cells(e: float = 0.3, seed: int = 4) -> pd.DataFrame:
    """Estimates m_j of η* at 6 sizes × 2 token counts whose law bends in log N (curvature ``e`` per log
    unit², about log N = log 3e8), each with standard error 0.03; every other column as ``gp_cells``."""
    N, D = (a.ravel() for a in np.meshgrid(1e8 * 2.0 ** np.arange(6), [2e9, 8e9], indexing="ij"))
    x_N = np.log(N / 3e8)
    truth = np.log(1.79) - 0.713 * np.log(N) + 0.307 * np.log(D) + e * x_N**2
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"N": N, "D": D, "best_lr": np.exp(truth), "best_B": 2.0**18, "log_lr": truth
                         + 0.03 * rng.standard_normal(N.size), "se_lr": 0.03, "log_B": np.log(2.0**18), "se_B": 0.1})


def test_the_curved_law_follows_a_bend_the_straight_law_cannot_extrapolate():
    cells = bent_cells()
    q = measured_data(cells, "lr", source="sim")
    largest = q.log_N == q.log_N.max()
    train = q.subset(~largest)
    fitter, truth = Fitter(CONFIG), cells["log_lr"].to_numpy()[largest]
    covered = {}
    for law in ("measured", "measured-curved"):
        fit = fitter.fit(law, train)
        assert fit.diagnostics.ok
        draws = fit.log_draws(np.exp(q.log_N[largest]), np.exp(q.log_D[largest]))
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        covered[law] = (lo < truth) & (truth < hi)
    assert covered["measured-curved"].all() and not covered["measured"].any()
    fit = fitter.fit("measured-curved", q)
    e = fit.coefficients(ci_prob=0.9).set_index("param").loc["e_NN"]
    assert e["lo"] < 0.3 < e["hi"] and e["hi"] - e["lo"] < 0.2                 # the bend, measured
    # the raw coefficients rebuild the law's mean draw by draw, and b_N is its slope at the table's centre
    k, logN, logD = fit.coefficient_draws(), np.log([5e7, 6e9]), np.log([1e9, 3e10])
    rebuilt = (k["intercept"][:, None] + k["b_lin"][:, None] * logN + k["c_lin"][:, None] * logD
               + k["e_NN"][:, None] * logN**2 + k["f_DD"][:, None] * logD**2)
    np.testing.assert_allclose(rebuilt, fit.log_draws(np.exp(logN), np.exp(logD), noise=False), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(k["b_N"], k["b_lin"] + 2 * k["e_NN"] * fit.centers.log_N, rtol=1e-9)


def test_curved_measured_law_log_likelihood_and_prior_equal_pymc():
    q = measured_data(bent_cells(), "lr", source="sim")
    spec = specs.get("measured-curved")
    fit = Fitter(dataclasses.replace(CONFIG, draws=200)).fit("measured-curved", q)
    model = spec.build(q, fit.centers)
    tree = xr.DataTree.from_dict({"posterior": fit.posterior})
    ours = spec.log_likelihood(fit.posterior, fit.centers, fit.n_levels, q)
    theirs = pm.compute_log_likelihood(tree, model=model, progressbar=False)["log_likelihood"]["q_obs"]
    np.testing.assert_allclose(ours, theirs.transpose("chain", "draw", "cell").values.reshape(ours.shape), rtol=1e-6)
    prior = pm.compute_log_prior(tree, model=model, progressbar=False)["log_prior"]
    mine = spec.log_prior(fit.posterior, fit.centers)
    assert set(mine) == set(prior.data_vars) == {"a", "b", "c", "e", "f", "sigma"}
    for var, values in mine.items():
        np.testing.assert_allclose(values, prior[var].values.reshape(values.shape), rtol=1e-6, atol=1e-6, err_msg=var)


def test_law_forms_are_the_measured_specs_and_the_command_line_offers_each():
    from bayes_scaling.cli.common import LAW_FORMS
    from bayes_scaling.optimum.specs.measured import law_forms

    assert law_forms() == {"straight": "measured", "curved": "measured-curved"}
    assert (*law_forms(), "auto") == LAW_FORMS
    gp = catalog.kinds()["gp"]
    assert gp.law_spec(catalog.RunOptions(law_form="curved")) == "measured-curved"
    assert "e" in catalog.prior_specs(["gp"], catalog.RunOptions(law_form="curved"))["gp"].priors()
    assert "e" not in catalog.prior_specs(["gp"])["gp"].priors()


def test_fit_cli_fits_the_curved_gp_law_and_takes_only_its_priors(tmp_path, capsys):
    from bayes_scaling.fit import main as fit

    runs, _ = known_sweep(seed=2)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    args = ["--data", str(tmp_path / "runs.csv"), "--models", "gp", "--draws", "200", "--tune", "300", "--chains", "2",
            "--workers", "1", "--no-plots", "--prior", "e=normal(0,0.1)"]
    assert fit(args + ["--law-form", "curved", "--out", str(tmp_path / "curved")]) == 0
    exps = pd.read_csv(tmp_path / "curved" / "exponents.csv")
    assert {"e_NN", "f_DD", "b_lin", "c_lin"} <= set(exps["param"]) and "e_NN" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "curved" / "manifest.json").read_text())
    assert manifest["run_level"]["gp"]["laws"]["lr"] == {"law": "curved", "weights": {"curved": 1.0}}
    fitted = OptimumFit.from_netcdf(tmp_path / "curved" / "posterior" / "gp_lr.nc")
    e = fitted.posterior["e"].values.ravel()                           # the tight prior reached the law
    assert np.std(e) < 0.1 and manifest["model_options"]["priors"]["e"] == str(parse_prior("e=normal(0,0.1)")[1])
    assert OptimumFit.from_netcdf(tmp_path / "curved" / "posterior" / "gp_lr.nc").spec.name == "measured-curved"
    capsys.readouterr()
    assert fit(args + ["--out", str(tmp_path / "straight")]) == 2          # a straight law has no e
    err = capsys.readouterr().err.strip()
    assert "--prior e: no chosen model" in err and "--law-form curved" in err and "\n" not in err
    assert not (tmp_path / "straight").exists()
    assert fit(["--data", str(tmp_path / "runs.csv"), "--models", "ols", "--law-form", "curved",
                "--out", str(tmp_path / "ols")]) == 2                 # no gp: the form would go unused
    err = capsys.readouterr().err.strip()
    assert "--law-form" in err and "gp" in err and "\n" not in err and not (tmp_path / "ols").exists()


def test_leave_one_n_out_stacking_keeps_the_curved_law_where_the_estimates_bend():
    from bayes_scaling.surface.gp import choose_law

    q = measured_data(bent_cells(e=0.3), "lr", source="sim")
    fit, weights = choose_law(("measured", "measured-curved"), q, Fitter(CONFIG))
    assert set(weights) == {"measured", "measured-curved"} and sum(weights.values()) == pytest.approx(1, abs=0.01)
    assert fit.spec.name == "measured-curved" and weights["measured-curved"] > 0.9
    straight, weights = choose_law(("measured", "measured-curved"), measured_data(bent_cells(e=0.0), "lr"), Fitter(CONFIG))
    assert straight.spec.name == "measured" and weights["measured"] > 0.5              # no bend: the straight law
    two_sizes = q.subset(q.log_N <= np.sort(np.unique(q.log_N))[1])
    with pytest.raises(InputError, match="at least 3 model sizes"):
        choose_law(("measured", "measured-curved"), two_sizes, Fitter(CONFIG))
    alone, one = choose_law(("measured",), q, Fitter(CONFIG))
    assert alone.spec.name == "measured" and one == {"measured": 1.0}


def test_fit_cli_law_form_auto_says_which_form_each_optimum_kept(tmp_path, capsys):
    from bayes_scaling.fit import main as fit

    runs, _ = known_sweep(seed=2)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    assert fit(["--data", str(tmp_path / "runs.csv"), "--models", "gp", "--draws", "200", "--tune", "300",
                "--chains", "2", "--workers", "1", "--no-plots", "--law-form", "auto", "--out", str(tmp_path / "o")]) == 0
    laws = json.loads((tmp_path / "o" / "manifest.json").read_text())["run_level"]["gp"]["laws"]
    out = capsys.readouterr().out
    for q, chosen in laws.items():
        assert set(chosen["weights"]) == {"straight", "curved"} and sum(chosen["weights"].values()) == pytest.approx(1, abs=0.01)
        assert chosen["law"] == max(chosen["weights"], key=chosen["weights"].get)
        spec = OptimumFit.from_netcdf(tmp_path / "o" / "posterior" / f"gp_{q}.nc").spec
        assert spec.form == chosen["law"] and f"{q} {chosen['law']} (" in out
