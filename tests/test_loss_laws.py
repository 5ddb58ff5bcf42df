"""Loss laws: Epoch reproduction, parameter recovery from simulated data, the fit entry point."""

from __future__ import annotations

import contextlib
import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import assert_manifest

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import fit_law
from bayes_scaling.laws.critical_batch import CriticalBatchLaw
from bayes_scaling.laws.envelope import EnvelopeLaw, lower_envelope
from bayes_scaling.laws.isoflop import IsoflopLaw
from bayes_scaling.laws.kaplan import KaplanLaw
from bayes_scaling.laws.chinchilla import EPOCH_REFERENCE, ParametricLaw
from bayes_scaling.inputs.loss_tables import assign_budgets, load_chinchilla, load_loss_table, load_porian, runs_to_loss_table
from bayes_scaling.fit import main
from bayes_scaling.inference.config import SamplerConfig

CONFIG = SamplerConfig(draws=1000, tune=1000, chains=2, seed=1)
SMALL = SamplerConfig(draws=500, tune=500, chains=2, seed=2)


@pytest.fixture(scope="module")
def chinchilla_fit():
    return fit_law(ParametricLaw(load_chinchilla()), CONFIG)


def test_reproduces_epoch_estimates(chinchilla_fit):
    """Posterior medians on Epoch's extraction fall inside Epoch's published intervals."""
    assert chinchilla_fit.diagnostics.ok, chinchilla_fit.diagnostics.describe()
    table = chinchilla_fit.param_table(0.9).set_index("param")
    for name, (_, lo, hi) in EPOCH_REFERENCE.items():
        assert lo <= table.loc[name, "median"] <= hi, (name, table.loc[name].to_dict())
    # the interval is a real interval around the median, not a point
    assert (table["lo"] < table["median"]).all() and (table["median"] < table["hi"]).all()


def test_compute_optimal_closed_form_is_the_minimum(chinchilla_fit):
    """N* from the closed form minimises L(N, C/(6N)) for every draw (checked on a fine grid)."""
    law, post = chinchilla_fit.law, chinchilla_fit.posterior
    C = np.array([1e21])
    N_opt, D_opt = law.optimal(post, C)
    np.testing.assert_allclose(6 * N_opt * D_opt, 1e21, rtol=1e-10)
    grid = N_opt[:50, :1] * np.exp(np.linspace(-0.5, 0.5, 201))[None, :]
    p = law.params(post)
    loss = p["A"][:50, None] / grid ** p["alpha"][:50, None] + p["B"][:50, None] / (1e21 / (6 * grid)) ** p["beta"][:50, None]
    assert np.all(np.abs(np.argmin(loss, axis=1) - 100) <= 1)


def simulate_parametric(truth: dict[str, float], n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(5e7), np.log(2e10), n))
    C = np.exp(rng.uniform(np.log(1e18), np.log(1e22), n))
    D = C / (6 * N)
    L = truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]
    return pd.DataFrame({"N": N, "D": D, "C": C, "loss": L * np.exp(0.01 * rng.standard_t(4, n))})


def test_recovers_known_parametric_law():
    truth = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.33, "beta": 0.30}
    fit = fit_law(ParametricLaw(simulate_parametric(truth)), SMALL)
    table = fit.param_table(0.98).set_index("param")
    for name, value in truth.items():
        assert table.loc[name, "lo"] <= value <= table.loc[name, "hi"], (name, table.loc[name].to_dict())
        assert abs(table.loc[name, "median"] / value - 1) < 0.25, name


def test_isoflop_recovers_exponent():
    rng = np.random.default_rng(3)
    a, rows = 0.45, []
    for C in np.logspace(17, 20, 7):
        n_opt = 0.1 * C**a
        for N in n_opt * np.exp(np.linspace(-1.5, 1.5, 9)):
            log_loss = np.log(5.0 * C**-0.05) + 0.05 * np.log(N / n_opt) ** 2
            rows.append({"N": N, "D": C / (6 * N), "C": C, "loss": np.exp(log_loss + rng.normal(0, 0.003))})
    law = IsoflopLaw(pd.DataFrame(rows))
    fit = fit_law(law, SMALL)
    a_draws = law.params(fit.posterior)["a"]
    assert np.quantile(a_draws, 0.01) < a < np.quantile(a_draws, 0.99)
    assert abs(np.median(a_draws) - a) < 0.03
    n_opt, d_opt = law.optimal(fit.posterior, np.array([1e19]))
    assert abs(np.log(np.median(n_opt) / (0.1 * 1e19**a))) < 0.15
    np.testing.assert_allclose(6 * n_opt * d_opt, 1e19)


