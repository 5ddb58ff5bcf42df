"""The joint (η*, B*) law: its rectangle probability against an exact one, the recovery of a known
correlation from simulated quantized sweeps, and the planner's draw of B given η."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayes_scaling.evaluation.simulate import TrueLaw, simulate_best_runs
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.math.bivariate import pair_logp, rectangle_logp
from bayes_scaling.math.censored import bvn_cdf, interval_logp
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.likelihood import pair_logp_pt
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.priors import Gamma
from bayes_scaling.optimum.spec import Centers, ModelOptions
from bayes_scaling.planning.plan import optimum_draws

GRID = Grid.parse("2^-14:2^-2:0.5")
LR = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.35)
BATCH = TrueLaw(intercept=-18.0, b=0.1, c=0.5, sigma=0.35)     # B* ≈ e⁻⁵ mid-grid
SIZES, TOKENS = np.geomspace(3e7, 1e9, 6), np.geomspace(1e9, 3e10, 6)


def _exact(a1, b1, a2, b2, r):
    return bvn_cdf(b1, b2, r) - bvn_cdf(a1, b2, r) - bvn_cdf(b1, a2, r) + bvn_cdf(a1, a2, r)


def test_the_rectangle_probability_is_exact_open_edges_and_tails_included():
    rng = np.random.default_rng(0)
    n = 3000
    a1, a2 = rng.normal(0, 4, n), rng.normal(0, 4, n)
    b1, b2 = a1 + rng.uniform(0.05, 3, n), a2 + rng.uniform(0.05, 3, n)
    for bound, edge in ((a1, -np.inf), (b1, np.inf), (a2, -np.inf), (b2, np.inf)):
        bound[rng.random(n) < 0.2] = edge
    r = rng.uniform(-0.95, 0.95, n)
    exact = _exact(a1, b1, a2, b2, r)
    ours = rectangle_logp(a1, b1, a2, b2, r)
    typical = exact > np.exp(-5)
    tail = (exact > 1e-12) & ~typical
    assert typical.sum() > 1000 and tail.sum() > 1000
    assert np.abs(ours[typical] - np.log(exact[typical])).max() < 2e-5
    assert np.abs(ours[tail] - np.log(exact[tail])).max() < 5e-4
    # r = 0: the product of the two cells; a whole-line second cell: the first cell alone
    np.testing.assert_allclose(rectangle_logp(a1, b1, a2, b2, 0.0 * r),
                               interval_logp(0.0, 1.0, a1, b1) + interval_logp(0.0, 1.0, a2, b2), atol=1e-6)
    whole = np.full(n, np.inf)
    np.testing.assert_allclose(rectangle_logp(a1, b1, -whole, whole, r), interval_logp(0.0, 1.0, a1, b1), atol=1e-9)


def test_the_pytensor_twin_has_the_numpy_value_and_its_gradient():
    lo1, hi1 = np.array([-np.inf, 0.0, 1.0, -1.0]), np.array([0.0, 0.7, np.inf, 2.0])
    lo2, hi2 = np.array([-1.0, -np.inf, 0.3, -np.inf]), np.array([0.0, 0.5, np.inf, np.inf])
    x = pt.dvector("x")
    out = pair_logp_pt(pt.zeros(4), x[0], x[1], lo1, hi1, x[2], x[3], lo2, hi2, x[4])
    f = pytensor.function([x], [out, pt.grad(out.sum(), x)])
    theta = np.array([0.2, 0.6, -0.1, 0.8, 0.6])

    def numpy(t):
        return pair_logp(t[0], t[1], lo1, hi1, t[2], t[3], lo2, hi2, t[4])

    value, grad = f(theta)
    np.testing.assert_allclose(value, numpy(theta), rtol=1e-7, atol=1e-7)   # erfcinv vs ndtri
    step = 1e-6
    numeric = [(numpy(theta + step * e).sum() - numpy(theta - step * e).sum()) / (2 * step) for e in np.eye(5)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(grad))
    for far in (np.array([6.0, 0.3, -5.0, 0.3, 0.9]), np.array([-9.0, 0.2, 8.0, 0.25, -0.95])):   # cells 10–40 σ out
        value, grad = f(far)
        np.testing.assert_allclose(value, numpy(far), rtol=1e-6)
        numeric = [(numpy(far + step * e).sum() - numpy(far - step * e).sum()) / (2 * step) for e in np.eye(5)]
        np.testing.assert_allclose(grad, numeric, rtol=1e-4)


@pytest.fixture(scope="module")
def fitter():
    return Fitter(SamplerConfig(draws=1000, tune=500, chains=2, seed=3))


def _joint_fit(fitter, rho, seed):
    best, _ = simulate_best_runs(LR, BATCH, sizes=SIZES, tokens=TOKENS, lr_grid=GRID, batch_grid=GRID, seed=seed, rho=rho)
    return fitter.fit("joint", best.quantity("lr")), best


@pytest.mark.parametrize("rho, seed", [(0.8, 11), (0.0, 12)])
def test_the_joint_law_recovers_a_known_correlation_and_both_laws(fitter, rho, seed):
    fit, _ = _joint_fit(fitter, rho, seed)
    assert fit.diagnostics.ok, fit.diagnostics
    lo, hi = np.quantile(stacked(fit.posterior, "rho"), [0.05, 0.95])
    assert lo < rho < hi
    if rho > 0:
        assert lo > 0.2                                       # the data see the correlation
    else:
        assert lo < 0 < hi
    coef = fit.coefficients().set_index("param")
    for name, truth in (("b_N", LR.b), ("c_D", LR.c)):
        assert coef.loc[name, "lo"] < truth < coef.loc[name, "hi"], name
    for name, truth in (("b_pair", BATCH.b), ("c_pair", BATCH.c)):
        draws = stacked(fit.posterior, name)
        assert np.quantile(draws, 0.05) < truth < np.quantile(draws, 0.95), name


def test_the_planner_draws_the_batch_given_the_lr(fitter):
    """The planned (η, B) pairs carry the joint law's correlation — Cov = E[ρσσ₂] + Cov(μ₁, μ₂), by hand
    from the posterior — and an independent kind's carry none."""
    fit, best = _joint_fit(fitter, 0.8, 11)
    post = fit.posterior
    n = 40_000
    N, D = np.full(n, 3e8), np.full(n, 1e10)
    draws = optimum_draws({"lr": fit, "batch_size": fit}, N, D, np.random.default_rng(0))
    got = np.corrcoef(np.log(draws["lr"]), np.log(draws["batch_size"]))[0, 1]

    x_N, x_D = np.log(3e8) - fit.centers.log_N, np.log(1e10) - fit.centers.log_D
    mu1 = stacked(post, "a") + stacked(post, "b") * x_N + stacked(post, "c") * x_D
    mu2 = stacked(post, "a_pair") + stacked(post, "b_pair") * x_N + stacked(post, "c_pair") * x_D
    s1, s2, rho = stacked(post, "sigma"), stacked(post, "sigma_pair"), stacked(post, "rho")
    cov = np.mean(rho * s1 * s2) + np.cov(mu1, mu2)[0, 1]
    expected = cov / np.sqrt((np.mean(s1**2) + mu1.var()) * (np.mean(s2**2) + mu2.var()))
    assert expected > 0.4 and got == pytest.approx(expected, abs=0.03)

    independent = {q: fitter.fit("quantized", best.quantity(q)) for q in ("lr", "batch_size")}
    alone = optimum_draws(independent, N, D, np.random.default_rng(0))
    assert abs(np.corrcoef(np.log(alone["lr"]), np.log(alone["batch_size"]))[0, 1]) < 0.03


