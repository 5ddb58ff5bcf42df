"""How ``inference.sampling`` runs NUTS: each model's own target acceptance unless one is given, and a
refit's posterior read from nutpie's raw trace."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pymc as pm
import pytest

from bayes_scaling.inference import numba_cache
from bayes_scaling.inference.config import SURFACE_TARGET_ACCEPT, TARGET_ACCEPT, SamplerConfig


def test_a_given_target_acceptance_wins_over_a_models_own():
    assert SamplerConfig().with_target_accept(0.9).target_accept == 0.9
    assert SamplerConfig(target_accept=0.8).with_target_accept(0.9).target_accept == 0.8
    with pytest.raises(Exception, match="--target-accept 1.2"):
        SamplerConfig(target_accept=1.2)


def test_a_capped_config_keeps_settings_below_their_limits_and_an_unset_tune_takes_its_limit():
    config = SamplerConfig(draws=200, chains=4).capped(draws=400, tune=300, chains=1)
    assert (config.draws, config.tune, config.chains) == (200, 300, 1)
    assert SamplerConfig(tune=100).capped(tune=300).tune == 100


def test_the_sampler_and_the_surface_use_their_own_target_acceptance(monkeypatch):
    """Left unset, nutpie is asked for TARGET_ACCEPT by ``sample`` (what a kind without its own value
    gets) and for the surface's value by the surface fitter; a value on the command line reaches both."""
    import nutpie

    from bayes_scaling.inference.sampling import sample
    from bayes_scaling.surface.fit import SurfaceFitter

    seen = []

    def fake(compiled, **kwargs):
        seen.append(kwargs["target_accept"])
        raise RuntimeError("stop")

    monkeypatch.setattr(nutpie, "sample", fake)
    for config in (SamplerConfig(), SurfaceFitter(SamplerConfig()).config,
                   SurfaceFitter(SamplerConfig(target_accept=0.7)).config):
        with pytest.raises(RuntimeError, match="stop"):
            sample(None, config, compiled=object(), log_likelihood=False)
    assert seen == [TARGET_ACCEPT, SURFACE_TARGET_ACCEPT, 0.7]


def test_each_law_of_the_optima_samples_at_its_kinds_target_acceptance(monkeypatch):
    """Left unset, the pooled and quantized laws sample at FLAT_LAW_TARGET_ACCEPT, the hierarchical
    one at TARGET_ACCEPT, and a leave-out refit at REFIT_TARGET_ACCEPT; a value given reaches all.
    (The pooled law goes to NUTS only with a non-Normal prior on a, b or c: ``test_conjugate``.)"""
    from bayes_scaling.inference.config import FLAT_LAW_TARGET_ACCEPT, REFIT_TARGET_ACCEPT
    from bayes_scaling.inputs.datasets import load_runs
    from bayes_scaling.optimum.fit import Fitter
    from bayes_scaling.optimum.priors import StudentT
    from bayes_scaling.optimum.spec import Centers, ModelOptions, OptimumSpec

    seen = []

    def fake(self, data, centers, fitter, config, posterior_only=False):
        seen.append((self.name, posterior_only, config.target_accept))
        raise RuntimeError("stop")

    monkeypatch.setattr(OptimumSpec, "sample", fake)
    data = load_runs("blog-partII").best().quantity("lr")
    options = ModelOptions(priors=(("b", StudentT(4.0, 0.0, 1.0)),))
    for given in (None, 0.7):
        fitter = Fitter(SamplerConfig(target_accept=given), options=options)
        for kind in ("pooled", "quantized", "hierarchical"):
            for call in (lambda: fitter.fit(kind, data), lambda: fitter.refit_posterior(kind, data, Centers.of(data))):
                with pytest.raises(RuntimeError, match="stop"):
                    call()
    own = {"pooled": FLAT_LAW_TARGET_ACCEPT, "quantized": FLAT_LAW_TARGET_ACCEPT, "hierarchical": TARGET_ACCEPT}
    assert seen == [(k, refit, REFIT_TARGET_ACCEPT if refit else own[k]) for k in own for refit in (False, True)] + [
        (k, refit, 0.7) for k in own for refit in (False, True)]
    assert FLAT_LAW_TARGET_ACCEPT < TARGET_ACCEPT


