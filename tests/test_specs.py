"""Every registered optimum model kind: its NumPy log-likelihood and predictive agree with PyMC's own,
its prior draws come from its model, and a kind is one spec file that the whole pipeline picks up."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

from bayes_scaling import catalog
from bayes_scaling.evaluation.calibration import Design, sbc_best_run, sbc_draws, simulate_table
from bayes_scaling.evaluation.simulate import TrueLaw, simulate_best_runs
from bayes_scaling.fit import main
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.compare import compare
from bayes_scaling.optimum.fit import Fitter, OptimumFit
from bayes_scaling.optimum.spec import ModelOptions
from bayes_scaling.optimum.specs.quantized import Quantized

ROOT = Path(__file__).resolve().parents[1]
LAW = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.15, tau_c=0.1)
GRID = Grid.parse("2^-14:2^-2:0.5")
BAYESIAN = [name for name, spec in specs.registry().items() if spec.bayesian]
CONFIG = SamplerConfig(draws=300, tune=400, chains=2, seed=4)


@pytest.fixture(scope="module")
def data():
    best, _ = simulate_best_runs(LAW, LAW, sizes=np.array([3e7, 1e8, 3e8, 1e9]), tokens=np.geomspace(1e9, 3e10, 4),
                                 lr_grid=GRID, batch_grid=GRID, seed=8)
    return best.quantity("lr")


@pytest.fixture(scope="module")
def fitter():
    return Fitter(CONFIG)


@pytest.fixture(scope="module")
def fits(fitter, data):
    return {name: fitter.fit(name, data) for name in BAYESIAN}


def test_the_registry_lists_every_spec_module_once():
    modules = sorted(p.stem for p in (ROOT / "bayes_scaling" / "optimum" / "specs").glob("*.py") if p.stem != "__init__")
    kinds = specs.registry(every=True)
    assert sorted(type(s).__module__.rsplit(".", 1)[1] for s in kinds.values()) == modules
    assert {"ols", "pooled", "quantized", "quantized-t", "hierarchical"} <= set(kinds)
    for name, spec in kinds.items():
        assert spec.name == name and spec.summary and spec.formula and isinstance(spec.style, dict)
        assert sys.modules[type(spec).__module__].__doc__.startswith(f"``{name}``")   # the formula, in one file


@pytest.mark.parametrize("name", BAYESIAN)
def test_numpy_log_likelihood_equals_pymc(name, fits, data):
    fit = fits[name]
    ours = fit.idata["log_likelihood"]["q_obs"].transpose("chain", "draw", "cell").values
    tree = xr.DataTree.from_dict({"posterior": fit.posterior})
    theirs = pm.compute_log_likelihood(tree, model=fit.spec.build(data, fit.centers), progressbar=False)
    np.testing.assert_allclose(ours, theirs["log_likelihood"]["q_obs"].transpose("chain", "draw", "cell").values,
                               rtol=1e-6, atol=1e-8)


def test_per_n_intercepts_log_likelihood_equals_pymc(data):
    fitter = Fitter(CONFIG, options=ModelOptions(per_n_intercepts=True))
    fit = fitter.fit("hierarchical", data)
    assert "a_n" in fit.posterior
    ours = fit.idata["log_likelihood"]["q_obs"].transpose("chain", "draw", "cell").values
    model = fit.spec.build(data, fit.centers, ModelOptions(per_n_intercepts=True))
    theirs = pm.compute_log_likelihood(xr.DataTree.from_dict({"posterior": fit.posterior}), model=model,
                                       progressbar=False)
    np.testing.assert_allclose(ours, theirs["log_likelihood"]["q_obs"].transpose("chain", "draw", "cell").values,
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", BAYESIAN)
def test_numpy_predictive_matches_pymc_posterior_predictive(name, fits, data):
    """The spec's observation draws at the fitted cells have the distribution of PyMC's own
    posterior predictive of ``q_obs`` (medians within Monte-Carlo error, IQRs within 15 %)."""
    fit = fits[name]
    tree = xr.DataTree.from_dict({"posterior": fit.posterior})
    with fit.spec.build(data, fit.centers):       # four rounds: one round's IQRs alone are ~5 % noisy
        theirs = np.concatenate([
            pm.sample_posterior_predictive(tree, var_names=["q_obs"], random_seed=seed, progressbar=False)
            ["posterior_predictive"]["q_obs"].transpose("chain", "draw", "cell").values.reshape(-1, len(data.y))
            for seed in range(1, 5)])
    rng = np.random.default_rng(2)
    ours = np.concatenate([fit.spec.observation_draws(fit.posterior, fit.centers, fit.n_levels, data.log_N,
                                                      data.log_D, rng=rng) for _ in range(8)])
    q_ours, q_theirs = (np.quantile(x, [0.25, 0.5, 0.75], axis=0) for x in (ours, theirs))
    iqr = q_theirs[2] - q_theirs[0]
    se = 1.6 * iqr / np.sqrt(theirs.shape[0])          # ~ standard error of a median
    assert np.all(np.abs(q_ours[1] - q_theirs[1]) < 5 * se), name
    np.testing.assert_allclose(q_ours[2] - q_ours[0], iqr, rtol=0.15)


@pytest.mark.parametrize("name", BAYESIAN)
def test_prior_draws_come_from_the_model_prior(name, data):
    """The SBC draws are PyMC's prior: σ ~ Gamma(2, 10) (mean 0.2), b ~ Normal(0, 1)."""
    spec = specs.get(name)
    prior = spec.prior_draws(data, specs.Centers.of(data), 4000, seed=3)
    assert prior.sizes["draw"] == 4000
    assert np.mean(prior["sigma"].values) == pytest.approx(0.2, abs=0.01)
    assert np.std(prior["b"].values) == pytest.approx(1.0, abs=0.05)
    slopes = spec.level_slopes(prior, specs.Centers.of(data), data.n_levels)
    if slopes is not None:
        assert slopes.shape == (4000, len(data.n_levels))


