"""``joint`` — the laws of both optima fitted together, their scatter about the laws correlated (LKJ).

    (z₁,i, z₂,i) = (a + b·x_N + c·x_D,  a₂ + b₂·x_N + c₂·x_D) + (σ·ε₁,  σ₂·ε₂),   corr(ε₁, ε₂) = ρ ~ LKJ(2)
    P(cell i) = P(z₁ + δ₁ ∈ (lo₁, hi₁),  z₂ + δ₂ ∈ (lo₂, hi₂))     (a bivariate Normal rectangle)

z₁ is this optimum's latent log q*, z₂ the other's (η* with B*), δ their selection jitters. The
spec of one optimum holds its own law (a, b, c, σ: the variables every kind has, so every
per-optimum report reads it unchanged), the other's (``a_pair`` … ``sigma_pair``) and ρ. Alone, each
optimum's law is ``quantized``'s; together, a cell's B grid cell says where in its lr grid cell the
latent η* lies (and back), and the planner draws B* given η* (:meth:`Joint.pair_draws`) instead of
each independently. ρ is the correlation of the *cells'* deviations from the two laws (a cell whose
best batch is above the law has its best lr above it too, when ρ > 0), not the tilt within a bowl.

The rectangle probability is ``math.bivariate.pair_logp`` (Gauss–Legendre over one coordinate's
truncated quantile), in NumPy for LOO and in PyTensor for NUTS. The LOO weights use this joint
likelihood; the cell probability every kind is compared on is this optimum's own (``cell_logp``).
A cell whose other optimum is unknown (a simulated or planned cell) is open in that coordinate,
which leaves its own cell's probability exactly ``quantized``'s.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.errors import InputError
from bayes_scaling.math.bivariate import pair_logp
from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.priors import LKJ
from bayes_scaling.optimum.spec import ModelOptions, OptimumSpec, Targets, cells_table, register

#: Rows of the ``pair`` data table: the other optimum's grid cell, its ȳ and σ_sel (constant rows)
PAIR_COLUMNS = ("lo", "hi", "a_loc", "sigma_sel")
#: The law parameters the other optimum's law repeats, with this suffix
PAIR = "_pair"
LAW = ("a", "b", "c", "sigma")
#: Posteriors kept for the other optimum's fit (a fit and its leave-out refits: one per fold)
SHARED_FITS = 64


def _own_draw(mu1, s1, lo1, hi1, mu2, s2, lo2, hi2, r, rng=None, size=None):
    """Posterior-predictive draw of ``q_obs``: this optimum's latent best value (its marginal)."""
    return rng.normal(mu1, s1, size=size)


