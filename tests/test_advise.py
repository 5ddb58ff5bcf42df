"""The experiment advisor: the importance-sampling update against exact refits, re-sweeps that add
nothing, the budget, the sweep spec it writes, and its command line end to end and on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal, truncnorm

from bayes_scaling.advise import main
from bayes_scaling.errors import InputError
from bayes_scaling.evaluation.simulate import TrueLaw, simulate_best_runs
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.math.censored import bvn_cdf, repeat_logp
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.spec import Centers, Targets, get, per_level
from bayes_scaling.planning import advise as adv
from bayes_scaling.planning.plan import FlopsModel
from training.plan import build_plan, load_spec

LR = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.12)
BATCH = TrueLaw(intercept=2.0, b=0.1, c=0.4, sigma=0.12)
LR_GRID = Grid.parse("2^-14:2^-2:0.5")
B_GRID = Grid.parse("2^10:2^24:0.5")
SIZES = np.array([3e7, 1e8, 3e8])
TOKENS = np.geomspace(1e9, 1e10, 3)
CONFIG = SamplerConfig(draws=500, tune=500, chains=2, seed=3)
TARGET = [(3e9, 1e11)]


@pytest.fixture(scope="module")
def table():
    best, _ = simulate_best_runs(LR, BATCH, sizes=SIZES, tokens=TOKENS, lr_grid=LR_GRID, batch_grid=B_GRID, seed=5)
    return best


@pytest.fixture(scope="module")
def fitter():
    return Fitter(CONFIG)


@pytest.fixture(scope="module")
def lr_fit(table, fitter):
    return fitter.fit("quantized", table.quantity("lr"))


def _candidate(N, D, label="c"):
    return adv.Candidate(N, D, {"lr": np.log(LR_GRID.values), "batch_size": np.log(B_GRID.values)}, 20, label)


def test_bivariate_normal_cdf_and_repeat_likelihood_against_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, k = rng.normal(0, 1.5, 2)
        rho = rng.uniform(-0.9, 0.99)
        assert bvn_cdf(h, k, rho) == pytest.approx(multivariate_normal([0, 0], [[1, rho], [rho, 1]]).cdf([h, k]), abs=2e-6)
    assert bvn_cdf(np.inf, 0.3, 0.5) == pytest.approx(0.617911, abs=1e-6) and bvn_cdf(-np.inf, 0.3, 0.5) == 0.0
    # P(u2 in B | u1 in A) by simulation: u = z + jitter, one z shared
    mu, sigma, jitter = 0.1, 0.3, 0.1
    z = rng.normal(mu, sigma, 400_000)
    u1, u2 = z + jitter * rng.standard_normal(z.size), z + jitter * rng.standard_normal(z.size)
    a, b = (-0.2, 0.3), (0.0, np.inf)
    inside = (u1 > a[0]) & (u1 < a[1])
    empirical = np.mean((u2[inside] > b[0]) & (u2[inside] < b[1]))
    scale = np.hypot(sigma, jitter)
    ours = np.exp(repeat_logp(mu, scale, sigma**2 / scale**2, a[0], a[1], b[0], b[1]))
    assert ours == pytest.approx(empirical, abs=0.005)


def test_truncated_normal_draws_match_scipy_in_either_tail():
    rng = np.random.default_rng(1)
    for lo, hi in ((-np.inf, -1.0), (2.0, 3.5), (-0.5, np.inf), (6.0, np.inf)):
        x = adv.truncated_normal(np.zeros(50_000), np.ones(50_000), lo, hi, rng)
        assert np.all((x > lo) & (x < hi))
        assert x.mean() == pytest.approx(truncnorm(lo, hi).mean(), abs=0.02)


def test_a_new_size_gets_one_fresh_deviation_per_draw_shared_by_its_cells():
    """A candidate and a target at one new N are one model size: the same per-N slope in each draw
    (hierarchical) and the same GP deviation (gp-slopes); a different new N gets its own."""
    rng = np.random.default_rng(2)
    S, levels = 400, np.array([1e8, 3e8])
    post = __import__("xarray").Dataset({
        "a": (("chain", "draw"), rng.normal(size=(1, S))), "b": (("chain", "draw"), rng.normal(size=(1, S))),
        "c": (("chain", "draw"), rng.normal(size=(1, S))), "d": (("chain", "draw"), rng.normal(size=(1, S))),
        "tau_c": (("chain", "draw"), np.full((1, S), 0.3)),
        "c_n": (("chain", "draw", "N_level"), rng.normal(size=(1, S, 2))),
        "delta_n": (("chain", "draw", "N_level"), 0.3 * rng.normal(size=(1, S, 2)))})
    centers = Centers(float(np.log(2e8)), float(np.log(3e9)), -6.0)
    log_N = np.log([3e9, 3e9, 1e10, 1e8])
    targets = Targets.at(centers, log_N, np.log([1e9, 1e11, 1e11, 1e10]))
    slopes = per_level(post, "c_n", "tau_c", post["c"].values.ravel(), targets.levels(levels, S), rng)
    assert np.array_equal(slopes[:, 0], slopes[:, 1]) and not np.allclose(slopes[:, 0], slopes[:, 2])
    assert np.array_equal(slopes[:, 3], post["c_n"].values[0, :, 0])
    dev = get("gp-slopes").deviations(post, centers, levels, targets, rng)
    assert np.array_equal(dev[:, 0], dev[:, 1]) and np.array_equal(dev[:, 3], post["delta_n"].values[0, :, 0])
    assert 0.5 < np.corrcoef(dev[:, 0], dev[:, 2])[0, 1] < 0.999      # nearby new sizes are correlated


def test_importance_sampling_update_agrees_with_an_exact_refit(table, fitter, lr_fit):
    """For simulated outcomes of one new cell, the reweighted posterior of the law's mean at the target
    matches NUTS on the table plus that cell (mean within 0.15 sd, sd within 20 %)."""
    data = table.quantity("lr")
    cand = _candidate(1e9, 3e9)
    prep = adv.simulate(lr_fit, data, [cand], TARGET, n_sims=30, seed=4)
    lw, khat = prep.log_weights([0])
    mean_draws = lr_fit.log_draws([TARGET[0][0]], [TARGET[0][1]], noise=False)[:, 0]
    checked = 0
    for j in np.flatnonzero(khat < 0.5)[:3]:
        w = np.exp(lw[j])
        is_mean = float(np.sum(w * mean_draws))
        is_sd = float(np.sqrt(np.sum(w * (mean_draws - is_mean) ** 2)))
        outcome = {k: v[[0], j] for k, v in prep.outcomes.items()}
        refit = adv._refit_with(lr_fit, data, [cand], outcome, prep.repeats[[0]], fitter)
        exact = refit.log_draws([TARGET[0][0]], [TARGET[0][1]], noise=False)[:, 0]
        assert abs(is_mean - exact.mean()) < 0.15 * exact.std()
        assert is_sd == pytest.approx(exact.std(), rel=0.2)
        checked += 1
    assert checked == 3 and lw.shape[1] == mean_draws.size


def test_a_resweep_of_a_swept_cell_adds_next_to_nothing_but_a_new_cell_does(table, fitter, lr_fit):
    """Re-sweeping an interior cell on its own grid shares its latent optimum: the second look only
    rules out that selection jitter put the first in the wrong cell — a tenth of a new cell's gain at
    σ_sel = 0.05, and nothing as σ_sel → 0. A new cell beyond the data narrows the target's interval."""
    from dataclasses import replace

    data = table.quantity("lr")
    interior = int(np.flatnonzero(np.isfinite(data.lo) & np.isfinite(data.hi))[0])
    repeat = _candidate(float(np.exp(data.log_N[interior])), float(np.exp(data.log_D[interior])), "repeat")
    new = _candidate(1e9, 1e10, "new")
    prep = adv.simulate(lr_fit, data, [repeat, new], TARGET, n_sims=200, seed=6)
    assert prep.repeats.tolist() == [interior, -1]
    dup, fresh = adv.score([prep], [0]), adv.score([prep], [1])
    assert fresh.objective > 0.1 and abs(dup.objective) < 0.15 * fresh.objective
    sharp = replace(data, sigma_sel=0.002)
    sharp_fit = fitter.fit("quantized", sharp)
    prep = adv.simulate(sharp_fit, sharp, [repeat, new], TARGET, n_sims=200, seed=6)
    assert abs(adv.score([prep], [0]).objective) < 0.005 < 0.1 < adv.score([prep], [1]).objective


