"""Simulation-based calibration (Talts et al. 2018) of the optimum models and the surface model.

One simulation: draw θ̃ from the model's prior, simulate a table on a real table's design
(its (N, D) cells and grids), fit, and record the rank of θ̃ among L posterior draws
thinned evenly in sampling order, rank = #{ℓ : θ_ℓ < θ̃} ∈ {0, …, L}, and whether θ̃ lies
in the central 50 % / 90 % posterior interval. Over many simulations a calibrated model
gives ranks uniform on {0, …, L} and 50 % / 90 % coverage.

* best-run kinds (every Bayesian spec of the optimum registry, :func:`sbc_best_run`): θ̃ is
  a draw of the PyMC model's own prior (``OptimumSpec.prior_draws``), taken as it comes —
  no draw is redrawn, so a law whose optima fall off the grid gives open edge cells, and a
  draw that puts every cell in one edge cell (nothing identified but a bound) is kept;
  each cell's best value is the kind's observation draw (``observation_draws``: the law,
  its scatter and the selection jitter σ_sel) snapped to the grid — the kind's own story
  plus the grid, so ``pooled`` (which takes the grid value as exact) is *expected* to be
  off: that is what the check is for. Checked: every element of every posterior variable
  of the kind (``diagnostic_vars``: free and derived, a vector's k-th element as
  ``name[k]``; the raw non-centred ``z_*`` are left out) and ``pred``, the law's mean
  log q* at an extrapolation target (2× the largest N, 2× the largest D);
* surface: a loss for every (η, B) of the table's grids in every cell, from the straight-valley
  LINEX bowl of ``math.bowl.bowl`` (one shape for all cells) with Student-t₄ noise, censored above
  the window as in the real data. That is *not* the fitted model's family (``surface.model``:
  per-cell curved-valley bowls, L* on a loss law), so for the surface this is a check under a
  misspecified bowl, not exact SBC (``benchmarks/surface_checks.py misspec`` is the fuller one).
  Its other deviations, stated: prior draws whose cell optima leave the grid are redrawn
  (:class:`PriorDraws`, a truncated prior); L*_j is drawn about the table's best losses; the sweep covers
  the full grid product in every cell; checked: b, c, σ and ``pred`` (:func:`checked`).

:func:`coverage_table` gives each coverage a Wilson score 95 % interval and each rank
histogram a chi-square p-value of uniformity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.grids import cell_log_bounds, merge_close
from bayes_scaling.inputs.runtable import QUANTITIES, QuantityData, other_quantity
from bayes_scaling.math.bowl import bowl
from bayes_scaling.math.draws import stacked
from bayes_scaling.math.student_t import NU
from bayes_scaling.optimum import spec as specs
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.spec import Centers, ModelOptions, OptimumSpec
from bayes_scaling.surface.data import WINDOW, surface_data
from bayes_scaling.surface.fit import SurfaceFitter
from bayes_scaling.surface.model import OPTIMA

#: Surface SBC: prior draws examined per simulation before giving up on one whose optima fit the grid.
MAX_REDRAWS = 10_000
#: Surface SBC: prior draws taken from a model at once (one compiled prior-predictive function per kind).
PRIOR_BATCH = 2_000
#: Level of the binomial (Wilson score) interval of a coverage.
COVERAGE_LEVEL = 0.95
#: Rank-uniformity test: the ranks 0…L are grouped into this many runs of consecutive values.
RANK_BINS = 10
#: A rank histogram whose chi-square p-value is below this is flagged non-uniform.
RANK_ALPHA = 0.01


@dataclass(frozen=True)
class Design:
    """The real table's design: cells (N, D) and the grids swept (natural log)."""

    N: np.ndarray
    D: np.ndarray
    log_grid: dict[str, np.ndarray]      # "lr" / "batch_size" → sorted log grid values
    min_loss: np.ndarray                  # the real cells' best losses (where simulated bowls sit)

    @classmethod
    def of(cls, runs: pd.DataFrame) -> Design:
        cells = runs[runs["status"] == "ok"].groupby(["N", "D"])["loss"].min().reset_index()
        return cls(N=cells["N"].to_numpy(float), D=cells["D"].to_numpy(float),
                   log_grid={"lr": np.log(merge_close(runs["lr"].to_numpy())),
                             "batch_size": np.log(merge_close(runs["B"].to_numpy()))},
                   min_loss=cells["loss"].to_numpy(float))

    @property
    def n_levels(self) -> np.ndarray:
        return np.unique(self.N)

    def centers(self, quantity: str) -> Centers:
        """The table constants, ȳ at each optimum's grid middle (the other optimum's too, for ``joint``)."""
        g, h = self.log_grid[quantity], self.log_grid[other_quantity(quantity)]
        return Centers(float(np.log(self.N).mean()), float(np.log(self.D).mean()), float(0.5 * (g[0] + g[-1])),
                       pair_y=float(0.5 * (h[0] + h[-1])))

    def target(self) -> tuple[float, float]:
        """The extrapolation target of ``pred``: 2× the largest N and D."""
        return 2.0 * self.N.max(), 2.0 * self.D.max()


    def template(self, quantity: str, *, partner: bool = True) -> QuantityData:
        """The design's cells as a QuantityData with no observation yet (open cells), to build models on
        (its ``partner``, the other optimum, as open)."""
        n = self.N.size
        return QuantityData(name=quantity, log_N=np.log(self.N), log_D=np.log(self.D),
                            y=np.full(n, self.centers(quantity).y), lo=np.full(n, -np.inf), hi=np.full(n, np.inf),
                            n_index=np.searchsorted(self.n_levels, self.N), n_levels=self.n_levels,
                            cell=[f"N={n_:.3g},D={d:.3g}" for n_, d in zip(self.N, self.D)],
                            partner=self.template(other_quantity(quantity), partner=False) if partner else None)