def test_quantized_t_resists_one_odd_cell(fitter):
    """One cell whose best lr sits 2.5 log units (12x) above the law: the Normal scatter bends
    the D-slope towards it, the Student-t scatter does not."""
    law = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.05)
    best, _ = simulate_best_runs(law, law, sizes=np.array([3e7, 1e8, 3e8, 1e9, 3e9]), tokens=np.geomspace(1e9, 3e10, 6),
                                 lr_grid=GRID, batch_grid=GRID, seed=12)
    frame = best.frame.copy()
    odd = frame.index[(frame["N"] == frame["N"].max()) & (frame["D"] == frame["D"].max())][0]
    k = GRID.index_of(frame.loc[odd, "lr"]) + 7          # 3.5 log2 steps up
    frame.loc[odd, "lr"] = GRID.values[k]
    frame.loc[odd, ["lr_lo", "lr_hi"]] = GRID.log_bounds(GRID.values[k])
    data = type(best)(frame=frame, source="one odd cell").quantity("lr")
    c = {m: fitter.fit(m, data).coefficients(ci_prob=0.9).set_index("param").loc["c_D"] for m in ("quantized", "quantized-t")}
    err = {m: abs(row["median"] - law.c) for m, row in c.items()}
    assert err["quantized-t"] < 0.5 * err["quantized"], err
    assert c["quantized-t"]["lo"] < law.c < c["quantized-t"]["hi"]


def test_quantized_t_is_written_in_one_file_only():
    """Adding the kind touched its spec file alone: no other module of the package names it."""
    hits = [p.relative_to(ROOT).as_posix() for p in (ROOT / "bayes_scaling").rglob("*.py")
            if re.search(r"quantized[-_]t\b", p.read_text())]
    assert hits == ["bayes_scaling/optimum/specs/quantized_t.py"]


def test_quantized_t_runs_through_fit_compare_plots_and_sbc(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--models", "ols,quantized,quantized-t", "--draws", "150", "--tune", "250", "--chains", "2",
               "--max-refits", "0", "--out", str(out)])
    assert rc == 0
    console = capsys.readouterr().out
    assert "quantized-t" in console
    pred = pd.read_csv(out / "predictions.csv")
    assert (pred["model"] == "quantized-t").sum() == 2                  # one row per quantity
    assert "quantized-t" in (out / "compare.csv").read_text()
    assert (out / "posterior" / "quantized-t_lr.nc").exists()
    reloaded = OptimumFit.from_netcdf(out / "posterior" / "quantized-t_lr.nc")
    assert reloaded.spec.name == "quantized-t" and reloaded.predict([4e9], [1e11])["median"].iloc[0] > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"] == ["ols", "quantized", "quantized-t"]
    # the figures show the recommended kind; for a stack, the Bayesian kind of highest priority
    shown = {"stacked": "quantized-t", "ols": None}.get(manifest["recommended"]["lr"]["model"],
                                                        manifest["recommended"]["lr"]["model"])
    ppcs = sorted(p.name for p in (out / "plots").glob("ppc_*_lr.png"))
    assert ppcs == ([f"ppc_{shown}_lr.png"] if shown else [])
    design = Design(N=np.array([1e8, 1e8, 4e8, 4e8]), D=np.array([2e9, 8e9, 2e9, 8e9]),
                    log_grid={"lr": np.log(2.0) * np.arange(-12, -5.9, 0.5), "batch_size": np.log(2.0) * np.arange(15, 22)},
                    min_loss=np.full(4, 3.0))
    sbc = sbc_best_run("quantized-t", design, 2, SamplerConfig(draws=100, tune=150, chains=2))
    assert set(sbc["param"]) == {"a", "b", "c", "sigma", "pred"} and len(sbc) == 2 * 2 * 5


class _Probe(Quantized):
    """A kind that exists only in this test: registering it is all it takes."""

    name = "probe-kind"
    summary = "a test kind"
    main_priority = 1