def test_one_nuts_run_serves_both_optima_and_is_what_the_other_fit_would_give(fitter):
    """The batch's joint fit after the lr's is the lr's posterior with the laws swapped; an own run of
    the batch's joint model gives the same posterior (within Monte-Carlo error); other data is refitted."""
    best, _ = simulate_best_runs(LR, BATCH, sizes=SIZES, tokens=TOKENS, lr_grid=GRID, batch_grid=GRID, seed=11, rho=0.8)
    shared = Fitter(fitter.config)
    lr = shared.fit("joint", best.quantity("lr"))
    batch = shared.fit("joint", best.quantity("batch_size"))
    np.testing.assert_array_equal(batch.posterior["a"].values, lr.posterior["a_pair"].values)
    np.testing.assert_array_equal(batch.posterior["sigma_pair"].values, lr.posterior["sigma"].values)
    assert batch.idata["log_likelihood"]["q_obs"].shape == lr.idata["log_likelihood"]["q_obs"].shape
    own = Fitter(fitter.config).fit("joint", best.quantity("batch_size"))
    for name in ("a", "b", "c", "sigma", "rho", "b_pair"):
        x, y = stacked(batch.posterior, name), stacked(own.posterior, name)
        assert abs(np.median(x) - np.median(y)) < 0.25 * y.std(), name
    spec, data = specs.get("joint"), best.quantity("batch_size")
    centers, key = Centers.of(data), spec._key(best.quantity("lr"), Centers.of(best.quantity("lr")), fitter.config)
    assert spec._key(data, centers, fitter.config, swap=True) == key                 # what the batch's fit looks up
    other = dataclasses.replace(data, lo=np.where(np.arange(data.lo.size) == 3, data.lo - 0.35, data.lo))
    assert spec._key(other, centers, fitter.config, swap=True) != key                # one cell's bounds differ
    assert spec._key(data, centers, dataclasses.replace(fitter.config, draws=999), swap=True) != key
    assert spec._key(data.subset(np.arange(data.y.size) > 0), centers, fitter.config, swap=True) != key
    assert spec.symmetric(ModelOptions()) and spec.symmetric(ModelOptions(priors=(("sigma", Gamma(2.0, 5.0)),)))
    assert not spec.symmetric(ModelOptions(priors=(("sigma_pair", Gamma(2.0, 5.0)),)))  # then each runs its own