class PriorDraws:
    """Draws from a kind's prior on a design, kept one at a time while their optima fit the grid
    (the surface SBC's truncated prior; the best-run SBC takes the prior as it comes)."""

    def __init__(self, kind: str, design: Design, quantity: str, rng: np.random.Generator) -> None:
        self.spec, self.design, self.quantity, self.rng = specs.get(kind), design, quantity, rng
        self._pool: xr.Dataset | None = None
        self._next = 0

    def _draw(self) -> xr.Dataset:
        if self._pool is None or self._next >= self._pool.sizes["draw"]:
            seed = int(self.rng.integers(2**31))
            self._pool = self.spec.prior_draws(self.design.template(self.quantity), self.design.centers(self.quantity),
                                               PRIOR_BATCH, seed)
            self._next = 0
        theta = self._pool.isel(draw=[self._next])
        self._next += 1
        return theta

    def next(self) -> tuple[xr.Dataset, np.ndarray]:
        """(θ̃ as a one-draw posterior-shaped Dataset, the latent log q* of each cell) whose optima
        all lie inside the grid, one grid step from either end."""
        d, q = self.design, self.quantity
        grid = d.log_grid[q]
        step = float(np.median(np.diff(grid)))
        for _ in range(MAX_REDRAWS):
            theta = self._draw()
            z = self.spec.predictive(theta, d.centers(q), d.n_levels, np.log(d.N), np.log(d.D), rng=self.rng)[0]
            if np.all((z > grid[0] + step) & (z < grid[-1] - step)):
                return theta, z
        raise RuntimeError(f"no prior draw of {q} in {MAX_REDRAWS} kept its optima on the grid")


def design_of(data: str) -> Design:
    """The design of a bundled dataset or run table: :meth:`Design.of` its runs, on its declared
    grids where it declares them (a best-runs-only table such as blog-partII), else on the values swept."""
    from bayes_scaling.inputs.datasets import load_runs

    loaded = load_runs(data)
    design = Design.of(loaded.runs)
    declared = {q: np.log(g.values) for q, g in (("lr", loaded.lr_grid), ("batch_size", loaded.batch_grid))
                if g is not None}
    return replace(design, log_grid={**design.log_grid, **declared})


def quantize(y: np.ndarray, design: Design, quantity: str) -> QuantityData:
    """The best grid value of each cell: the latent best value ``y`` snapped to the nearest grid
    point (in log space), with that point's cell (open-ended at the grid's first and last point)."""
    grid = design.log_grid[quantity]
    k = np.abs(y[:, None] - grid[None, :]).argmin(axis=1)
    bounds = np.array([cell_log_bounds(grid, i) for i in k])
    template = design.template(quantity, partner=False)
    return QuantityData(name=quantity, log_N=template.log_N, log_D=template.log_D, y=grid[k],
                        lo=bounds[:, 0], hi=bounds[:, 1], n_index=template.n_index, n_levels=design.n_levels,
                        cell=template.cell)


