"""Which sweeps to run next: the expected shrinkage of the target intervals of η* and B*, per FLOP
(of the loss too, with the surface model: ``planning.advise_surface`` makes its simulations; the
search below is the same).

A candidate is one (N, D) cell swept over an lr × B grid of G runs, costing G·M(N)·D FLOPs
(M = 6N, or DeepSeek's M(N): ``planning.plan.FlopsModel``). For each fitted law (S posterior draws
θ_s; at a size not fitted, θ_s carries that size's fresh per-N deviations, shared by every cell
and target at that size) the method is a preposterior by importance sampling:

1. truth: for simulation j = 1..J a posterior draw θ_j;
2. outcome: the best value the candidate's sweep would find, u_jc = μ_θj(N_c, D_c) + s_θj·ε_jc
   (law + scatter + selection jitter: the censoring model's own observation), snapped to the cell
   (lo, hi) of the candidate's grid; a re-sweep of a cell already in the table shares its latent
   optimum and so only narrows it (``math.censored.repeat_logp``);
3. update: log w_s = Σ_c log p(outcome_jc | θ_s) over the set's cells, Pareto-smoothed (PSIS);
4. the weighted equal-tailed interval of the posterior predictive of log q* at every target: width
   W_j = log(hi/lo).

No model is refitted per candidate. Where k̂ > 0.7 the weights sit on a few draws and their interval
is far too narrow — those outcomes are the surprising ones, whose exact posterior is often *wider*
than today's — so during the search such a simulation counts as no shrinkage (W_j = W₀), and no set
can look good by making the weights degenerate. For the chosen set they are refitted exactly (NUTS on
the table plus the simulated cells; a random ``max_refits`` of them per law, whose mean stands for
the rest), and the report says how many.

The expected width after a set is the mean over j of W_j; its shrinkage 1 − E[W]/W₀ (W₀ today's
width), averaged over laws and targets, is the objective. Every set is scored on the same simulations
(common random numbers: same θ_j, same ε), so the difference between two sets has a paired Monte
Carlo error. A greedy search adds the candidate with the largest gain per FLOP while it fits the
budget and gains more than MIN_GAIN_Z paired standard errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.grids import SAME_SIZE_LOG_TOL, Grid, cell_log_bounds

if TYPE_CHECKING:   # light at import (the command line reads its defaults here): pandas and SciPy load on use
    import pandas as pd
    import xarray as xr

    from bayes_scaling.inputs.candidates import CandidateSpec
    from bayes_scaling.inputs.runtable import QuantityData
    from bayes_scaling.optimum.fit import Fitter, OptimumFit
    from bayes_scaling.planning.plan import FlopsModel

#: Default number of simulated outcomes per candidate (the Monte Carlo error of an expected width
#: is its spread over simulations / √J; common random numbers cancel most of it between sets).
DEFAULT_SIMS = 200
#: Draws reweighted per law (a longer posterior is thinned evenly: the cost is linear in draws).
MAX_DRAWS = 2000
#: PSIS k̂ above which importance weights are unreliable (Vehtari et al. 2024).
PARETO_K_MAX = 0.7
#: The greedy search adds a candidate only if it gains more than this many Monte Carlo standard errors.
MIN_GAIN_Z = 2.0
#: A target further than this many decades beyond the data in N or D is refused.
MAX_DECADES = 4.0
#: What the grid columns of a candidate are called in candidate files and specs.
GRID_KEYS = {"lr": "lr", "batch_size": "batch_tokens"}


@dataclass(frozen=True)
class Candidate:
    """One candidate sweep: a cell (N, D), its grids (natural-log values per quantity) and its run count G."""

    N: float
    D: float
    log_grids: dict[str, np.ndarray]
    runs: int
    label: str

    def flops(self, model: FlopsModel) -> float:
        """G · M(N) · D: every run of the sweep trains D tokens."""
        return float(self.runs * model.per_token(np.array([self.N]))[0] * self.D)

    def grid(self, quantity: str) -> np.ndarray:
        return np.exp(self.log_grids[quantity])


@dataclass(frozen=True)
class SweepShape:
    """How the table's sweeps are laid out, per quantity: the log step between grid values and the
    number of values a cell tries (what a default candidate's grid copies)."""

    step: dict[str, float]
    count: dict[str, int]

    @property
    def runs(self) -> int:
        return int(np.prod(list(self.count.values())))


def sweep_shape(runs: pd.DataFrame, grids: dict[str, Grid | None]) -> SweepShape:
    """The typical grid of a cell: a declared grid if given, else the median over cells of the
    distinct values tried and of their log steps."""
    columns = {"lr": "lr", "batch_size": "B"}
    step, count = {}, {}
    for q, col in columns.items():
        if grids.get(q) is not None:
            values = [np.log(grids[q].values)]
        else:
            values = [np.log(np.unique(cell[col].to_numpy())) for _, cell in runs.groupby(["N", "D"])]
        steps = [np.median(np.diff(v)) for v in values if v.size > 1]
        step[q] = float(np.median(steps)) if steps else float(np.log(2.0))
        count[q] = int(np.median([v.size for v in values]))
    return SweepShape(step, count)


def centred_grid(log_centre: float, step: float, count: int) -> np.ndarray:
    """``count`` log values ``step`` apart on the lattice k·step, centred on ``log_centre``."""
    k0 = int(np.round(log_centre / step)) - count // 2
    return step * (k0 + np.arange(count))


def make_candidate(N: float, D: float, fits: dict[str, OptimumFit], shape: SweepShape, label: str,
                   log_grids: dict[str, np.ndarray] | None = None, runs: int | None = None) -> Candidate:
    """A candidate at (N, D); quantities without a given grid get the table's grid shape centred on the
    law's current median at (N, D) (the grid a practitioner would centre on the forecast)."""
    grids = dict(log_grids or {})
    for q, fit in fits.items():
        if q not in grids:
            median = float(np.median(fit.log_draws([N], [D], noise=False)[:, 0]))
            grids[q] = centred_grid(median, shape.step[q], shape.count[q])
    return Candidate(float(N), float(D), grids, int(runs or shape.runs), label)


def default_candidates(frame: pd.DataFrame, fits: dict[str, OptimumFit], shape: SweepShape,
                       targets: list[tuple[float, float]] = ()) -> list[Candidate]:
    """Candidates around the data: twice the largest D at every size, four times at the largest;
    sizes two, four and eight times the largest, short (the table's fewest tokens per parameter)
    and at the largest size's median tokens per parameter (and four times that D at 4×); each
    target's own size beyond the table, short; and re-sweeps of the largest size's cells whose best
    value fell on an open grid edge."""
    sizes = np.sort(frame["N"].unique())
    top = sizes[-1]
    cells: list[tuple[float, float, str]] = []
    for n in sizes:
        d_max = frame.loc[frame["N"] == n, "D"].max()
        cells.append((n, 2 * d_max, "more D"))
    cells.append((top, 4 * frame.loc[frame["N"] == top, "D"].max(), "more D"))
    ratio = float(np.median(frame.loc[frame["N"] == top, "D"] / top))
    short = float((frame["D"] / frame["N"]).min())
    for factor in (2.0, 4.0, 8.0):
        cells.append((factor * top, factor * top * short, "larger N, short"))
        cells.append((factor * top, factor * top * ratio, "larger N"))
    cells.append((4 * top, 16 * top * ratio, "larger N, more D"))
    for n, _ in targets:
        if n > top * (1 + 1e-6):
            cells.append((n, n * short, "the target's size, short"))
    edge = frame[(frame["N"] == top) & ~(np.isfinite(frame[["lr_lo", "lr_hi", "B_lo", "B_hi"]]).all(axis=1))]
    for d in sorted(edge["D"], reverse=True)[:3]:
        cells.append((top, float(d), "re-sweep: optimum off the grid edge"))
    out, seen = [], set()
    for n, d, why in cells:
        key = (round(np.log(n), 6), round(np.log(d), 6))
        if key not in seen:
            seen.add(key)
            out.append(make_candidate(n, d, fits, shape, f"N={n:.3g},D={d:.3g} ({why})"))
    return out


# ----------------------------------------------------------------- the preposterior of one law


@dataclass
class Preposterior:
    """One fitted law's simulated outcomes at every candidate and the target draws they reweight."""

    model: str
    quantity: str
    before: np.ndarray          # (T,) today's log width at each target
    loglik: np.ndarray          # (C, J, S) log p(outcome_jc | θ_s)
    truth: np.ndarray           # (J,) the draw each simulation takes as the truth
    outcomes: dict[str, np.ndarray]   # y, lo, hi: (C, J) each
    repeats: np.ndarray         # (C,) index of the table cell a candidate re-sweeps, or -1
    sorted_pred: np.ndarray     # (S, T) target draws, sorted per target
    order: np.ndarray           # (S, T) their argsort
    ci_prob: float
    stand_in: StandIn | None = None   # the widths a degenerate simulation takes instead of no shrinkage

    @property
    def refittable(self) -> bool:
        """Whether :func:`check_by_refits` refits its degenerate simulations exactly: a law with a
        ``stand_in`` (the surface's) has no exact refit, and the stand-in takes their place."""
        return self.stand_in is None

    @property
    def n_sims(self) -> int:
        return self.truth.size

    def log_weights(self, chosen: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """PSIS-smoothed normalised log weights (J, S) of the set ``chosen`` and their k̂ (J,)."""
        from arviz_stats.base import array_stats
        from scipy.special import logsumexp

        lw = self.loglik[chosen].sum(axis=0)
        S = lw.shape[1]
        tail = int(np.floor(3.0 * np.sqrt(S))) if S > 225 else S // 5     # PSIS's tail size
        top = -np.sort(-lw, axis=1)
        smooth = top[:, 0] - top[:, tail - 1] > 1e-10   # a flat tail (every draw agrees) needs no smoothing
        khat = np.zeros(lw.shape[0])
        if smooth.any():
            with np.errstate(all="ignore"):            # psislw smooths exp(−x): pass −log ratios
                lw_s, k_s = array_stats.psislw(-lw[smooth], r_eff=1.0, axis=-1)
            lw = lw.copy()
            lw[smooth], khat[smooth] = lw_s, k_s
        return lw - logsumexp(lw, axis=1, keepdims=True), khat

    def widths(self, chosen: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(J, T) log widths of the updated intervals after the set ``chosen``, and k̂ (J,).

        Where k̂ > 0.7 the weights sit on a few draws and their interval is far too narrow (an exact
        refit of such an outcome — a surprising one — is typically *wider* than today's); such a
        simulation counts as no shrinkage (W₀) until :func:`check_by_refits` refits it, so that no
        set looks good by making the weights degenerate — or, for a law with a ``stand_in`` (the
        surface's, which has no exact refit), takes the stand-in's width."""
        if not chosen:
            return np.broadcast_to(self.before, (self.n_sims, self.before.size)), np.zeros(self.n_sims)
        lw, khat = self.log_weights(chosen)
        w = weighted_widths(self.sorted_pred, self.order, np.exp(lw), self.ci_prob)
        fallback = self.before if self.stand_in is None else self.stand_in.widths(chosen)
        return np.where((khat > PARETO_K_MAX)[:, None], fallback[None, :], w), khat


class StandIn(Protocol):
    """Expected widths (T,) after a set ``chosen`` by another route than importance weights."""

    def widths(self, chosen: list[int]) -> np.ndarray: ...


def weighted_widths(sorted_draws: np.ndarray, order: np.ndarray, weights: np.ndarray, ci_prob: float) -> np.ndarray:
    """Width (J, T) of the weighted equal-tailed ``ci_prob`` interval of each target's draws under each
    row of ``weights`` (J, S): the draws' weighted quantiles (1 ∓ ci_prob)/2."""
    alpha = (1.0 - ci_prob) / 2.0
    S, T = sorted_draws.shape
    out = np.empty((weights.shape[0], T))
    for t in range(T):
        cdf = np.cumsum(weights[:, order[:, t]], axis=1)
        lo = np.minimum((cdf < alpha).sum(axis=1), S - 1)
        hi = np.minimum((cdf < 1.0 - alpha).sum(axis=1), S - 1)
        out[:, t] = sorted_draws[hi, t] - sorted_draws[lo, t]
    return out


def interval_width(draws: np.ndarray, ci_prob: float) -> np.ndarray:
    """Log width of the equal-tailed interval of each column of (S, T) draws."""
    alpha = (1.0 - ci_prob) / 2.0
    lo, hi = np.quantile(draws, [alpha, 1.0 - alpha], axis=0)
    return hi - lo


def snap(u: np.ndarray, log_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid value nearest (in log) to each latent best value u, and its cell (lo, hi)."""
    mids = 0.5 * (log_grid[1:] + log_grid[:-1])
    k = np.searchsorted(mids, u)
    bounds = np.array([cell_log_bounds(log_grid, i) for i in range(log_grid.size)])
    return log_grid[k], bounds[k, 0], bounds[k, 1]


def find_repeats(candidates: list[Candidate], data: QuantityData) -> np.ndarray:
    """Index of the table cell each candidate re-sweeps (same N and D), or -1."""
    out = np.full(len(candidates), -1)
    for c, cand in enumerate(candidates):
        same = (np.abs(data.log_N - np.log(cand.N)) < SAME_SIZE_LOG_TOL) & (np.abs(data.log_D - np.log(cand.D)) < SAME_SIZE_LOG_TOL)
        if same.any():
            out[c] = int(np.flatnonzero(same)[0])
    return out


def simulate(fit: OptimumFit, data: QuantityData, candidates: list[Candidate], targets: list[tuple[float, float]],
             *, n_sims: int = DEFAULT_SIMS, ci_prob: float = 0.9, seed: int = 0) -> Preposterior:
    """Simulate every candidate's outcome J times from ``fit``'s posterior predictive and evaluate its
    log-likelihood under every draw (see the module docstring)."""
    from bayes_scaling.math.censored import repeat_logp
    from bayes_scaling.optimum.spec import Targets

    rng = np.random.default_rng(seed)
    spec, post, centers = fit.spec, fit.posterior, fit.centers
    post = thin(post)
    C = len(candidates)
    log_N = np.log(np.array([c.N for c in candidates] + [t[0] for t in targets], dtype=float))
    log_D = np.log(np.array([c.D for c in candidates] + [t[1] for t in targets], dtype=float))
    S = post.sizes["chain"] * post.sizes["draw"]
    where = Targets.at(centers, log_N, log_D)
    mu = np.broadcast_to(spec.mean(post, centers, fit.n_levels, where, rng), where.shape(S))
    pred = mu[:, C:] + spec.scatter(post, rng, (S, len(targets)))
    scale = spec.observation_scale(post, centers)[:, 0]                        # (S,)
    jitter = spec.selection_scale(centers)
    rho = np.clip(1.0 - jitter**2 / scale**2, 0.0, 1.0)
    truth = rng.integers(S, size=n_sims)
    repeats = find_repeats(candidates, data)
    y, lo, hi = (np.empty((C, n_sims)) for _ in range(3))
    loglik = np.empty((C, n_sims, S))
    for c, cand in enumerate(candidates):
        m, s = mu[truth, c], scale[truth]
        r = repeats[c]
        if r < 0:
            u = m + s * spec.observation_noise(rng, (n_sims,))
        else:                                   # the cell's latent optimum z, given its first look u₁
            u1 = truncated_normal(m, s, data.lo[r], data.hi[r], rng)
            z = m + rho[truth] * (u1 - m) + s * np.sqrt(rho[truth] * (1.0 - rho[truth])) * rng.standard_normal(n_sims)
            u = z + jitter * rng.standard_normal(n_sims)
        y[c], lo[c], hi[c] = snap(u, cand.log_grids[fit.quantity])
        if r < 0:
            loglik[c] = spec.outcome_logp(mu[None, :, c], scale[None, :], y[c][:, None], lo[c][:, None], hi[c][:, None])
        elif jitter == 0.0:                     # the grid value is the optimum: a re-sweep adds nothing
            loglik[c] = 0.0
        else:
            loglik[c] = repeat_logp(mu[None, :, c], scale[None, :], rho[None, :], data.lo[r], data.hi[r],
                                    lo[c][:, None], hi[c][:, None])
    order = np.argsort(pred, axis=0)
    return Preposterior(fit.model, fit.quantity, interval_width(pred, ci_prob), loglik, truth,
                        {"y": y, "lo": lo, "hi": hi}, repeats, np.take_along_axis(pred, order, axis=0), order, ci_prob)


def thin(draws: xr.Dataset, max_draws: int = MAX_DRAWS) -> xr.Dataset:
    """``draws`` (chain, draw, ...) thinned evenly along ``draw`` to at most ``max_draws`` in all (the
    reweighting's cost is linear in the draws)."""
    step = int(np.ceil(draws.sizes["chain"] * draws.sizes["draw"] / max_draws))
    return draws.isel(draw=slice(None, None, step)) if step > 1 else draws


def truncated_normal(mu: np.ndarray, sigma: np.ndarray, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """Draws of Normal(μ, σ) truncated to (lo, hi), by the inverse CDF (works in either tail)."""
    from scipy.special import log_ndtr, ndtri_exp

    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    flip = a > 0                                # sample the mirror image so both CDFs are small
    a2, b2 = np.where(flip, -b, a), np.where(flip, -a, b)
    la, lb = log_ndtr(a2), log_ndtr(b2)
    v = rng.uniform(size=np.shape(mu))
    with np.errstate(divide="ignore"):
        x = ndtri_exp(np.logaddexp(la, np.log(v) + lb + np.log1p(-np.exp(np.minimum(la - lb, 0.0)))))
    return mu + sigma * np.where(flip, -x, x)


# ----------------------------------------------------------------- choosing a set


@dataclass
class Score:
    """Expected widths of one set: per law (model, quantity), (T,) expected log widths and the
    fraction of simulations whose weights degenerated (k̂ > 0.7); the objective, and its value per
    simulation (J,) — the paired differences between two sets' ``per_sim`` give the Monte Carlo
    error of their difference."""

    chosen: tuple[int, ...]
    expected: dict[tuple[str, str], np.ndarray]
    high_k: dict[tuple[str, str], float]
    per_sim: np.ndarray

    @property
    def objective(self) -> float:
        return float(self.per_sim.mean())


def score_of(preps: list[Preposterior], chosen: tuple[int, ...], widths: list[np.ndarray],
             khats: list[np.ndarray]) -> Score:
    expected, high_k, shrink = {}, {}, []
    for p, w, khat in zip(preps, widths, khats):
        expected[(p.model, p.quantity)] = w.mean(axis=0)
        high_k[(p.model, p.quantity)] = float(np.mean(khat > PARETO_K_MAX))
        shrink.append(1.0 - w / p.before[None, :])                    # (J, T)
    return Score(tuple(chosen), expected, high_k, np.concatenate(shrink, axis=1).mean(axis=1))


def score(preps: list[Preposterior], chosen: list[int]) -> Score:
    """The set's expected widths and the objective: mean over laws and targets of 1 − E[W]/W₀."""
    pairs = [p.widths(list(chosen)) for p in preps]
    return score_of(preps, tuple(chosen), [w for w, _ in pairs], [k for _, k in pairs])


@dataclass
class Advice:
    """The candidates, each alone, the greedy path and the chosen set (with its refit check)."""

    candidates: list[Candidate]
    flops: np.ndarray
    budget: float
    alone: list[Score]
    path: list[Score]
    before: dict[tuple[str, str], np.ndarray]
    targets: list[tuple[float, float]]
    checked: Score | None = None
    refits: dict[str, object] = field(default_factory=dict)

    @property
    def chosen(self) -> tuple[int, ...]:
        return self.path[-1].chosen if self.path else ()

    @property
    def spent(self) -> float:
        return float(self.flops[list(self.chosen)].sum()) if self.chosen else 0.0


_SHARED: list[Preposterior] = []


def _score_shared(chosen: list[int]) -> Score:
    return score(_SHARED, chosen)


def score_many(preps: list[Preposterior], sets: list[list[int]], workers: int = 1) -> list[Score]:
    """:func:`score` of every set — in ``workers`` forked processes (which share the simulations
    copy-on-write) when there are enough sets to pay for them."""
    if workers < 2 or len(sets) < 2 * workers:
        return [score(preps, chosen) for chosen in sets]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _SHARED[:] = preps
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_score_shared, sets, chunksize=max(1, len(sets) // (4 * workers))))
    finally:
        _SHARED.clear()


def gains(trial: Score, current: Score, z: float = MIN_GAIN_Z) -> bool:
    """Whether ``trial`` beats ``current`` by more than ``z`` Monte Carlo standard errors (paired over
    the common simulations)."""
    diff = trial.per_sim - current.per_sim
    se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else 0.0
    return bool(diff.mean() > z * se and diff.mean() > 0)


def greedy(preps: list[Preposterior], flops: np.ndarray, budget: float, *, workers: int = 1,
           on_step=None) -> list[Score]:
    """Add, while the budget allows, the candidate with the largest objective gain per FLOP; stop when
    none fits or none gains. Returns the path: the empty set, then each set as it grows."""
    path = [score(preps, [])]
    left = budget
    while True:
        current = path[-1]
        options = [c for c in range(flops.size) if c not in current.chosen and flops[c] <= left]
        if not options:
            break
        trials = score_many(preps, [[*current.chosen, c] for c in options], workers)
        rate = [(t.objective - current.objective) / flops[c] for t, c in zip(trials, options)]
        best = int(np.argmax(rate))
        if not gains(trials[best], current):
            break
        path.append(trials[best])
        left -= flops[options[best]]
        if on_step:
            on_step(options[best])
    return path


def advise(preps: list[Preposterior], candidates: list[Candidate], flops: np.ndarray, budget: float,
           targets: list[tuple[float, float]], *, workers: int = 1, on_step=None) -> Advice:
    """Score every candidate alone and choose a set within ``budget`` (see the module docstring)."""
    if not candidates:
        raise InputError("no candidate sweeps to choose from")
    cheapest = float(flops.min())
    if budget < cheapest:
        c = int(np.argmin(flops))
        raise InputError(f"--budget {budget:.3g} FLOPs is below the cheapest candidate ({candidates[c].label}: "
                         f"{cheapest:.3g} FLOPs for {candidates[c].runs} runs)")
    alone = score_many(preps, [[c] for c in range(len(candidates))], workers)
    path = greedy(preps, flops, budget, workers=workers, on_step=on_step)
    before = {(p.model, p.quantity): p.before for p in preps}
    return Advice(candidates, flops, budget, alone, path, before, targets)


# ----------------------------------------------------------------- checking the chosen set by refits


def check_by_refits(advice: Advice, preps: list[Preposterior], fits: dict[tuple[str, str], OptimumFit],
                    datas: dict[str, QuantityData], fitter: Fitter, *, max_refits: int, seed: int = 0,
                    on_refit=None) -> None:
    """For each law, refit exactly (NUTS on the table + the chosen cells' simulated outcomes) the
    simulations whose weights degenerated (k̂ > 0.7) — all of them, or a random ``max_refits`` of them
    per law, whose mean exact width then stands for the rest (a stratified estimate: the degenerate
    outcomes are the surprising ones, and their exact intervals are typically wider than today's).
    The report says how many were refitted and what they shrank by."""
    chosen = list(advice.chosen)
    rng = np.random.default_rng(seed)
    widths, khats, report = [], [], {}
    for p in preps:
        key = (p.model, p.quantity)
        w, khat = p.widths(chosen)
        w = np.array(w)
        bad = np.flatnonzero(khat > PARETO_K_MAX) if chosen else np.array([], dtype=int)
        redo = rng.permutation(bad)[:max_refits] if p.refittable else bad[:0]
        for j in redo:
            refit = _refit_with(fits[key], datas[p.quantity], [advice.candidates[c] for c in chosen],
                                {k: v[chosen, j] for k, v in p.outcomes.items()}, p.repeats[chosen], fitter)
            draws = refit.log_draws([t[0] for t in advice.targets], [t[1] for t in advice.targets], seed=seed + int(j))
            w[j] = interval_width(draws, p.ci_prob)
            if on_refit:
                on_refit(f"{p.model} {p.quantity}")
        rest = np.setdiff1d(bad, redo)
        if redo.size and rest.size:
            w[rest] = w[redo].mean(axis=0)
        widths.append(w)
        khats.append(khat)
        report[f"{p.model} {p.quantity}"] = {
            "simulations": int(p.n_sims), "high_k": int(bad.size), "refitted": int(redo.size),
            "imputed_from_refits": int(rest.size) if redo.size else 0,
            "left_as_no_shrinkage": int(rest.size) if not redo.size and p.refittable else 0,
            "gaussian_update": 0 if p.refittable else int(bad.size),
            "refitted_mean_shrinkage": float(np.mean(1.0 - w[redo] / p.before)) if redo.size else None,
        }
    if any(p.refittable for p in preps):          # else nothing differs from the search's own scores
        advice.checked = score_of(preps, tuple(chosen), widths, khats)
    advice.refits = report


def _refit_with(fit: OptimumFit, data: QuantityData, cells: list[Candidate], outcome: dict[str, np.ndarray],
                repeats: np.ndarray, fitter: Fitter) -> OptimumFit:
    """``fit``'s kind refitted on ``data`` plus the simulated outcomes of ``cells``. A re-swept cell keeps
    one row whose cell is the overlap of both looks (they share one latent optimum)."""
    lo, hi, y = data.lo.copy(), data.hi.copy(), data.y.copy()
    new = [i for i, r in enumerate(repeats) if r < 0]
    for i, r in enumerate(repeats):
        if r >= 0:
            lo[r], hi[r] = max(lo[r], outcome["lo"][i]), min(hi[r], outcome["hi"][i])
            if not lo[r] < hi[r]:                # disjoint looks (jitter crossed a cell edge): keep the new one
                lo[r], hi[r] = outcome["lo"][i], outcome["hi"][i]
            y[r] = outcome["y"][i]
    from dataclasses import replace

    base = replace(data, lo=lo, hi=hi, y=y)
    grown = base.with_cells(np.log([cells[i].N for i in new]), np.log([cells[i].D for i in new]),
                            outcome["y"][new], outcome["lo"][new], outcome["hi"][new],
                            [cells[i].label for i in new])
    return fitter.fit(fit.spec.name, grown, centers=fit.centers)


# ----------------------------------------------------------------- tables


def advice_table(advice: Advice) -> pd.DataFrame:
    """One row per candidate × law × target: FLOPs, today's and the expected interval after the
    candidate alone (as hi/lo ratios), its shrinkage and gain per EFLOP, k̂ trouble, chosen and order."""
    import pandas as pd

    order = {c: i + 1 for i, c in enumerate(advice.chosen)}
    rows = []
    for c, cand in enumerate(advice.candidates):
        alone = advice.alone[c]
        for (model, q), before in advice.before.items():
            after = alone.expected[(model, q)]
            for t, (tn, td) in enumerate(advice.targets):
                shrink = 1.0 - after[t] / before[t]
                rows.append({
                    "candidate": cand.label, "N": cand.N, "D": cand.D, "runs": cand.runs, "flops": advice.flops[c],
                    "model": model, "quantity": q, "target_N": tn, "target_D": td,
                    "width_before": float(np.exp(before[t])), "width_after": float(np.exp(after[t])),
                    "shrinkage": shrink, "gain_per_eflop": shrink / (advice.flops[c] / 1e18),
                    "high_pareto_k": alone.high_k[(model, q)], "chosen": c in order, "order": order.get(c, 0),
                })
    return pd.DataFrame(rows)


def path_table(advice: Advice) -> pd.DataFrame:
    """The greedy path: after each added candidate, the FLOPs spent and the expected width at every
    law × target; the last rows ``checked`` repeat the chosen set with degenerate simulations refitted."""
    import pandas as pd

    rows = []
    steps = [(s, "importance sampling") for s in advice.path]
    if advice.checked is not None:
        steps.append((advice.checked, "checked by exact refits"))
    for step, (s, how) in enumerate(steps):
        spent = float(advice.flops[list(s.chosen)].sum()) if s.chosen else 0.0
        added = advice.candidates[s.chosen[-1]].label if s.chosen else ""
        for (model, q), w in s.expected.items():
            for t, (tn, td) in enumerate(advice.targets):
                rows.append({"step": min(step, len(advice.path) - 1), "added": added, "flops_spent": spent,
                             "model": model, "quantity": q, "target_N": tn, "target_D": td,
                             "width": float(np.exp(w[t])), "shrinkage": 1.0 - w[t] / advice.before[(model, q)][t],
                             "objective": s.objective, "high_pareto_k": s.high_k[(model, q)], "estimate": how})
    return pd.DataFrame(rows)


def check_targets(targets: list[tuple[float, float]], frame: pd.DataFrame) -> None:
    """Refuse targets more than MAX_DECADES beyond the table in N or D (no table says anything there)."""
    for n, d in targets:
        for value, col in ((n, "N"), (d, "D")):
            top = float(frame[col].max())
            if np.log10(value / top) > MAX_DECADES:
                raise InputError(f"--target {n:g},{d:g}: {col} = {value:.3g} is more than {MAX_DECADES:g} decades beyond "
                                 f"the table's largest {col} ({top:.3g}); no sweep here says anything there")



# ----------------------------------------------------------------- the sweep spec of the chosen set


def sweep_spec(advice: Advice, base: dict | None = None, *, seq_len: int = 64) -> str:
    """TOML text ``python -m training.sweep plan`` accepts: one ``[grid] cells`` entry per chosen
    candidate (its size, tokens, lr grid and batch grid in tokens, rounded to multiples of the
    sequence length), and the [data], [train], [runtime] sections of ``base`` (a sweep spec of the
    table's own sweep) when given."""
    base = base or {}
    data = dict(base.get("data", {}))
    seq_len = int(data.setdefault("seq_len", seq_len))
    cells = []
    for c in advice.chosen:
        cand = advice.candidates[c]
        batches = sorted({max(1, round(b / seq_len)) * seq_len for b in cand.grid("batch_size")})
        cells.append({"params": int(round(cand.N)), "tokens": int(round(cand.D)),
                      "lr": [float(f"{v:.6g}") for v in cand.grid("lr")], "batch_tokens": batches})
    grid = {"seeds": base.get("grid", {}).get("seeds", [0]), "cells": cells}
    lines = ["# Written by python -m bayes_scaling.advise: the chosen sweeps, one [grid] cells entry each.",
             "#   python -m training.sweep plan spec.toml --out runs/next",
             "# [data], [train] and [runtime] are your sweep's (--sweep-spec) or the trainer's defaults: edit",
             "# [data] to point at your corpus before training at these sizes.", ""]
    for name, section in (("data", data), ("grid", grid), ("train", base.get("train", {})),
                          ("runtime", base.get("runtime", {}))):
        lines.append(f"[{name}]")
        for key, value in section.items():
            if key == "cells":
                lines.append("cells = [")
                lines += [f"    {_toml(cell)}," for cell in value]
                lines.append("]")
            else:
                lines.append(f"{_toml_key(key)} = {_toml(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else '"' + key.replace('"', '\\"') + '"'


def _toml(value) -> str:
    """A TOML value: strings, booleans, numbers, lists and inline tables."""
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML has no {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def from_spec(spec: CandidateSpec, fits: dict[str, OptimumFit], shape: SweepShape) -> Candidate:
    """A candidate from a file's entry (``inputs.candidates.CandidateSpec``): its grids where given,
    the table's grid shape centred on the forecast where not; G = the grids' product unless given."""
    grids = {}
    if spec.lr is not None:
        grids["lr"] = np.log(spec.lr.values)
    if spec.batch_tokens is not None:
        grids["batch_size"] = np.log(spec.batch_tokens.values)
    counts = [grids[q].size if q in grids else shape.count[q] for q in ("lr", "batch_size")]
    return make_candidate(spec.N, spec.D, fits, shape, spec.label, grids, spec.runs or int(np.prod(counts)))
