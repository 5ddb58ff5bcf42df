"""Compute planner: draw-by-draw propagation, FLOP models, the CLI and its bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.laws_common import fit_law, quantiles
from bayes_scaling.laws_parametric import ParametricLaw
from bayes_scaling.loss_data import load_chinchilla
from bayes_scaling.plan import QUANTITIES, FlopsModel, compute_optimal, main, make_plan
from bayes_scaling.sampling import SamplerConfig

BUDGETS = np.array([1e21, 1e23])


class PowerLawOptimum:
    """Stand-in for an OptimumFit: q*(N, D) = k·N^b·D^c, no noise — so propagation is checkable."""

    def __init__(self, k: float, b: float, c: float) -> None:
        self.k, self.b, self.c = k, b, c

    def sample_paired(self, N, D, rng):
        return self.k * np.asarray(N) ** self.b * np.asarray(D) ** self.c


STUBS = {"lr": PowerLawOptimum(3e3, -0.3, -0.25), "batch_size": PowerLawOptimum(1e-2, 0.1, 0.4)}


@pytest.fixture(scope="module")
def loss_fit():
    return fit_law(ParametricLaw(load_chinchilla()), SamplerConfig(draws=400, tune=400, chains=2, seed=3))


def test_plan_is_propagated_draw_by_draw(loss_fit):
    plan = make_plan(BUDGETS, loss_fit, STUBS, ci_prob=0.9)
    p = loss_fit.law.params(loss_fit.posterior)
    N_closed, _ = loss_fit.law.optimal(loss_fit.posterior, BUDGETS)
    for t, C in enumerate(BUDGETS):
        d = plan.draws[float(C)]
        assert d["N_opt"].shape == (loss_fit.n_draws,)
        np.testing.assert_allclose(d["N_opt"], N_closed[:, t])
        np.testing.assert_allclose(6 * d["N_opt"] * d["D_opt"], C, rtol=1e-10)
        np.testing.assert_allclose(d["tokens_per_param"], d["D_opt"] / d["N_opt"])
        expected_loss = p["E"] + p["A"] / d["N_opt"] ** p["alpha"] + p["B"] / d["D_opt"] ** p["beta"]
        np.testing.assert_allclose(d["loss"], expected_loss)
        for q in ("lr", "batch_size"):
            np.testing.assert_allclose(d[q], STUBS[q].sample_paired(d["N_opt"], d["D_opt"], None))
        rows = plan.table[plan.table["compute"] == C].set_index("quantity")
        assert list(rows.index) == list(QUANTITIES)
        for q in QUANTITIES:
            np.testing.assert_allclose(rows.loc[q, ["median", "lo", "hi"]].to_numpy(float), quantiles(d[q], 0.9))
    # propagating draws is not plugging in medians: the lr interval reflects N*, D* uncertainty
    lr = plan.table.set_index(["compute", "quantity"]).loc[(1e23, "lr")]
    assert lr["hi"] > lr["lo"] * 1.01


def test_max_n_caps_the_model(loss_fit):
    N, D = compute_optimal(loss_fit, BUDGETS, FlopsModel(), max_N=5e9)
    assert np.all(N <= 5e9) and np.all(N[:, 1] == 5e9)
    np.testing.assert_allclose(6 * N * D, np.broadcast_to(BUDGETS, N.shape))


def test_deepseek_flops_model(loss_fit):
    # with no attention term (seq_len 0) M = 6N, and the numerical optimum is the closed form
    N_num, _ = compute_optimal(loss_fit, BUDGETS, FlopsModel("deepseek", seq_len=0))
    N_closed, _ = compute_optimal(loss_fit, BUDGETS, FlopsModel("6ND"))
    np.testing.assert_allclose(N_num, N_closed, rtol=1e-6)
    flops = FlopsModel("deepseek", seq_len=4096)
    N, D = compute_optimal(loss_fit, BUDGETS, flops)
    np.testing.assert_allclose(flops.per_token(N) * D, np.broadcast_to(BUDGETS, N.shape), rtol=1e-10)
    p = loss_fit.law.params(loss_fit.posterior)

    def loss(n):
        return p["A"][:, None] / n ** p["alpha"][:, None] + p["B"][:, None] / (BUDGETS / flops.per_token(n)) ** p["beta"][:, None]

    assert np.all(loss(N) <= loss(N * 1.02)) and np.all(loss(N) <= loss(N / 1.02))


def test_cli_writes_plan(tmp_path, capsys):
    out = tmp_path / "plan"
    rc = main(["--compute", "1e21", "--compute", "1e23", "--draws", "300", "--tune", "300", "--chains", "2",
               "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out / "plan.csv")
    assert len(table) == 2 * len(QUANTITIES) and (table["lo"] <= table["median"]).all() and (table["median"] <= table["hi"]).all()
    draws = pd.read_csv(out / "plan_draws.csv")
    at = draws[draws["compute"] == 1e21]
    row = table[(table["compute"] == 1e21) & (table["quantity"] == "lr")].iloc[0]
    np.testing.assert_allclose(np.median(at["lr"]), row["median"], rtol=1e-6)
    assert (out / "plan.png").stat().st_size > 10_000 and (out / "manifest.json").exists()
    console = capsys.readouterr().out
    assert "DeepSeek" in console and "20 tokens/param" in console and "C = 1e+21" in console


@pytest.mark.parametrize("argv, message", [
    (["--compute=-1e21"], "positive"),
    (["--compute", "1e15"], "below the smallest training run"),
    (["--compute", "1e21", "--max-N", "10"], "--max-N"),
    (["--compute", "1e21", "--loss-law-data", "nope"], "neither a bundled"),
    (["--compute", "1e21", "--ci-prob", "2"], "--ci-prob"),
    (["--compute", "1e21", "--optimum-data", "nope"], "nope"),
    (["--compute", "1e21", "--optimum-model", "nope"], "--optimum-model"),
])
def test_cli_bad_input(tmp_path, capsys, argv, message):
    out = tmp_path / "plan"
    assert main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not out.exists()