def simulate_table(spec: OptimumSpec, theta: xr.Dataset, design: Design, quantity: str,
                   rng: np.random.Generator) -> QuantityData:
    """The best-runs table a sweep of the design would give if θ̃ (a one-draw posterior) were true:
    each cell's best value drawn from the kind's observation model (``observation_draws``), snapped
    to the grid by :func:`quantize`."""
    args = (theta, design.centers(quantity), design.n_levels, np.log(design.N), np.log(design.D))
    if spec.couples:                       # both optima's best values, drawn jointly
        y, y_pair = (v[0] for v in spec.pair_observation_draws(*args, rng=rng))
        return replace(quantize(y, design, quantity), partner=quantize(y_pair, design, other_quantity(quantity)))
    return quantize(spec.observation_draws(*args, rng=rng)[0], design, quantity)


def open_fraction(data: QuantityData) -> float:
    """Share of the cells whose best value is an edge cell of the grid (lo = −∞ or hi = +∞)."""
    return float(np.mean(np.isinf(data.lo) | np.isinf(data.hi)))


def sbc_draws(spec: OptimumSpec, posterior: xr.Dataset, design: Design, quantity: str,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draws (S,) of every checked scalar: each element of each of ``spec.diagnostic_vars`` (free
    and derived variables, not the raw non-centred ``z_*``; element k of a vector named ``name[k]``),
    and ``pred``, the law's mean log q* at the design's target (in a per-N kind a new N draws a fresh
    population slope, as in the posterior predictive)."""
    out = {}
    for name in spec.diagnostic_vars(posterior):
        values = stacked(posterior, name)
        for index in np.ndindex(values.shape[1:]):
            label = f"{name}[{','.join(map(str, index))}]" if index else name
            out[label] = values[(slice(None), *index)]
    tN, tD = design.target()
    out["pred"] = spec.predictive(posterior, design.centers(quantity), design.n_levels, np.log([tN]), np.log([tD]),
                                  rng=rng, noise=False)[:, 0]
    return out


def rank_and_cover(truth: float, draws: np.ndarray, n_ranks: int) -> dict[str, float]:
    """Rank of ``truth`` among ``n_ranks`` draws thinned evenly in sampling order (thinning lowers
    their autocorrelation), and whether the central 50 % / 90 % interval of all draws covers it."""
    thin = draws[np.linspace(0, draws.size - 1, n_ranks).astype(int)]
    q = np.quantile(draws, [0.05, 0.25, 0.75, 0.95])
    return {"rank": int(np.sum(thin < truth)), "n_ranks": n_ranks,
            "cover50": bool(q[1] <= truth <= q[2]), "cover90": bool(q[0] <= truth <= q[3])}


def sbc_best_run(kind: str, design: Design, n_sims: int, config: SamplerConfig, *, n_ranks: int = 99,
                 seed: int = 0, options: ModelOptions = ModelOptions(),
                 progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """SBC of a best-run kind (any Bayesian spec), both optima; one row per (sim, quantity, checked scalar)
    with the rank, coverage, whether the fit passed its diagnostics, its divergences, its
    wall time and the share of open cells in the simulated table.

    A kind that ``couples`` the optima draws both optima's tables together per simulation and fits once,
    as the lr's law: its rows are all quantity "lr", the batch's law checked as the ``*_pair`` scalars
    (``pred`` is the lr's). The ``n_sims`` prior draws of each optimum are taken in one batch, and one
    :class:`Fitter` compiles the kind once and swaps the data for every fit. ``progress(k)`` is called
    after the k-th simulation.
    """
    rng = np.random.default_rng(seed)
    fitter = Fitter(config, options=options)
    spec = specs.get(kind)
    quantities = list(QUANTITIES)[:1] if spec.couples else list(QUANTITIES)      # one joint fit holds both laws
    priors = {q: spec.prior_draws(design.template(q), design.centers(q), n_sims, int(rng.integers(2**31)), options)
              for q in quantities}
    rows = []
    for sim in range(n_sims):
        for q in quantities:
            theta = priors[q].isel(draw=[sim])
            data = simulate_table(spec, theta, design, q, rng)
            fit = fitter.fit(kind, data, design.centers(q))
            truths = sbc_draws(spec, theta, design, q, rng)
            draws = sbc_draws(spec, fit.posterior, design, q, np.random.default_rng(0))
            fit_info = {"fit_ok": fit.diagnostics.ok, "divergences": fit.diagnostics.divergences,
                        "fit_s": fit.wall_s, "open_cells": open_fraction(data)}
            for name, values in draws.items():
                truth = float(truths[name][0])
                rows.append({"model": kind, "sim": sim, "quantity": q, "param": name, "truth": truth,
                             **rank_and_cover(truth, values, n_ranks), **fit_info})
        if progress is not None:
            progress(sim + 1)
    return pd.DataFrame(rows)


def checked(spec, posterior: xr.Dataset, design: Design, quantity: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draws of the checked scalars: b, c, σ and ``pred``, the law's mean log q* at the target
    (a new N: in a per-N kind a fresh population slope, as in the posterior predictive)."""
    tN, tD = design.target()
    pred = spec.predictive(posterior, design.centers(quantity), design.n_levels, np.log([tN]), np.log([tD]),
                           rng=rng, noise=False)[:, 0]
    return {"b": stacked(posterior, "b"), "c": stacked(posterior, "c"), "sigma": stacked(posterior, "sigma"), "pred": pred}


def simulate_sweep(design: Design, rng: np.random.Generator, *, diverge_above: float = 1.0,
                   priors: dict[str, PriorDraws] | None = None) -> tuple[pd.DataFrame, dict[str, xr.Dataset]]:
    """A full sweep (pooled slopes): every grid (η, B) in every cell.

    The laws come from the ``quantized`` kind's prior (the surface's law priors are the same);
    the bowls are straight-valley LINEX bowls (``math.bowl.bowl``) with one shape for all cells —
    not ``surface.model``'s family (module docstring). Returns (run table, θ̃ of the law by
    quantity); see :func:`sweep_runs` for the table.
    """
    priors = priors or {q: PriorDraws("quantized", design, q, rng) for q in OPTIMA}
    laws, opt = {}, []
    for q in OPTIMA:
        laws[q], z = priors[q].next()
        opt.append(z)
    delta = rng.normal(0, rng.lognormal(np.log(0.3), 0.75), size=design.N.size)
    bowl_params = {"h": np.exp(rng.normal(np.log(0.05), 1.5, size=2)), "rho": np.tanh(rng.normal(0, 0.5)),
                   "beta": rng.normal(0, 1, size=2), "delta": delta - delta.mean(),
                   "l_star": rng.normal(design.min_loss, 0.05), "sigma_loss": rng.lognormal(np.log(0.005), 1.0)}
    return sweep_runs(design, np.array(opt), rng, diverge_above=diverge_above, **bowl_params), laws


def sweep_runs(design: Design, log_opt: np.ndarray, rng: np.random.Generator, *, h, rho: float, beta,
               delta: np.ndarray, l_star: np.ndarray, sigma_loss: float, diverge_above: float = 1.0) -> pd.DataFrame:
    """Run table of a full sweep of the design's grids around given cell optima ``log_opt`` (2, J).

    loss = L*_j + f_j(log η − log η*_j, log B − log B*_j) + σ_L·t₄ noise; a run whose noiseless
    loss exceeds L*_j by ``diverge_above`` nats is recorded as diverged (no loss), as a
    blown-up run would be.
    """
    log_eta, log_b = np.meshgrid(design.log_grid["lr"], design.log_grid["batch_size"], indexing="ij")
    log_eta, log_b = log_eta.ravel(), log_b.ravel()
    frames = []
    for j in range(design.N.size):
        mean = l_star[j] + bowl(log_eta - log_opt[0][j], log_b - log_opt[1][j], np.exp(delta[j]), h, rho, beta)
        loss = mean + sigma_loss * rng.standard_t(NU, size=mean.size)
        diverged = mean > l_star[j] + diverge_above
        frames.append(pd.DataFrame({"N": design.N[j], "D": design.D[j], "B": np.exp(log_b), "lr": np.exp(log_eta),
                                    "loss": np.where(diverged, np.nan, loss),
                                    "status": np.where(diverged, "diverged", "ok")}))
    runs = pd.concat(frames, ignore_index=True)
    runs.insert(0, "run_id", [f"sim{i}" for i in range(len(runs))])
    return runs


def sbc_surface(design: Design, n_sims: int, config: SamplerConfig, *, n_ranks: int = 99, seed: int = 0,
                window: float = WINDOW) -> pd.DataFrame:
    """SBC of the surface model (pooled slopes); one row per (sim, quantity, param)."""
    rng = np.random.default_rng(seed)
    fitter = SurfaceFitter(config)
    law_spec = specs.get("quantized")
    priors = {q: PriorDraws("quantized", design, q, rng) for q in OPTIMA}
    rows = []
    for sim in range(n_sims):
        runs, laws = simulate_sweep(design, rng, priors=priors)
        sf = fitter.fit(surface_data(runs, window=window))
        for q, fit in sf.as_optimum_fits().items():
            draws = checked(law_spec, fit.posterior, design, q, np.random.default_rng(0))
            for name, truth in checked(law_spec, laws[q], design, q, rng).items():
                rows.append({"model": "surface", "sim": sim, "quantity": q, "param": name, "truth": float(truth[0]),
                             **rank_and_cover(float(truth[0]), draws[name], n_ranks), "fit_ok": sf.diagnostics.ok})
    return pd.DataFrame(rows)


def binomial_interval(k: np.ndarray, n: np.ndarray, level: float = COVERAGE_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion k/n: (p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n),
    p̂ = k/n, z the standard-normal quantile of (1 + level)/2."""
    from scipy.stats import norm

    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    z = norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def rank_uniformity(ranks: np.ndarray, n_ranks: int, bins: int = RANK_BINS) -> float:
    """p-value of Pearson's chi-square test that ``ranks`` are uniform on {0, …, n_ranks}: rank r falls
    in bin ⌊r·bins/(n_ranks + 1)⌋, whose expected share is its number of rank values over n_ranks + 1;
    NaN when a bin expects fewer than 5 ranks (too few for the chi-square approximation)."""
    from scipy.stats import chisquare

    values = np.arange(n_ranks + 1) * bins // (n_ranks + 1)
    share = np.bincount(values, minlength=bins) / (n_ranks + 1)
    counts = np.bincount(np.asarray(ranks, dtype=int) * bins // (n_ranks + 1), minlength=bins)
    expected = share * counts.sum()
    return float(chisquare(counts, expected).pvalue) if expected.min() >= 5 else float("nan")


def coverage_table(sbc: pd.DataFrame) -> pd.DataFrame:
    """Per design (when the rows name one), model and checked scalar, pooled over the two optima:
    n, the 50 % and 90 % coverage with their Wilson 95 % intervals (``_lo``, ``_hi``), the rank
    uniformity p-value ``rank_p``, the mean normalised rank, the share of fits that passed their
    diagnostics and the mean share of open cells; ``fails`` names what fails — ``50%`` / ``90%``
    when the nominal level lies outside the interval, ``ranks`` when rank_p < RANK_ALPHA."""
    keys = [k for k in ("design", "model", "param") if k in sbc]
    rows = []
    for key, g in sbc.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        row["n"] = n = len(g)
        fails = []
        for level in (50, 90):
            hits = int(g[f"cover{level}"].sum())
            lo, hi = binomial_interval(hits, n)
            row.update({f"cover{level}": hits / n, f"cover{level}_lo": float(lo), f"cover{level}_hi": float(hi)})
            if not lo <= level / 100 <= hi:
                fails.append(f"{level}%")
        row["rank_p"] = rank_uniformity(g["rank"].to_numpy(), int(g["n_ranks"].iloc[0]))
        if row["rank_p"] < RANK_ALPHA:
            fails.append("ranks")
        row["rank_mean"] = float((g["rank"] / g["n_ranks"]).mean())
        row["fits_ok"] = float(g["fit_ok"].mean())
        if "open_cells" in g:
            row["open_cells"] = float(g["open_cells"].mean())
        row["fails"] = ",".join(fails)
        rows.append(row)
    return pd.DataFrame(rows)