def test_each_law_of_the_optima_tunes_for_its_kinds_number_of_steps(monkeypatch):
    """Left unset, the hierarchical law tunes for PER_N_LAW_TUNE steps, the others for TUNE, a
    leave-out refit for at most REFIT_TUNE, and nutpie gets TUNE for a model with no number of its
    own; a number given reaches all (a refit's capped)."""
    import nutpie

    from bayes_scaling.inference.config import PER_N_LAW_TUNE, TUNE
    from bayes_scaling.inference.sampling import sample
    from bayes_scaling.inputs.datasets import load_runs
    from bayes_scaling.optimum.fit import Fitter
    from bayes_scaling.optimum.spec import REFIT_TUNE, Centers, OptimumSpec

    seen = []

    def fake(self, data, centers, fitter, config, posterior_only=False):
        seen.append((self.name, posterior_only, config.tune))
        raise RuntimeError("stop")

    monkeypatch.setattr(OptimumSpec, "sample", fake)
    data = load_runs("blog-partII").best().quantity("lr")
    for given in (None, 200):
        fitter = Fitter(SamplerConfig(tune=given))
        for kind in ("quantized", "hierarchical"):
            for call in (lambda: fitter.fit(kind, data), lambda: fitter.refit_posterior(kind, data, Centers.of(data))):
                with pytest.raises(RuntimeError, match="stop"):
                    call()
    own = {"quantized": TUNE, "hierarchical": PER_N_LAW_TUNE}
    assert seen == [(k, refit, REFIT_TUNE if refit else own[k]) for k in own for refit in (False, True)] + [
        (k, refit, min(200, REFIT_TUNE) if refit else 200) for k in own for refit in (False, True)]

    passed = []

    def fake_nutpie(compiled, **kwargs):
        passed.append(kwargs["tune"])
        raise RuntimeError("stop")

    monkeypatch.setattr(nutpie, "sample", fake_nutpie)
    for config in (SamplerConfig(), SamplerConfig(tune=123)):
        with pytest.raises(RuntimeError, match="stop"):
            sample(None, config, compiled=object(), log_likelihood=False)
    assert passed == [TUNE, 123]
    with pytest.raises(Exception, match="--tune 0"):
        SamplerConfig(tune=0)


def test_each_loss_law_samples_at_its_own_target_acceptance(monkeypatch):
    """Left unset, a loss law samples at LAW_TARGET_ACCEPT and the critical-batch law, measured on no
    bundled table, at TARGET_ACCEPT; a value given reaches both."""
    from bayes_scaling.inference import sampling
    from bayes_scaling.inference.config import LAW_TARGET_ACCEPT
    from bayes_scaling.laws.base import fit_law, registry
    from test_loss_laws import simulate_steps

    seen = []

    def fake(model, config, **kwargs):
        seen.append(config.target_accept)
        raise RuntimeError("stop")

    monkeypatch.setattr(sampling, "sample", fake)
    laws = [registry()["chinchilla"].from_data("chinchilla")[0], registry()["critical-batch"](simulate_steps())]
    for given in (None, 0.7):
        for law in laws:
            with pytest.raises(RuntimeError, match="stop"):
                fit_law(law, SamplerConfig(target_accept=given))
    assert seen == [LAW_TARGET_ACCEPT, TARGET_ACCEPT, 0.7, 0.7] and LAW_TARGET_ACCEPT != TARGET_ACCEPT


def test_a_posterior_read_from_the_raw_trace_is_nutpies_posterior():
    """``sample(..., posterior_only=True)`` reads the draws from nutpie's raw trace itself: the same
    posterior as nutpie's own conversion (values, dims, coords), a vector parameter included."""
    import xarray as xr

    from bayes_scaling.inference.sampling import sample

    with pm.Model(coords={"g": ["x", "y", "z"]}) as m:
        a = pm.Normal("a", 0, 1, dims="g")
        s = pm.HalfNormal("s", 1.0)
        pm.Deterministic("d", a.sum() * s)
        pm.Normal("o", a.sum(), s, observed=np.ones(5))
        pm.Normal("free", 0, 1, shape=2)                  # no dims: arviz's default names
    config = SamplerConfig(draws=60, tune=40, chains=2, cores=1, seed=4)
    compiled = numba_cache.compile_pymc_model(m)
    ours = sample(None, config, compiled=compiled, log_likelihood=False, posterior_only=True)
    theirs = sample(m, config, compiled=compiled, log_likelihood=False)
    assert list(ours.children) == ["posterior"] and "sample_stats" in theirs.children
    xr.testing.assert_identical(ours["posterior"].to_dataset().drop_attrs(),
                                theirs["posterior"].to_dataset().drop_attrs())


def arrow_trace(compiled, short: int | None = None) -> tuple[list, list]:
    """nutpie's raw trace of 2 chains x (20 tuning + 30) draws as Arrow (draws, stats) per chain; chain
    ``short`` cut to its first 45 rows, as Ctrl-C leaves it."""
    import nutpie

    trace = nutpie.sample(compiled, draws=30, tune=20, chains=2, cores=1, progress_bar=False, return_raw_trace=True)
    batches, stats = trace.get_arrow_trace()
    if short is not None:
        batches[short], stats[short] = batches[short].slice(0, 45), stats[short].slice(0, 45)
    return batches, stats