def test_the_chosen_set_fits_the_budget_and_the_budget_below_every_candidate_is_refused(table, lr_fit):
    data = table.quantity("lr")
    cands = [_candidate(n, d, f"{n:g},{d:g}") for n, d in ((1e9, 1e10), (1e9, 3e10), (3e8, 3e10), (2e9, 2e10))]
    prep = adv.simulate(lr_fit, data, cands, TARGET, n_sims=60, seed=7)
    flops = np.array([c.flops(FlopsModel()) for c in cands])
    for budget in (flops.min() * 1.01, np.sort(flops)[:2].sum() * 1.01, flops.sum()):
        advice = adv.advise([prep], cands, flops, budget, TARGET)
        assert advice.spent <= budget and advice.chosen
        assert all(advice.path[i + 1].objective > advice.path[i].objective for i in range(len(advice.path) - 1))
    with pytest.raises(InputError, match="below the cheapest candidate"):
        adv.advise([prep], cands, flops, flops.min() / 2, TARGET)


def test_candidate_cost_is_runs_times_six_n_d():
    cand = adv.Candidate(1e9, 2e10, {"lr": np.zeros(6), "batch_size": np.zeros(7)}, 42, "x")
    assert cand.flops(FlopsModel()) == pytest.approx(42 * 6 * 1e9 * 2e10)
    assert cand.flops(FlopsModel("deepseek", 4096, 128.0)) > cand.flops(FlopsModel())   # attention FLOPs on top


