"""Which sweeps to run next, with the surface model: the expected shrinkage of the intervals of η*, B*
*and of the loss* L*(N, D) at the targets (``advise --models surface``).

The surface posterior (``surface.model``; S draws θ_s of the optimum laws, the loss law, the scatters
σ_η, σ_B, σ_L* and every fitted cell's latents z_j = (L*_j, log η*_j, log B*_j)) is updated by what a
candidate sweep would say about its own cell, summarised as a measurement of that cell's latents:

    y_c = z_c + e_c,    e_c ~ Normal(0, diag(se_L², se_η², se_B²)),

where a new cell's latents follow the laws, z_c ~ Normal(m_θ(N_c, D_c), diag(σ_L*², σ_η², σ_B²)), with m the
loss law and the two optimum laws at (N_c, D_c), so that

    log p(y_c | θ_s) = Σ_q log Normal(y_cq; m_s,q(N_c, D_c), √(σ_s,q² + se_q²))      (a new cell)
    log p(y_c | θ_s) = Σ_q log Normal(y_cq; z_s,jq, se_q)                               (a re-sweep of cell j)

— closed forms, so no cell's bowl has to be integrated out per draw. se_q is what one sweep tells about
its cell, read off today's fit: a fitted cell's posterior variance v_j is that of a measurement with error
se_j joined to its prior from the laws (variance ≈ Var(m_j) + E[σ²]), so

    se_j² = 1 / (1/v_j − 1/(Var(m_j) + E[σ²])),     se_q = the median over cells,

for a sweep of the table's median run count n̄; a candidate of G runs has se_q·√(n̄/G) (precision grows
with the runs; where its grid sits is not modelled: the default candidates centre it on the forecast).
A cell whose own runs add nothing has se_j = ∞; a quantity no cell measures adds no term. The
simulation of outcome j draws θ_j, then z_c from the laws (or the re-swept cell's z_j), then y_c = z_c +
se·ε — the same model the likelihood scores, so the update is exact *for the summary* (a coarsening of
the sweep's runs). The loss law and the optimum laws share no parameter, so the loss target is
reweighted by the L* measurements and the optima by the (η*, B*) ones (``BLOCKS``). The rest is
``planning.advise``: PSIS weights and the weighted intervals at the targets (log L*, log η*, log B* of a
new cell there: law + scatter). There is no exact refit of the surface per simulation (minutes each):
where k̂ > 0.7 the width is the linear-Gaussian update's (:class:`GaussianUpdate`), and the report
says how many. ``benchmarks/advise_study.py surface`` checks the whole against NUTS refits of the
surface on simulated sweeps.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from bayes_scaling.planning.advise import Candidate, Preposterior, interval_width, thin

if TYPE_CHECKING:
    from bayes_scaling.surface.fit import SurfaceFit

#: The surface's quantities, in the order of the cell latents z = (L*, log η*, log B*).
QUANTITIES = ("loss", "lr", "batch_size")
#: Blocks of latents whose measurements reweight each other's targets: the loss law shares no parameter
#: with the optimum laws, so the loss target is reweighted by the L* measurements alone and the optima by
#: the (η*, B*) ones — approximately the same update (a cell's bowl couples its L* and its optimum a
#: little in the posterior), with far less degenerate weights.
BLOCKS = {"loss law": (0,), "optimum laws": (1, 2)}


def thinned(sf: SurfaceFit) -> SurfaceFit:
    """``sf`` with its posterior (and sample stats) thinned as ``planning.advise.thin`` thins a law's."""
    import xarray as xr

    tree = xr.DataTree.from_dict({name: thin(sf.idata[name].to_dataset()) for name in ("posterior", "sample_stats")})
    return replace(sf, idata=tree)


