"""Law forms as model kinds: a known curvature and a known interaction are recovered from simulated
quantized sweeps, leave-one-N-out rejects the log-linear law on such data, a smooth slope is
continuous in N, the refits of a fold never see its cells, stacking does what its formula says."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_scaling.evaluation.simulate import TrueLaw, simulate_best_runs
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.optimum.compare import compare
from bayes_scaling.optimum.crossval import cross_validate, folds
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.stacking import stacking_weights

SIZES = np.geomspace(2e7, 2e10, 6)
TOKENS = np.geomspace(1e9, 1e11, 5)
GRID = Grid.parse("2^-16:2^0:0.5")
CONFIG = SamplerConfig(draws=400, tune=500, chains=2, seed=11)


@pytest.fixture(scope="module")
def fitter():
    return Fitter(CONFIG)


def table(law: TrueLaw, seed: int):
    best, _ = simulate_best_runs(law, law, sizes=SIZES, tokens=TOKENS, lr_grid=GRID, batch_grid=GRID, seed=seed)
    return best.quantity("lr")


def coefficient(fit, name: str, ci_prob: float = 0.9):
    row = fit.coefficients(ci_prob=ci_prob).set_index("param").loc[name]
    return row["lo"], row["median"], row["hi"]


CURVED = TrueLaw(intercept=-3.0, b=-0.5, c=0.3, sigma=0.05, e=-0.06)
INTERACTING = TrueLaw(intercept=-3.0, b=-0.5, c=0.3, sigma=0.05, d=0.08)


def test_curvature_is_recovered_and_leave_one_n_out_rejects_the_straight_law(fitter):
    data = table(CURVED, seed=3)
    fits = {m: fitter.fit(m, data) for m in ("quantized", "curved")}
    lo, med, hi = coefficient(fits["curved"], "e_NN")
    assert lo < CURVED.e < hi and hi < 0                      # the bend is there, and has the right sign
    lo, _, hi = coefficient(fits["curved"], "b_N")
    assert lo < CURVED.b < hi
    result = compare(fits, data, fitter, max_refits=0, cv=("lono",))
    t = result.table.set_index("model")
    assert t.loc["curved", "lono_elpd"] - t.loc["quantized", "lono_elpd"] > 2 * t.loc["quantized", "lono_dse"]
    assert t.loc["curved", "lono_weight"] > 0.8 and result.recommended in ("curved", "stacked")


def test_interaction_is_recovered_and_preferred_for_a_new_size(fitter):
    data = table(INTERACTING, seed=4)
    fits = {m: fitter.fit(m, data) for m in ("quantized", "interaction")}
    lo, med, hi = coefficient(fits["interaction"], "d_ND")
    assert lo < INTERACTING.d < hi and lo > 0
    t = compare(fits, data, fitter, max_refits=0, cv=("lono",)).table.set_index("model")
    assert t.loc["interaction", "lono_elpd"] > t.loc["quantized", "lono_elpd"]
    assert t.loc["interaction", "lono_weight"] > 0.8


@pytest.mark.parametrize("kind", ["interaction", "gp-slopes"])
def test_a_smooth_slope_is_continuous_in_n_where_the_exchangeable_one_jumps(kind, fitter):
    """Just beside a fitted size (±0.01 %) the smooth kinds predict what they predict at that size;
    the exchangeable per-N slopes of ``hierarchical`` jump to a fresh population draw."""
    data = table(TrueLaw(intercept=-3.0, b=-0.5, c=0.3, sigma=0.05, tau_c=0.1), seed=5)
    n = float(data.n_levels[-2])
    D = 1e12                                                  # far in D: the slope matters
    spread = {}
    for name in (kind, "hierarchical"):
        fit = fitter.fit(name, data)
        at = fit.log_draws([n], [D], seed=1, noise=False)[:, 0]
        beside = fit.log_draws([n * 1.0001], [D], seed=1, noise=False)[:, 0]
        spread[name] = (np.median(np.abs(beside - at)), np.std(at))
    assert spread[kind][0] < 0.02 * spread[kind][1]
    assert spread["hierarchical"][0] > 0.2 * spread["hierarchical"][1]


def test_leave_one_n_out_refits_never_see_the_held_out_size(fitter, monkeypatch):
    data = table(CURVED, seed=6)
    fit = fitter.fit("quantized", data)
    seen = []
    real = fitter.refit_posterior

    def spy(kind, subset, centers):
        seen.append(np.unique(np.round(np.exp(subset.log_N))))
        return real(kind, subset, centers)

    monkeypatch.setattr(fitter, "refit_posterior", spy)
    scores = cross_validate(fit, data, fitter, ("lono",))
    assert len(scores) == len(SIZES) == len(seen)
    for (name, held), sizes, score in zip(folds(data, "lono"), seen, scores):
        out = float(np.exp(data.log_N[held][0]))
        assert not np.isclose(sizes, out, rtol=1e-9).any() and len(sizes) == len(SIZES) - 1
        assert np.allclose(score.cells["N"], out) and score.fold == name


def test_stacking_weights_on_hand_examples():
    # one kind better on every unit: all the weight
    assert stacking_weights(np.array([[-1.0, -1.0, -1.0], [-3.0, -3.0, -3.0]]))[0] > 0.99
    # each kind right where the other is badly wrong: the mixture wins, weights near ½
    w = stacking_weights(np.array([[-1.0, -9.0], [-9.0, -1.0]]))
    np.testing.assert_allclose(w, [0.5, 0.5], atol=1e-3)
    # the optimum of Σ_k log Σ_m w_m p_mk by brute force over a grid of w
    scores = np.log(np.array([[0.5, 0.1, 0.4, 0.3], [0.2, 0.6, 0.3, 0.25]]))
    grid = np.linspace(0, 1, 2001)
    objective = [np.sum(np.log(g * np.exp(scores[0]) + (1 - g) * np.exp(scores[1]))) for g in grid]
    assert stacking_weights(scores)[0] == pytest.approx(grid[int(np.argmax(objective))], abs=2e-3)
