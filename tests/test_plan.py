"""Compute planner: draw-by-draw propagation, FLOP models, the CLI and its bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import assert_manifest

from bayes_scaling.laws.base import fit_law
from bayes_scaling.math.draws import quantiles
from bayes_scaling.laws.chinchilla import ParametricLaw
from bayes_scaling.inputs.loss_tables import load_chinchilla
from bayes_scaling.plan import main
from bayes_scaling.planning.plan import QUANTITIES, FlopsModel, compute_optimal, make_plan
from bayes_scaling.inference.config import SamplerConfig

BUDGETS = np.array([1e21, 1e23])


class PowerLawOptimum:
    """Stand-in for an OptimumFit: q*(N, D) = k·N^b·D^c, no noise — so propagation is checkable."""

    couples = False             # each optimum drawn from its own law

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
    assert (out / "plan.png").stat().st_size > 10_000
    assert_manifest(out, "plan")
    console = capsys.readouterr().out
    assert "DeepSeek" in console and "20 tokens/param" in console and "C = 1e+21" in console


def test_cli_plans_with_the_joint_law(tmp_path, capsys):
    """plan --optimum-model joint: the planned (η, B) pairs are the joint law's draws (one NUTS run
    serves both optima), and the console says they were drawn jointly, with their correlation."""
    out = tmp_path / "plan"
    rc = main(["--compute", "1e21", "--optimum-model", "joint", "--draws", "300", "--tune", "300", "--chains", "2",
               "--workers", "1", "--no-plots", "--out", str(out)])
    assert rc == 0
    draws = pd.read_csv(out / "plan_draws.csv")
    corr = np.corrcoef(np.log(draws["lr"]), np.log(draws["batch_size"]))[0, 1]
    console = capsys.readouterr().out
    assert f"drawn jointly from one law of both: correlation of their log draws {corr:+.2f}" in console
    diagnostics = dict(line.split(": ", 1) for line in console.splitlines() if line.startswith("diagnostics "))
    assert diagnostics["diagnostics lr"] == diagnostics["diagnostics batch_size"]     # one NUTS run served both


@pytest.mark.parametrize("argv, message", [
    (["--compute=-1e21"], "positive"),
    (["--compute", "1e15"], "below the smallest training run"),
    (["--compute", "1e21", "--max-N", "10"], "--max-N"),
    (["--compute", "1e21", "--loss-law-data", "nope"], "neither a bundled"),
    (["--compute", "1e21", "--ci-prob", "2"], "--ci-prob"),
    (["--compute", "1e21", "--optimum-data", "nope"], "nope"),
    (["--compute", "1e21", "--optimum-model", "nope"], "--optimum-model"),
    (["--compute", "1e21", "--lr", "1e-3"], "needs a loss surface"),
    (["--compute", "1e21", "--surface", "no/such.nc"], "--surface no/such.nc: no such file"),
    (["--compute", "1e21", "--surface", "README.md", "--batch-tokens", "0"], "--batch-tokens 0: must be a positive"),
    (["--compute", "1e21", "--surface", "README.md"], "not a surface posterior"),
])
def test_cli_bad_input(tmp_path, capsys, argv, message):
    out = tmp_path / "plan"
    assert main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not out.exists()


def test_planner_flops_are_the_models_flops():
    """The planner's M(N) is the model's own FLOPs per token (models.flops owns both): for a GPT of
    L layers, width d = aspect·L and N = 12·L·d², DeepSeek's M = 72·L·d² + 12·L·d·l_seq."""
    from models.gpt import GPTConfig

    for n_layer, aspect, seq_len in ((4, 64, 2048), (24, 128, 4096), (80, 128, 8192)):
        cfg = GPTConfig(n_layer=n_layer, n_head=aspect * n_layer // 64, n_embd=aspect * n_layer, block_size=seq_len)
        N = 12.0 * n_layer * cfg.n_embd**2
        planner = FlopsModel("deepseek", seq_len=seq_len, aspect=aspect).per_token(np.array([N]))[0]
        assert planner == pytest.approx(cfg.flops_per_token(seq_len, kind="deepseek"), rel=1e-12)
        hand = 72 * n_layer * cfg.n_embd**2 + 12 * n_layer * cfg.n_embd * seq_len
        assert planner == pytest.approx(hand, rel=1e-12)
    assert FlopsModel("6ND").per_token(np.array([1e9]))[0] == 6e9


def test_the_commands_offer_the_flops_models_the_planner_knows():
    from bayes_scaling.cli import common
    from bayes_scaling.planning import plan

    assert common.FLOPS_MODELS == plan.FLOPS_MODELS