def test_envelope_recovers_exponents():
    """Runs scattered around the compute-optimal N*(C) of a known law: the envelope finds its exponent."""
    rng = np.random.default_rng(4)
    E, A, B, alpha, beta = 1.7, 400.0, 1500.0, 0.34, 0.28
    C = np.exp(rng.uniform(np.log(1e18), np.log(1e22), 400))
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (C / 6) ** (beta / (alpha + beta)) * np.exp(rng.normal(0, 0.7, C.size))
    loss = E + A / N**alpha + B / (C / (6 * N)) ** beta + rng.normal(0, 0.002, C.size)
    table = pd.DataFrame({"N": N, "D": C / (6 * N), "C": C, "loss": loss})
    front = lower_envelope(table)
    assert np.all(np.diff(front["loss"]) < 0) and np.all(np.diff(front["C"]) >= 0)
    fit = fit_law(EnvelopeLaw(table), SMALL)
    p = fit.law.params(fit.posterior)
    a_true = beta / (alpha + beta)
    assert np.quantile(p["a"], 0.01) < a_true < np.quantile(p["a"], 0.99)
    assert abs(np.median(p["a"] + p["b"]) - 1) < 0.02


def test_kaplan_recovers_known_law():
    rng = np.random.default_rng(5)
    truth = {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13}
    N = np.exp(rng.uniform(np.log(1e6), np.log(1e10), 150))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e11), 150))
    L = ((truth["N_c"] / N) ** (truth["alpha_N"] / truth["alpha_D"]) + truth["D_c"] / D) ** truth["alpha_D"]
    table = pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": L * np.exp(rng.normal(0, 0.005, N.size))})
    fit = fit_law(KaplanLaw(table), SMALL)
    est = fit.param_table(0.98).set_index("param")
    for name, value in truth.items():
        assert est.loc[name, "lo"] <= value <= est.loc[name, "hi"], (name, est.loc[name].to_dict())


def simulate_steps(b_star: float = 2e8, alpha_b: float = 0.21, seed: int = 6) -> pd.DataFrame:
    """Steps to reach each target loss at each batch size under Kaplan's B_crit(L) law."""
    rng, rows = np.random.default_rng(seed), []
    for L in (3.0, 3.3, 3.6, 4.0, 4.5, 5.0):
        b_crit = b_star / L ** (1 / alpha_b) * np.exp(rng.normal(0, 0.1))
        s_min = 1e4 * (L - 2.5) ** -1.5
        for B in 2.0 ** np.arange(15, 24):
            steps = s_min * (1 + b_crit / B) * np.exp(rng.normal(0, 0.03))
            rows.append({"target_loss": L, "batch_size": B, "steps": steps})
    return pd.DataFrame(rows)


def test_critical_batch_recovers_b_star_and_alpha_b():
    b_star, alpha_b = 2e8, 0.21
    fit = fit_law(CriticalBatchLaw(simulate_steps(b_star, alpha_b)), SMALL)
    est = fit.param_table(0.98).set_index("param")
    assert est.loc["alpha_B", "lo"] <= alpha_b <= est.loc["alpha_B", "hi"]
    assert est.loc["B_star", "lo"] <= b_star <= est.loc["B_star", "hi"]
    # (S/S_min − 1)(E/E_min − 1) = 1 holds on the fitted curve
    law, j = fit.law, 2
    S = law.steps(fit.posterior, j, np.array([1e5]))[:, 0]
    s_min = law.params(fit.posterior)[f"S_min[L={law.targets[j]:g}]"]
    e_min = law.params(fit.posterior)[f"E_min[L={law.targets[j]:g}]"]
    np.testing.assert_allclose((S / s_min - 1) * (1e5 * S / e_min - 1), 1.0, rtol=1e-9)


def test_porian_default_setting_and_filters():
    table = load_porian()
    assert len(table) == 121 and table["budget"].nunique() == 12
    np.testing.assert_allclose(6 * table["N"] * table["D"], table["C"], rtol=1e-6)
    owt, label, _ = load_loss_table("porian:dataset=owt2,hparams=base,decay=kaplan,warmup=long")
    assert len(owt) == 132 and "dataset=owt2" in label
    with pytest.raises(InputError, match="no rows"):
        load_loss_table("porian:dataset=nope")
    with pytest.raises(InputError, match="unknown filter"):
        load_porian(colour="red")