def test_centred_grid_sits_on_the_lattice_around_the_forecast():
    g = adv.centred_grid(np.log(3e-3), np.log(2.0), 5)
    assert np.allclose(np.diff(g), np.log(2.0)) and np.allclose(g / np.log(2.0), np.round(g / np.log(2.0)))
    assert g[0] < np.log(3e-3) < g[-1] and abs(g[2] - np.log(3e-3)) <= np.log(2.0) / 2 + 1e-12


def test_sweep_spec_cells_become_the_runs_of_a_plan(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('[data]\nsource = "synthetic"\nseq_len = 32\n[grid]\nseeds = [0, 1]\ncells = [\n'
                    '  {params = 2e4, tokens = 40000, lr = [1e-3, 2e-3, 4e-3], batch_tokens = [256, 512]},\n'
                    '  {params = 6e4, tokens = 90000, lr = "2^-8:2^-6:1", batch_tokens = [512]},\n]\n')
    plan = build_plan(load_spec(spec), str(spec))
    assert len(plan.runs) == (3 * 2 + 3 * 1) * 2
    assert {r.config.tokens % 512 for r in plan.runs} == {0}
    sizes = sorted({r.N for r in plan.runs})
    assert len(sizes) == 2 and 1.5e4 < sizes[0] < 3e4
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nparams = [2e4]\n[grid]\ncells = [{params = 2e4, tokens = 4e4, lr = [1e-3], batch_tokens = [64]}]\n')
    with pytest.raises(InputError, match=r"\[model\] must be empty"):
        build_plan(load_spec(bad), str(bad))
    bad.write_text('[grid]\ncells = [{params = 2e4, lr = [1e-3], batch_tokens = [64]}]\n')
    with pytest.raises(InputError, match=r"cells\[0\]: needs exactly one of tokens"):
        build_plan(load_spec(bad), str(bad))


# ----------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def runs_csv(table, tmp_path_factory):
    path = tmp_path_factory.mktemp("advise") / "runs.csv"
    frame = table.frame[["run_id", "N", "D", "B", "lr"]].assign(loss=3.0)
    frame.to_csv(path, index=False)
    return path


def _argv(runs_csv, out, *extra):
    return ["--data", str(runs_csv), "--lr-grid", "2^-14:2^-2:0.5", "--batch-grid", "2^10:2^24:0.5",
            "--models", "quantized", "--target", "3e9,1e11", "--draws", "300", "--tune", "300", "--chains", "2",
            "--sims", "40", "--max-refits", "2", "--quiet", "--out", str(out), *extra]


def test_advise_end_to_end_writes_advice_a_path_a_plot_and_a_spec_the_sweep_accepts(runs_csv, tmp_path, capsys):
    out = tmp_path / "advice"
    base = tmp_path / "base.toml"
    base.write_text('[data]\nsource = "synthetic"\nseq_len = 32\n[train]\nschedule = "cosine"\n[runtime]\nthreads = 1\n')
    assert main(_argv(runs_csv, out, "--budget", "1e22", "--sweep-spec", str(base))) == 0
    console = capsys.readouterr().out
    assert "chosen set" in console and "expected 90% interval" in console
    advice = pd.read_csv(out / "advice.csv")
    assert {"candidate", "flops", "width_before", "width_after", "shrinkage", "gain_per_eflop", "chosen"} <= set(advice)
    assert set(advice["quantity"]) == {"lr", "batch_size"}
    chosen = advice[advice["chosen"]].drop_duplicates("candidate")
    assert 0 < chosen["flops"].sum() <= 1e22
    assert (out / "advice.png").stat().st_size > 0 and (out / "path.csv").exists() and (out / "manifest.json").exists()
    plan = build_plan(load_spec(out / "spec.toml"), "spec.toml")
    assert len({(r.N, r.config.tokens) for r in plan.runs}) == len(chosen)
    assert plan.runs[0].config.schedule == "cosine" and plan.data.seq_len == 32


@pytest.mark.parametrize("extra, message", [
    (["--budget", "1e3"], "below the cheapest candidate"),
    (["--budget", "-1"], "--budget"),
    (["--budget", "1e21", "--target", "3e15,1e11"], "decades beyond"),
    (["--budget", "1e21", "--models", "ols"], "updates a posterior"),
    (["--budget", "1e21", "--sims", "3"], "--sims"),
])
def test_advise_refuses_bad_input_in_one_line_and_writes_nothing(runs_csv, tmp_path, capsys, extra, message):
    out = tmp_path / "advice"
    assert main(_argv(runs_csv, out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not out.exists()


def test_advise_reads_candidates_and_names_a_bad_row(runs_csv, tmp_path, capsys):
    good = tmp_path / "cands.csv"
    good.write_text('N,D,lr,runs\n1e9,1e10,"2^-12:2^-6:1",7\n2e9,1e10,,\n')
    out = tmp_path / "advice"
    assert main(_argv(runs_csv, out, "--budget", "1e21", "--candidates", str(good))) == 0
    advice = pd.read_csv(out / "advice.csv").drop_duplicates("candidate")
    assert advice["runs"].tolist()[0] == 7 and len(advice) == 2
    capsys.readouterr()                                  # the good run's own warnings are not the bad row's
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D\n1e9,1e10\n2e9,-5\n")
    assert main(_argv(runs_csv, tmp_path / "b", "--budget", "1e21", "--candidates", str(bad))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}:3: D" in err[0]