def test_a_registered_spec_is_offered_and_fitted_everywhere(tmp_path, fitter, data):
    specs.register(_Probe)
    try:
        assert "probe-kind" in catalog.kinds() and "probe-kind" in catalog.help_text()
        assert catalog.parse_models("ols,probe-kind") == ["ols", "probe-kind"]
        fits = {m: fitter.fit(m, data) for m in ("quantized", "probe-kind")}
        table = compare(fits, data, fitter, max_refits=0).table
        assert set(table["model"]) == {"quantized", "probe-kind"}
        np.testing.assert_allclose(fits["probe-kind"].coefficients()["median"], fits["quantized"].coefficients()["median"],
                                   atol=0.05)
        design = Design(N=np.exp(data.log_N), D=np.exp(data.log_D),
                        log_grid={"lr": np.log(GRID.values), "batch_size": np.log(GRID.values)},
                        min_loss=np.zeros(len(data.y)))
        probe = specs.get("probe-kind")
        theta = probe.prior_draws(design.template("lr"), design.centers("lr"), 1, seed=0)
        table = simulate_table(probe, theta, design, "lr", np.random.default_rng(0))
        assert table.y.shape == (len(data.y),) and np.all(np.isin(table.y, np.log(GRID.values)))
        assert set(sbc_draws(probe, theta, design, "lr", np.random.default_rng(0))) == {"a", "b", "c", "sigma", "pred"}
    finally:
        specs._REGISTRY.pop("probe-kind", None)


@pytest.mark.parametrize("name", BAYESIAN)
def test_numpy_log_prior_equals_pymc(name, fits, data):
    """The log prior each spec computes (for prior sensitivity) is PyMC's own, parameter by parameter."""
    fit = fits[name]
    tree = xr.DataTree.from_dict({"posterior": fit.posterior})
    theirs = pm.compute_log_prior(tree, model=fit.spec.build(data, fit.centers), progressbar=False)["log_prior"]
    ours = fit.spec.log_prior(fit.posterior, fit.centers)
    assert set(ours) == set(theirs.data_vars)
    for var, values in ours.items():
        expected = theirs[var].values.reshape(values.shape)
        np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6, err_msg=var)


def test_a_prior_given_on_the_command_line_changes_the_fit(data):
    from bayes_scaling.optimum.priors import LogNormal, parse_prior

    name, prior = parse_prior("tau_c=lognormal(log(0.03),0.75)")
    assert name == "tau_c" and prior == LogNormal(np.log(0.03), 0.75)
    options = ModelOptions(priors=((name, prior),))
    fitter = Fitter(CONFIG, options=options)
    fit = fitter.fit("hierarchical", data)
    tau = fit.posterior["tau_c"].values.ravel()
    default = Fitter(CONFIG).fit("hierarchical", data).posterior["tau_c"].values.ravel()
    assert np.median(tau) < 0.7 * np.median(default)          # the prior moved the posterior
    lp = fit.spec.log_prior(fit.posterior, fit.centers, options)["tau_c"].ravel()
    np.testing.assert_allclose(lp, prior.logp(tau))


@pytest.mark.parametrize("text, message", [
    ("tau_c", "expected NAME=FAMILY(ARGS)"),
    ("tau_c=cauchy(0,1)", "unknown family 'cauchy'"),
    ("tau_c=lognormal(0)", "takes 2 argument(s)"),
    ("tau_c=lognormal(log(x),1)", "is not a number"),
    ("sigma=gamma(-2,10)", "must be positive"),
])
def test_bad_priors_are_one_line_errors(text, message):
    from bayes_scaling.errors import InputError
    from bayes_scaling.optimum.priors import parse_prior

    with pytest.raises(InputError, match=re.escape(message)):
        parse_prior(text)


def test_a_prior_no_chosen_kind_has_is_refused(tmp_path, capsys):
    rc = main(["--models", "ols,quantized", "--prior", "tau_c=lognormal(log(0.03),0.75)", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--prior tau_c: no chosen model" in err and "sigma" in err and not (tmp_path / "o").exists()


def test_prior_objects_sample_what_they_score():
    """Each family's NumPy draws have the moments its log density implies (checked by quadrature)."""
    from scipy import integrate

    from bayes_scaling.optimum.priors import Gamma, HalfNormal, LogNormal, Normal, StudentT

    for prior in (Normal(1.0, 2.0), HalfNormal(0.5), Gamma(2.0, 10.0), LogNormal(np.log(0.1), 0.75), StudentT(5.0, 0.0, 1.0)):
        draws = prior.sample(200_000, seed=3)
        lo, hi = (0.0, np.inf) if isinstance(prior, (HalfNormal, Gamma, LogNormal)) else (-np.inf, np.inf)
        mean = integrate.quad(lambda x: x * np.exp(prior.logp(x)), lo, hi)[0]
        assert integrate.quad(lambda x: np.exp(prior.logp(x)), lo, hi)[0] == pytest.approx(1.0, abs=1e-6)
        assert np.mean(draws) == pytest.approx(mean, rel=0.02, abs=0.01)