@register
class Joint(OptimumSpec):
    name = "joint"
    summary = ("the η* and B* laws fitted together, each quantized, their cells' deviations from the laws "
               "correlated (ρ ~ LKJ(2)): a bivariate grid-cell likelihood; the planner draws B* given η*")
    formula = ("(z₁, z₂) = (a + b·x_N + c·x_D, a₂ + b₂·x_N + c₂·x_D) + (σε₁, σ₂ε₂), corr(ε₁, ε₂) = ρ; "
               "P(cell) = P(z₁ ∈ lr cell, z₂ ∈ B cell)")
    style = {"color": "tab:cyan"}
    main_priority = 19
    couples = True
    trace_vars = ("a", "b", "c", "sigma", "rho")
    interval = ("posterior predictive of the optimum: law + scatter σ (no grid, no selection jitter); "
                "fitted jointly with the other optimum")

    def priors(self):
        own = super().priors()
        return {**own, **{name + PAIR: prior for name, prior in own.items()}, "rho": LKJ(2.0)}

    def prior(self, name, options):
        """The user's prior (``--prior``) or the default; a prior given for a law parameter (``sigma``) is
        both optima's unless the other's is given too (``sigma_pair``); ρ takes only ``lkj(eta)``."""
        user = options.prior_for(name)
        if user is None and name.endswith(PAIR):
            user = options.prior_for(name[: -len(PAIR)])
        if name == "rho" and user is not None and not isinstance(user, LKJ):
            raise InputError(f"--prior rho={user}: a correlation takes lkj(eta), e.g. rho=lkj(2)")
        return user or self.priors()[name]

    @staticmethod
    def pair_y(centers) -> float:
        """ȳ of the other optimum (this one's when the other is unknown: its prior is then only a prior)."""
        return centers.pair_y if centers.pair_y is not None else centers.y

    def _check_centers(self, data, centers) -> None:
        if data.partner is not None and centers.pair_y is None:
            raise ValueError("joint: the table constants lack the other optimum's ȳ — use Centers.of(data)")

    def pair_bounds(self, data) -> tuple[np.ndarray, np.ndarray]:
        """The other optimum's grid cell of each cell, open (−∞, ∞) where it is not known."""
        if data.partner is None:
            return np.full(len(data.y), -np.inf), np.full(len(data.y), np.inf)
        return data.partner.lo, data.partner.hi

    def pair_table(self, data, centers) -> np.ndarray:
        lo, hi = self.pair_bounds(data)
        n = len(data.y)
        return np.vstack([lo, hi, np.full(n, self.pair_y(centers)), np.full(n, centers.pair_sigma_sel)])

    def data_arrays(self, data, centers):
        return {"cells": cells_table(data, centers), "pair": self.pair_table(data, centers)}

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        from bayes_scaling.optimum.likelihood import pair_logp_pt

        self._check_centers(data, centers)
        coords = {**self.coords(data), "pair_column": list(PAIR_COLUMNS)}
        with pm.Model(coords=coords) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            table = pm.Data("pair", self.pair_table(data, centers), dims=("pair_column", "cell"))
            p = {column: table[i] for i, column in enumerate(PAIR_COLUMNS)}
            a2 = self.prior("a" + PAIR, options).rv("a" + PAIR, shift=p["a_loc"][0])
            b2, c2, sigma2 = (self.rv(name + PAIR, options) for name in ("b", "c", "sigma"))
            rho = self.rv("rho", options)
            s1 = pm.math.sqrt(sigma**2 + d["sigma_sel"][0] ** 2)
            s2 = pm.math.sqrt(sigma2**2 + p["sigma_sel"][0] ** 2)
            pm.CustomDist("q_obs", a + b * d["x_N"] + c * d["x_D"], s1, d["lo"], d["hi"],
                          a2 + b2 * d["x_N"] + c2 * d["x_D"], s2, p["lo"], p["hi"], rho * sigma * sigma2 / (s1 * s2),
                          logp=pair_logp_pt, random=_own_draw, observed=d["y_obs"], dims="cell")
        return model

    def log_prior(self, posterior, centers, options=ModelOptions()):
        out = super().log_prior(posterior, centers, options)
        out["a" + PAIR] = self.prior("a" + PAIR, options).logp(stacked(posterior, "a" + PAIR), shift=self.pair_y(centers))
        return out

    # ----------------------------------------------------------------- fitting

    def sample(self, data, centers, fitter, config, *, posterior_only: bool = False):
        """NUTS once per pair: the other optimum's fit of the same cells (same sampler settings) is this
        one's with the roles swapped, when the two laws have the same priors (kept in ``fitter.shared``)."""
        import xarray as xr

        if data.partner is None or not self.symmetric(fitter.options):
            return super().sample(data, centers, fitter, config, posterior_only=posterior_only)
        store = fitter.shared.setdefault(self.name, {})
        other = store.pop(self._key(data, centers, config, swap=True), None)
        if other is not None and (posterior_only or "sample_stats" in other.children):  # a refit's tree has no stats
            groups = {name: other[name].to_dataset() for name in other.children}
            return xr.DataTree.from_dict(groups | {"posterior": self.swapped(groups["posterior"])})
        tree = super().sample(data, centers, fitter, config, posterior_only=posterior_only)
        store[self._key(data, centers, config)] = xr.DataTree.from_dict(
            {name: tree[name].to_dataset() for name in ("posterior", "sample_stats") if name in tree.children})
        while len(store) > SHARED_FITS:                  # a fit whose partner never came (SBC, the advisor)
            store.pop(next(iter(store)))
        return tree

    @staticmethod
    def _key(data, centers, config, *, swap: bool = False) -> tuple:
        """What fixes the posterior: both optima's cells and bounds and table constants, in role order
        (``swap``: the key the other optimum's fit of the same data was stored under), and the sampler."""
        own = (data.name, data.lo.tobytes(), data.hi.tobytes(), centers.y, centers.sigma_sel)
        pair = (data.partner.name, data.partner.lo.tobytes(), data.partner.hi.tobytes(), centers.pair_y,
                centers.pair_sigma_sel)
        return (*((pair, own) if swap else (own, pair)), data.log_N.tobytes(), data.log_D.tobytes(), centers.log_N,
                centers.log_D, config)

    def symmetric(self, options: ModelOptions) -> bool:
        """Whether swapping the two optima leaves the model as it is (every law prior the same for both)."""
        return all(self.prior(name, options) == self.prior(name + PAIR, options) for name in LAW)

    @staticmethod
    def swapped(posterior):
        """The posterior with this optimum's and the other's law exchanged (ρ is symmetric)."""
        names = {name: name + PAIR for name in LAW}
        return posterior.rename({**names, **{v: k for k, v in names.items()}})

    # ----------------------------------------------------------------- posterior math (NumPy)

    def pair_mean(self, posterior, centers, targets: Targets) -> np.ndarray:
        """Draws of the other optimum's law mean (S, T)."""
        a, b, c = (stacked(posterior, k + PAIR)[:, None] for k in ("a", "b", "c"))
        return a + b * targets.x_N + c * targets.x_D

    def log_likelihood(self, posterior, centers, n_levels, data):
        """The joint cell probability of both grid cells (what NUTS was given), shape (S, n)."""
        targets = Targets.at(centers, data.log_N, data.log_D)
        mu1 = self.mean(posterior, centers, n_levels, targets, np.random.default_rng(0))
        mu2 = self.pair_mean(posterior, centers, targets)
        sigma, sigma2, rho = (stacked(posterior, k)[:, None] for k in ("sigma", "sigma" + PAIR, "rho"))
        s1, s2 = self.observation_scale(posterior, centers), np.sqrt(sigma2**2 + centers.pair_sigma_sel**2)
        lo2, hi2 = self.pair_bounds(data)
        return pair_logp(mu1, s1, data.lo[None, :], data.hi[None, :], mu2, s2, lo2[None, :], hi2[None, :],
                         rho * sigma * sigma2 / (s1 * s2))

    def pair_draws(self, posterior, centers, n_levels, log_N, log_D, *, rng: np.random.Generator,
                   paired: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Joint posterior-predictive draws (this optimum, the other) of log q* at (log_N, log_D):
        z₂ = μ₂ + σ₂(ρ·ε₁ + √(1 − ρ²)·ε₂) with z₁ = μ₁ + σ·ε₁ — the other given this one, draw by draw."""
        n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
        targets = Targets.at(centers, log_N, log_D, paired=paired, n_draws=n_draws)
        shape = targets.shape(n_draws)
        mu1 = np.broadcast_to(self.mean(posterior, centers, n_levels, targets, rng), shape)
        mu2 = np.broadcast_to(self.pair_mean(posterior, centers, targets), shape)
        sigma, sigma2, rho = (stacked(posterior, k)[:, None] for k in ("sigma", "sigma" + PAIR, "rho"))
        e1, e2 = rng.standard_normal(shape), rng.standard_normal(shape)
        own, other = mu1 + sigma * e1, mu2 + sigma2 * (rho * e1 + np.sqrt(1.0 - rho**2) * e2)
        return (own[:, 0], other[:, 0]) if paired else (own, other)

    def pair_observation_draws(self, posterior, centers, n_levels, log_N, log_D, *, rng: np.random.Generator
                               ) -> tuple[np.ndarray, np.ndarray]:
        """Draws (S, T) of the best runs a sweep would find of both optima (before the grid rounds them):
        the joint law, its correlated scatter and each optimum's own selection jitter (what SBC simulates)."""
        own, other = self.pair_draws(posterior, centers, n_levels, log_N, log_D, rng=rng)
        return (own + centers.sigma_sel * rng.standard_normal(own.shape),
                other + centers.pair_sigma_sel * rng.standard_normal(other.shape))

    def coefficient_draws(self, posterior, centers, n_levels):
        """The own law on the raw scale (as every kind), plus ρ."""
        return {**super().coefficient_draws(posterior, centers, n_levels), "rho": stacked(posterior, "rho")}