def test_a_raw_trace_with_a_chain_cut_short_is_an_interrupt():
    """nutpie answers Ctrl-C by returning what it has: a chain with fewer draws than asked for."""
    from bayes_scaling.inference.sampling import posterior_of_trace

    with pm.Model() as m:
        pm.Normal("a", 0, 1)
    compiled = numba_cache.compile_pymc_model(m)

    def raw(short: int | None = None) -> SimpleNamespace:
        cut = arrow_trace(compiled, short)
        return SimpleNamespace(get_arrow_trace=lambda: cut)

    with pytest.raises(KeyboardInterrupt):
        posterior_of_trace(raw(), compiled, 31)
    for short in (0, 1):                                 # one chain cut short, whichever: the others are whole
        with pytest.raises(KeyboardInterrupt):
            posterior_of_trace(raw(short), compiled, 30)
    assert posterior_of_trace(raw(), compiled, 30)["a"].shape == (2, 30)


def test_a_converted_trace_with_a_chain_cut_short_is_an_interrupt():
    """nutpie's own conversion (the main fits') pads a chain cut short by Ctrl-C with NaN up to the
    longest: the shorter chain is found, whichever chain it is."""
    from nutpie.sample import _arrow_to_arviz

    from bayes_scaling.inference.sampling import cut_short

    with pm.Model() as m:
        pm.Normal("a", 0, 1)
    compiled = numba_cache.compile_pymc_model(m)
    whole = _arrow_to_arviz(*arrow_trace(compiled))
    assert not cut_short(whole, 30) and cut_short(whole, 31)
    for short in (0, 1):
        assert cut_short(_arrow_to_arviz(*arrow_trace(compiled, short)), 30)


def sound(diagnostics) -> bool:
    """A sampler that works, told from Monte-Carlo noise: no divergence, bulk ESS ≥ 400 and R-hat < 1.02.
    (The CLI's check, R-hat < 1.01, is itself noisy at these ESS: quantized B* on blog-partII, bulk ESS
    about 800, reached R-hat ≥ 1.01 in 1 of 20 seeds at 0.95 and in 2 of 20 at 0.99.)"""
    return diagnostics.divergences == 0 and diagnostics.min_ess_bulk >= 400 and diagnostics.max_rhat < 1.02


def test_the_quantized_law_at_its_own_target_acceptance_predicts_what_it_does_at_0_99():
    """The quantized law samples at FLAT_LAW_TARGET_ACCEPT, below 0.99: on blog-partII it samples
    soundly (``sound``) and its prediction at (4e9, 1e11) — median and 90 % width of log q* — agrees with
    a fit at 0.99 within Monte-Carlo error (4 x 1000 draws: a few hundredths of a posterior sd). (The
    pooled law's draws are exact: ``test_conjugate``.)"""
    from bayes_scaling.inputs.datasets import load_runs
    from bayes_scaling.optimum.fit import Fitter

    best = load_runs("blog-partII").best()
    for q in ("lr", "batch_size"):
        data = best.quantity(q)
        fits = {accept: Fitter(SamplerConfig(seed=7, target_accept=accept)).fit("quantized", data)
                for accept in (None, 0.99)}
        draws = {a: f.log_draws([4e9], [1e11], noise=False)[:, 0] for a, f in fits.items()}
        assert all(sound(f.diagnostics) for f in fits.values())
        assert float(fits[None].idata["sample_stats"]["n_steps"].mean()) < float(
            fits[0.99].idata["sample_stats"]["n_steps"].mean())                   # the point of the lower target
        sd = draws[0.99].std()
        assert abs(np.median(draws[None]) - np.median(draws[0.99])) < 0.15 * sd
        widths = {a: np.subtract(*np.quantile(d, [0.95, 0.05])) for a, d in draws.items()}
        assert widths[None] / widths[0.99] == pytest.approx(1.0, abs=0.1)


def test_the_hierarchical_law_with_its_own_tuning_predicts_what_it_does_with_1000_steps():
    """The hierarchical law tunes for PER_N_LAW_TUNE steps: on blog-partII it samples soundly (``sound``) and its
    prediction at (4e9, 1e11) — median and 90 % width of log q* — agrees with a fit tuned for TUNE steps
    within Monte-Carlo error, for both optima."""
    from bayes_scaling.inference.config import TUNE
    from bayes_scaling.inputs.datasets import load_runs
    from bayes_scaling.optimum.fit import Fitter

    best = load_runs("blog-partII").best()
    for q in ("lr", "batch_size"):
        data = best.quantity(q)
        fits = {tune: Fitter(SamplerConfig(seed=7, tune=tune)).fit("hierarchical", data) for tune in (None, TUNE)}
        draws = {t: f.log_draws([4e9], [1e11], noise=False)[:, 0] for t, f in fits.items()}
        assert all(sound(f.diagnostics) for f in fits.values())
        sd = draws[TUNE].std()
        assert abs(np.median(draws[None]) - np.median(draws[TUNE])) < 0.15 * sd
        widths = {t: np.subtract(*np.quantile(d, [0.95, 0.05])) for t, d in draws.items()}
        assert widths[None] / widths[TUNE] == pytest.approx(1.0, abs=0.1)