def test_sbc_simulates_both_optima_of_a_joint_law_together():
    """For SBC the joint kind's table carries both optima, their latent scatter correlated as θ̃ says."""
    from bayes_scaling.evaluation.calibration import design_of, simulate_table
    from bayes_scaling.optimum import spec as specs

    design = design_of("steplaw-dense")
    spec = specs.get("joint")
    theta = spec.prior_draws(design.template("lr"), design.centers("lr"), 1, seed=0)
    theta = theta.assign(rho=theta["rho"] * 0 + 0.95, sigma=theta["sigma"] * 0 + 1.0, sigma_pair=theta["sigma"] * 0 + 1.0,
                         b=theta["b"] * 0, c=theta["c"] * 0, b_pair=theta["b"] * 0, c_pair=theta["c"] * 0)
    rng = np.random.default_rng(1)
    tables = [simulate_table(spec, theta, design, "lr", rng) for _ in range(40)]
    assert all(t.partner is not None and t.partner.name == "batch_size" for t in tables)
    lr = np.concatenate([t.y for t in tables])
    batch = np.concatenate([t.partner.y for t in tables])
    assert set(np.round(batch, 9)) <= set(np.round(design.log_grid["batch_size"], 9))     # on the batch grid
    assert np.corrcoef(lr, batch)[0, 1] > 0.5
    alone = simulate_table(specs.get("quantized"), theta, design, "lr", rng)
    assert alone.partner is None


def test_a_partner_follows_its_optimum_through_new_cells_and_subsets():
    """with_cells adds the new cells to the partner as unobserved (open), none added leaves it as it was."""
    best, _ = simulate_best_runs(LR, BATCH, sizes=SIZES[:3], tokens=TOKENS[:3], lr_grid=GRID, batch_grid=GRID, seed=1)
    lr = best.quantity("lr")
    same = lr.with_cells([], [], [], [], [], [])
    assert same.partner.y.size == lr.y.size and same.partner.subset(np.ones(lr.y.size, bool)).lo.size == lr.y.size
    grown = lr.with_cells(np.log([5e9]), np.log([1e11]), [-7.0], [-7.3], [-6.6], ["new"])
    assert grown.partner.cell[-1] == "new" and grown.partner.lo[-1] == -np.inf and grown.partner.hi[-1] == np.inf
    assert grown.partner.log_N.size == grown.log_N.size == lr.y.size + 1
    np.testing.assert_array_equal(grown.partner.lo[:-1], lr.partner.lo)
    assert grown.subset(np.arange(grown.y.size) != 0).partner.lo.size == lr.y.size


def test_sbc_runs_the_joint_kind_end_to_end():
    from bayes_scaling.evaluation.calibration import design_of, sbc_best_run

    rows = sbc_best_run("joint", design_of("steplaw-dense"), 2, SamplerConfig(draws=150, tune=150, chains=1, seed=2))
    assert set(rows["quantity"]) == {"lr"} and rows["sim"].nunique() == 2
    assert {"rho", "b", "b_pair", "sigma_pair", "pred"} <= set(rows["param"])
    assert rows["rank"].between(0, rows["n_ranks"]).all()