def test_chinchilla_budgets_group_the_isoflop_runs():
    sizes = assign_budgets(load_chinchilla()).groupby("budget").size()
    big = sizes[sizes >= 8].index.to_numpy()
    for nominal in (6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21):  # Chinchilla's iso-FLOP budgets
        assert np.min(np.abs(np.log(big / nominal))) < np.log(1.2), nominal


def test_bad_run_table_names_the_row(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"N": [1e8, -2e8, 3e8], "D": [1e9, 1e9, 1e9], "loss": [3.0, 2.9, 2.8]}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"runs.csv:3: column 'N'"):
        load_loss_table(path)
    failed = runs_to_loss_table(pd.DataFrame({"N": [1e8, 2e8, 3e8, 4e8], "D": [1e9] * 4,
                                              "loss": [3.0, np.nan, 2.8, 2.7]}))
    assert len(failed) == 3  # a run without a final loss is dropped, not an error


def _law(tmp_path, **kw) -> list[str]:
    """The argv of ``python -m bayes_scaling.fit --law …`` with small draws."""
    base = dict(law="chinchilla", data=None, out=tmp_path / "out", draws=300, tune=300, chains=2,
                seed=0, sampler="nutpie", ci_prob=0.9)
    opts = {**base, **kw}
    argv = [a for k, v in opts.items() if v is not None for a in (f"--{k.replace('_', '-')}", str(v))]
    return argv


def test_run_law_writes_artifacts(tmp_path, capsys):
    assert main(_law(tmp_path, law="isoflop")) == 0
    out = tmp_path / "out"
    params = pd.read_csv(out / "law_params.csv")
    assert {"param", "median", "lo", "hi", "reference"} <= set(params.columns)
    assert 0.4 < params.set_index("param").loc["a", "median"] < 0.6
    manifest = assert_manifest(out, "fit")
    assert manifest["law"] == "isoflop" and manifest["data"]["source"].startswith("porian")
    assert {"posterior/isoflop.nc", "optimal.csv", "plots/isoflop_curves.png"} <= set(manifest["files"])
    console = capsys.readouterr().out
    assert "diagnostics:" in console and "Chinchilla Method 2" in console and "tokens/param" in console


def test_run_law_kaplan_on_a_steps_table_fits_the_critical_batch(tmp_path, capsys):
    path = tmp_path / "steps.csv"
    simulate_steps().to_csv(path, index=False)
    assert main(_law(tmp_path, law="kaplan", data=str(path))) == 0
    params = pd.read_csv(tmp_path / "out" / "law_params.csv").set_index("param")
    assert 0.15 < params.loc["alpha_B", "median"] < 0.27
    assert (tmp_path / "out" / "plots" / "critical_batch.png").exists()
    bad = simulate_steps().assign(steps=lambda f: f["steps"].where(f.index != 4, -1.0))
    bad.to_csv(path, index=False)
    assert main(_law(tmp_path, law="kaplan", data=str(path), out=tmp_path / "bad")) == 2
    assert re.search(r"steps.csv:6: column 'steps'", capsys.readouterr().err)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("kw, message", [
    (dict(law="nope"), "--law"),
    (dict(data="no-such-table"), "neither a bundled"),
    (dict(ci_prob=1.5), "--ci-prob"),
    (dict(draws=0), "--draws"),
])
def test_run_law_rejects_bad_input_and_writes_nothing(tmp_path, capsys, kw, message):
    with pytest.raises(SystemExit) if kw.get("law") == "nope" else contextlib.nullcontext():   # argparse's choices
        assert main(_law(tmp_path, **kw)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_logsumexp_terms_is_a_stable_elementwise_logsumexp():
    """The loss laws' log Σ exp over their terms equals SciPy's logsumexp over the stacked terms,
    broadcasting a scalar term, and stays finite where the terms are ±700 (exp would overflow)."""
    import pytensor
    import pytensor.tensor as pt
    from scipy.special import logsumexp

    from bayes_scaling.laws.base import logsumexp_terms

    x, y = pt.dvector("x"), pt.dvector("y")
    z = pt.dscalar("z")
    f = pytensor.function([x, y, z], logsumexp_terms(x, y, z))
    xv = np.array([0.0, -3.0, 700.0, -700.0, 2.5])
    yv = np.array([1.0, 4.0, 699.0, -701.0, 2.5])
    got = f(xv, yv, 0.3)
    expected = logsumexp(np.stack([xv, yv, np.full(5, 0.3)]), axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.all(np.isfinite(got))