def target_draws(m: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(S, 3, T) predictive draws of (log L*, log η*, log B*) of a new cell at each target, from the law
    means ``m`` (S, 3, T) and scatters ``sigma`` (S, 3): law + scatter, L* on the log scale so that its
    interval is a hi/lo ratio like η*'s and B*'s."""
    pred = m + sigma[:, :, None] * rng.standard_normal(m.shape)
    pred[:, 0] = np.log(np.maximum(pred[:, 0], 1e-12))
    return pred


def law_means(sf: SurfaceFit, N: np.ndarray, D: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(S, 3, T) law means m_θ of (L*, log η*, log B*) at cells (N, D): the loss law and the optimum laws
    without their scatter (cells at one new size share its fresh per-N slope draw)."""
    from bayes_scaling.surface.predict import loss_law_posterior

    loss = sf.loss_law().loss(loss_law_posterior(sf.posterior), N, D)
    fits = sf.as_optimum_fits()
    opt = [fits[q].log_draws(N, D, seed=seed + k, noise=False) for k, q in enumerate(QUANTITIES[1:])]
    return np.stack([loss, *opt], axis=1)


def scatters(sf: SurfaceFit) -> np.ndarray:
    """(S, 3) scatter σ of each latent about its law: σ_L*, σ_η, σ_B."""
    from bayes_scaling.math.draws import stacked

    post = sf.posterior
    return np.column_stack([stacked(post, "sigma_lstar"), *(stacked(post.sel(quantity=q), "sigma")
                                                            for q in QUANTITIES[1:])])


def cell_latents(sf: SurfaceFit) -> np.ndarray:
    """(S, 3, J) draws of the fitted cells' latents (L*_j, log η*_j, log B*_j)."""
    from bayes_scaling.math.draws import stacked

    return np.concatenate([stacked(sf.posterior, "l_star")[:, None, :], stacked(sf.posterior, "log_opt")], axis=1)


def measurement_error(posterior_var: np.ndarray, prior_var: np.ndarray) -> np.ndarray:
    """se (3,): per quantity the median over cells of √(1 / (1/v_j − 1/p_j)) — the error of the measurement
    that joined to a prior of variance p_j gives the posterior variance v_j (∞ where v_j ≥ p_j).
    ``posterior_var``, ``prior_var``: (3, J)."""
    gain = 1.0 / posterior_var - 1.0 / prior_var
    with np.errstate(divide="ignore"):
        se = np.where(gain > 0, 1.0 / np.sqrt(np.where(gain > 0, gain, 1.0)), np.inf)
    return np.median(se, axis=1)


def sweep_error(sf: SurfaceFit) -> np.ndarray:
    """se (3,) of one sweep of a cell (the module docstring), from the fitted cells of ``sf``."""
    cells = sf.data.cells
    m = law_means(sf, cells["N"].to_numpy(float), cells["D"].to_numpy(float))       # (S, 3, J)
    z = cell_latents(sf)
    prior = m.var(axis=0) + (scatters(sf) ** 2).mean(axis=0)[:, None]
    return measurement_error(z.var(axis=0), prior)


def simulate_surface(sf: SurfaceFit, candidates: list[Candidate], targets: list[tuple[float, float]], *,
                     n_sims: int = 200, ci_prob: float = 0.9, seed: int = 0) -> list[Preposterior]:
    """Simulate every candidate's measurement J times from the surface posterior and score it under every
    draw; one :class:`Preposterior` per quantity (loss, lr, batch_size): the loss reweighted by the L*
    measurements, the two optima by the (η*, B*) ones (``BLOCKS``)."""
    from scipy.stats import norm

    from bayes_scaling.surface.predict import fitted_cell

    sf = thinned(sf)
    rng = np.random.default_rng(seed)
    base_se = sweep_error(sf)
    informs = np.isfinite(base_se)
    typical = float(np.median(sf.data.cells["n_runs"]))
    C = len(candidates)
    N = np.array([c.N for c in candidates] + [t[0] for t in targets], dtype=float)
    D = np.array([c.D for c in candidates] + [t[1] for t in targets], dtype=float)
    m = law_means(sf, N, D, seed=int(rng.integers(2**31)))                              # (S, 3, C + T)
    sigma = scatters(sf)                                                                # (S, 3)
    S = m.shape[0]
    z_fit = cell_latents(sf)
    repeats = fitted_cell(sf, N[:C], D[:C])
    truth = rng.integers(S, size=n_sims)
    y = np.empty((C, n_sims, 3))
    loglik = {block: np.zeros((C, n_sims, S)) for block in BLOCKS}
    measured = np.empty((S, 3, C))               # what each candidate measures, less its noise: m (new) or z_j
    noise_var = np.empty((3, C))                 # and the variance of that noise: E[σ²] + se² (new) or se²
    for c in range(C):
        r = repeats[c]
        se = base_se * np.sqrt(typical / candidates[c].runs)
        if r < 0:
            z = m[truth, :, c] + sigma[truth] * rng.standard_normal((n_sims, 3))
            loc, scale = m[:, :, c], np.sqrt(sigma**2 + np.where(informs, se, 0.0) ** 2)       # (S, 3)
            measured[:, :, c], noise_var[:, c] = m[:, :, c], (sigma**2).mean(axis=0) + se**2
        else:
            z = z_fit[truth, :, r]
            loc, scale = z_fit[:, :, r], np.broadcast_to(np.where(informs, se, 1.0), (S, 3))
            measured[:, :, c], noise_var[:, c] = z_fit[:, :, r], se**2
        y[c] = z + np.where(informs, se, 0.0) * rng.standard_normal((n_sims, 3))
        terms = norm.logpdf(y[c][:, None, :], loc[None, :, :], scale[None, :, :])      # (J, S, 3)
        for block, ks in BLOCKS.items():
            keep = [k for k in ks if informs[k]]
            loglik[block][c] = terms[:, :, keep].sum(axis=2)
    pred = target_draws(m[:, :, C:], sigma, rng)
    preps = []
    for k, q in enumerate(QUANTITIES):
        block = next(b for b, ks in BLOCKS.items() if k in ks)
        ks = [i for i in BLOCKS[block] if informs[i]]
        order = np.argsort(pred[:, k], axis=0)
        before = interval_width(pred[:, k], ci_prob)
        stand_in = GaussianUpdate(pred[:, k], measured[:, ks], noise_var[ks], before)
        preps.append(Preposterior("surface", q, before, loglik[block], truth,
                                  {"y": y[:, :, k]}, repeats, np.take_along_axis(pred[:, k], order, axis=0),
                                  order, ci_prob, stand_in=stand_in))
    return preps


class GaussianUpdate:
    """The linear-Gaussian preposterior of target draws t (S, T) after measuring candidates' latents
    y_c = x_c + e_c (x: ``measured`` draws (S, K, C), e independent with variances ``noise_var`` (K, C)):

        Var(t | y) = Var(t) − Cov(t, y) (Cov(x) + diag(noise_var))⁻¹ Cov(y, t),

    the same for every outcome; the expected width is today's scaled by √(Var(t | y) / Var(t)). It stands
    in where the importance weights degenerate: a strong update, which the weights cannot resolve and
    a Gaussian can (it cannot see that a surprising outcome widens the interval)."""

    def __init__(self, targets: np.ndarray, measured: np.ndarray, noise_var: np.ndarray, before: np.ndarray) -> None:
        self.t = targets - targets.mean(axis=0)
        self.x = measured - measured.mean(axis=0)
        self.noise_var = noise_var
        self.before = before

    def widths(self, chosen: list[int]) -> np.ndarray:
        S = self.t.shape[0]
        x = self.x[:, :, chosen].reshape(S, -1)
        cov_xx = x.T @ x / (S - 1) + np.diag(self.noise_var[:, chosen].ravel())
        cov_tx = self.t.T @ x / (S - 1)                                             # (T, K·|chosen|)
        var_t = (self.t**2).sum(axis=0) / (S - 1)
        explained = np.einsum("tk,tk->t", cov_tx, np.linalg.solve(cov_xx, cov_tx.T).T)
        return self.before * np.sqrt(np.clip(1.0 - explained / var_t, 0.0, 1.0))
