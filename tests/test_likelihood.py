"""The interval-censored likelihood against hand computations, in NumPy and PyTensor."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayes_scaling.math.censored import interval_logp as interval_logp_np
from bayes_scaling.optimum.likelihood import interval_logp_pt


def phi_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@pytest.mark.parametrize(
    "mu, sigma, lo, hi",
    [(0.0, 1.0, -1.0, 1.0), (0.3, 0.5, -0.2, 0.9), (-7.0, 0.2, -7.3, -6.9), (2.0, 3.0, -1.0, 0.5)],
)
def test_interior_cell_matches_erf(mu, sigma, lo, hi):
    expected = math.log(phi_cdf((hi - mu) / sigma) - phi_cdf((lo - mu) / sigma))
    assert interval_logp_np(mu, sigma, lo, hi) == pytest.approx(expected, rel=1e-10)


def test_open_edges_are_one_sided_cdfs():
    assert interval_logp_np(0.0, 1.0, -np.inf, 0.0) == pytest.approx(math.log(0.5))
    assert interval_logp_np(1.0, 2.0, 2.0, np.inf) == pytest.approx(math.log(1.0 - phi_cdf(0.5)))
    assert interval_logp_np(0.0, 1.0, -np.inf, np.inf) == pytest.approx(0.0)


def test_far_tail_is_finite_and_matches_mills_ratio():
    # Φ(31) − Φ(30) underflows to 0 naively; its log is log Φ(−30) to 1e-200 relative,
    # and log Φ(−x) ≈ −x²/2 − log(x √(2π)) − 1/x² for large x.
    x = 30.0
    expected = -x * x / 2 - math.log(x * math.sqrt(2 * math.pi)) - 1 / x**2
    got = interval_logp_np(0.0, 1.0, 30.0, 31.0)
    assert np.isfinite(got)
    assert got == pytest.approx(expected, abs=1e-3)
    # the mirror image in the lower tail gives the same value
    assert interval_logp_np(0.0, 1.0, -31.0, -30.0) == pytest.approx(got, rel=1e-12)


def test_pytensor_twin_agrees_and_has_finite_gradients():
    mu, sigma, lo, hi, value = (pt.dvector(n) for n in ("mu", "sigma", "lo", "hi", "value"))
    logp = interval_logp_pt(value, mu, sigma, lo, hi)
    f = pytensor.function([value, mu, sigma, lo, hi], [logp, pytensor.grad(logp.sum(), mu)])
    rng = np.random.default_rng(1)
    n = 12
    centre = rng.normal(size=n)
    lo_v = centre - 0.35
    hi_v = centre + 0.35
    lo_v[:3] = -np.inf
    hi_v[3:6] = np.inf
    mu_v = rng.normal(scale=3.0, size=n)
    sigma_v = rng.uniform(0.05, 2.0, size=n)
    got, grad = f(centre, mu_v, sigma_v, lo_v, hi_v)
    np.testing.assert_allclose(got, interval_logp_np(mu_v, sigma_v, lo_v, hi_v), rtol=1e-7, atol=1e-9)
    assert np.all(np.isfinite(grad))
    # finite-difference check of the gradient
    eps = 1e-6
    fd = (interval_logp_np(mu_v + eps, sigma_v, lo_v, hi_v) - interval_logp_np(mu_v - eps, sigma_v, lo_v, hi_v)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


def test_pytensor_twin_on_open_and_far_cells():
    """Open edges are stood in for 40 sd beyond the other bound: the value is still the one-sided
    CDF (NumPy's), far in the tails too, and the gradients in μ and σ are finite and match finite
    differences — a cell open at both ends, a lower-open cell with μ 60 sd above it, an upper-open
    cell with μ 60 sd below it, and the bounds a ≈ 38, b ≈ 42 beside the stand-ins."""
    mu, sigma, lo, hi, value = (pt.dvector(n) for n in ("mu", "sigma", "lo", "hi", "value"))
    logp = interval_logp_pt(value, mu, sigma, lo, hi)
    f = pytensor.function([value, mu, sigma, lo, hi], [logp, *pytensor.grad(logp.sum(), [mu, sigma])])
    lo_v = np.array([-np.inf, -np.inf, 0.0, 3.8, -np.inf, -1.0])
    hi_v = np.array([np.inf, 0.0, np.inf, 4.2, 0.5, np.inf])
    mu_v = np.array([0.3, 6.0, -6.0, 0.0, 0.2, 3.0])
    sigma_v = np.array([1.0, 0.1, 0.1, 0.1, 2.0, 0.5])
    got, d_mu, d_sigma = f(np.zeros(6), mu_v, sigma_v, lo_v, hi_v)
    expected = interval_logp_np(mu_v, sigma_v, lo_v, hi_v)
    assert got[0] == 0.0 and expected[1] < -1700 and expected[2] < -1700
    np.testing.assert_allclose(got, expected, rtol=1e-7)     # PyMC's log Φ and SciPy's log_ndtr agree to ~1e-8
    assert np.all(np.isfinite(d_mu)) and np.all(np.isfinite(d_sigma))
    eps = 1e-7
    for grad, shift in ((d_mu, (eps, 0.0)), (d_sigma, (0.0, eps))):
        fd = (interval_logp_np(mu_v + shift[0], sigma_v + shift[1], lo_v, hi_v)
              - interval_logp_np(mu_v - shift[0], sigma_v - shift[1], lo_v, hi_v)) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)
