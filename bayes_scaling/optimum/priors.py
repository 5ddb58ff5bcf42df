"""Prior distributions as objects: one object makes the PyMC variable, scores a draw in NumPy, and
reads and writes itself as text (``--prior tau_c=lognormal(log(0.03),0.75)``).

    Normal(mu, sigma)      density ∝ exp(−(x − μ)²/2σ²)
    HalfNormal(sigma)      x > 0
    Gamma(alpha, beta)     density ∝ x^(α−1) e^(−βx), mean α/β
    LogNormal(mu, sigma)   log x ~ Normal(μ, σ)
    StudentT(nu, mu, sigma)
    LKJ(eta)               a correlation ρ ∈ (−1, 1): the 2 × 2 LKJ, density ∝ (1 − ρ²)^(η−1)

A spec declares its priors by parameter name (``OptimumSpec.priors``); ``ModelOptions.priors``
replaces any of them for a fit, so a prior is a result to report, not a constant in the code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

import numpy as np

from bayes_scaling.errors import InputError


@dataclass(frozen=True)
class Prior:
    """A named family with its parameters (subclasses); ``rv`` makes the PyMC variable, ``logp`` scores draws.

    ``shift`` places a location family about a table constant (the intercept's prior is about the
    table's mean log optimum ȳ, fed as data so one compiled model serves every table)."""

    def rv(self, name: str, shift=None, **kwargs):
        """The PyMC random variable ``name`` with this prior, moved by ``shift`` (``kwargs``: dims)."""
        import pymc as pm

        params = self._params()
        if shift is not None:
            if "mu" not in params:
                raise InputError(f"the prior of {name} must be a location family (normal, studentt), got {self}")
            params["mu"] = params["mu"] + shift
        return getattr(pm, type(self).__name__)(name, **params, **kwargs)

    def logp(self, x: np.ndarray, shift: float = 0.0) -> np.ndarray:
        """log density at ``x`` (NumPy), elementwise (of x − shift for a location family)."""
        from scipy import stats

        return self._logpdf(stats, np.asarray(x, dtype=float) - shift)

    def _logpdf(self, stats, x):
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` draws (NumPy; no PyMC function to compile)."""
        from scipy import stats

        return self._frozen(stats).rvs(size=n, random_state=np.random.default_rng(seed))

    def _frozen(self, stats):
        raise NotImplementedError

    def _params(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __str__(self) -> str:
        return f"{type(self).__name__.lower()}({', '.join(f'{v:.4g}' for v in self._params().values())})"


@dataclass(frozen=True)
class Normal(Prior):
    mu: float = 0.0
    sigma: float = 1.0

    def _logpdf(self, stats, x):
        return stats.norm.logpdf(x, self.mu, self.sigma)

    def _frozen(self, stats):
        return stats.norm(self.mu, self.sigma)


@dataclass(frozen=True)
class HalfNormal(Prior):
    sigma: float = 1.0

    def _logpdf(self, stats, x):
        return stats.halfnorm.logpdf(x, scale=self.sigma)

    def _frozen(self, stats):
        return stats.halfnorm(scale=self.sigma)


@dataclass(frozen=True)
class Gamma(Prior):
    alpha: float = 2.0
    beta: float = 1.0

    def _logpdf(self, stats, x):
        return stats.gamma.logpdf(x, self.alpha, scale=1.0 / self.beta)

    def _frozen(self, stats):
        return stats.gamma(self.alpha, scale=1.0 / self.beta)


@dataclass(frozen=True)
class LogNormal(Prior):
    mu: float = 0.0
    sigma: float = 1.0

    def _logpdf(self, stats, x):
        return stats.lognorm.logpdf(x, self.sigma, scale=math.exp(self.mu))

    def _frozen(self, stats):
        return stats.lognorm(self.sigma, scale=math.exp(self.mu))


@dataclass(frozen=True)
class StudentT(Prior):
    nu: float = 4.0
    mu: float = 0.0
    sigma: float = 1.0

    def _logpdf(self, stats, x):
        return stats.t.logpdf(x, self.nu, self.mu, self.sigma)

    def _frozen(self, stats):
        return stats.t(self.nu, self.mu, self.sigma)


@dataclass(frozen=True)
class LKJ(Prior):
    """The LKJ(η) prior of a 2 × 2 correlation matrix, on its one correlation ρ: (ρ + 1)/2 ~ Beta(η, η)
    (η = 1 uniform, larger η pulls ρ towards 0)."""

    eta: float = 2.0

    def rv(self, name: str, shift=None, **kwargs):
        import pymc as pm
        import pytensor.tensor as pt
        from pymc.distributions.transforms import Interval

        eta, log_norm = self.eta, self._log_norm()

        def random(eta, rng=None, size=None):
            return 2.0 * rng.beta(eta, eta, size=size) - 1.0

        return pm.CustomDist(name, eta, logp=lambda v, e: (e - 1.0) * pt.log1p(-v**2) - log_norm, random=random,
                             transform=Interval(-1.0, 1.0), **kwargs)

    def _log_norm(self) -> float:
        from scipy.special import betaln

        return (2.0 * self.eta - 1.0) * math.log(2.0) + float(betaln(self.eta, self.eta))

    def _logpdf(self, stats, x):
        return (self.eta - 1.0) * np.log1p(-x**2) - self._log_norm()

    def _frozen(self, stats):
        return stats.beta(self.eta, self.eta, loc=-1.0, scale=2.0)


FAMILIES = {cls.__name__.lower(): cls for cls in (Normal, HalfNormal, Gamma, LogNormal, StudentT, LKJ)}
_NUMBER = {"log": math.log, "exp": math.exp, "sqrt": math.sqrt}


def _number(text: str, where: str) -> float:
    """A number, or log(x) / exp(x) / sqrt(x) of one (``log(0.03)``)."""
    text = text.strip()
    match = re.fullmatch(r"(log|exp|sqrt)\((.+)\)", text)
    try:
        return _NUMBER[match[1]](float(match[2])) if match else float(text)
    except (ValueError, TypeError):
        raise InputError(f"{where}: {text!r} is not a number (write 0.03, 1e-2 or log(0.03))") from None


def parse_prior(text: str) -> tuple[str, Prior]:
    """``"tau_c=lognormal(log(0.03),0.75)"`` → ("tau_c", LogNormal(log 0.03, 0.75))."""
    where = f"--prior {text!r}"
    name, sep, dist = (x.strip() for x in text.partition("="))
    match = re.fullmatch(r"([a-z]+)\((.*)\)", dist.lower()) if sep and name else None
    if match is None:
        raise InputError(f"{where}: expected NAME=FAMILY(ARGS), e.g. tau_c=lognormal(log(0.03),0.75); "
                         f"families: {', '.join(f'{k}({', '.join(f.name for f in fields(c))})' for k, c in FAMILIES.items())}")
    family = FAMILIES.get(match[1])
    if family is None:
        raise InputError(f"{where}: unknown family {match[1]!r}; choose from {', '.join(FAMILIES)}")
    args = [_number(a, where) for a in _split_args(match[2])]
    names = [f.name for f in fields(family)]
    if len(args) != len(names):
        raise InputError(f"{where}: {match[1]} takes {len(names)} argument(s) ({', '.join(names)}), got {len(args)}")
    prior = family(*args)
    scale = [v for k, v in prior._params().items() if k in ("sigma", "alpha", "beta", "nu", "eta")]
    if any(not (v > 0 and math.isfinite(v)) for v in scale):
        raise InputError(f"{where}: scale and shape parameters must be positive")
    return name, prior


def _split_args(text: str) -> list[str]:
    """Split on the commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in parts + [current] if p.strip()]
