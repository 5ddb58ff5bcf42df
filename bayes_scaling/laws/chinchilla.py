"""Chinchilla's Method 3: the joint parametric law, fitted in log space.

    log L_i ~ StudentT(ν, LSE(a − α log N_i, b − β log D_i, e), σ),   A = eᵃ, B = eᵇ, E = eᵉ

i.e. L(N, D) = E + A/N^α + B/D^β with a robust (Student-t) likelihood on log-loss
residuals, as in Epoch AI's replication (which used a Huber loss). The two power-law
terms are parameterised at the data's centre (a = a_ref + α·mean log N), which removes
the strong a–α correlation the raw form has; the sampler moves in the coordinates the data pin
(the loss and its log slopes at the centre, and 1/α, 1/β: ``ParametricLaw.mean_log_loss``), with
the same prior. Compute-optimal allocation under C = 6ND:

    N*(C) = G·(C/6)^(β/(α+β)),   G = (αA/(βB))^(1/(α+β)),   D*(C) = C/(6 N*)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayes_scaling.laws.base import Law, logsumexp_terms, register
from bayes_scaling.math.draws import stacked
from models.flops import six_n

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: Epoch AI's replication of Chinchilla (Besiroglu et al. 2024): estimate and bootstrap interval.
EPOCH_REFERENCE = {
    "E": (1.82, 1.77, 1.87),
    "A": (482.0, 285.0, 744.0),
    "B": (2085.0, 1042.0, 5810.0),
    "alpha": (0.348, 0.317, 0.373),
    "beta": (0.366, 0.331, 0.415),
}


@register
class ParametricLaw(Law):
    """L(N, D) = E + A/N^α + B/D^β on a loss table (columns N, D, loss)."""

    name = "chinchilla"
    formula = "L(N, D) = E + A/N^alpha + B/D^beta"
    default_data = "chinchilla"
    reference = EPOCH_REFERENCE
    reference_source = "Epoch AI replication of Chinchilla (Besiroglu et al. 2024)"
    has_loss = True
    has_optimal = True
    figures = ("isoflop_curves", "optimal_allocation")

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.center_N = float(np.log(table["N"]).mean())
        self.center_D = float(np.log(table["D"]).mean())
        self.center_loss = float(np.exp(np.log(table["loss"]).mean()))

    def mean_log_loss(self, x_N, x_D):
        """log L = LSE(a_ref − α·x_N, b_ref − β·x_D, log E) with weakly informative priors (exponents
        α, β ~ Gamma(2, 4), mean 0.5; a_ref, b_ref ~ Normal(−1, 1.5), each term ~0.4 nats at the centre;
        log E ~ Normal(0.5, 0.5)), *sampled* in the
        coordinates the data pin — the loss at the centre L_c = E + e^{a_ref} + e^{b_ref}, the log slopes
        g_N = log(α·e^{a_ref}), g_D = log(β·e^{b_ref}) — and 1/α, 1/β, in which E = L_c − e^{g_N}/α − e^{g_D}/β
        is linear: in (α, a_ref, log E) the posterior is a banana that NUTS crosses only in many small steps
        when the model sizes span a narrow range (StepLaw's: 5×). The prior is kept exactly: a Potential adds it with the
        log-Jacobian 2·log α + 2·log β − log E. α, β, a_ref, b_ref, log_E are Deterministics."""
        import pymc as pm
        import pytensor.tensor as pt

        # scaled so that the sampler starts (support points: HalfFlat 1, Flat 0, jittered ±1) where E > 0
        inv_alpha = 2.0 * pm.HalfFlat("inv_alpha_half")
        inv_beta = 2.0 * pm.HalfFlat("inv_beta_half")
        g_N = -1.7 + 0.5 * pm.Flat("g_N_offset")
        g_D = -1.7 + 0.5 * pm.Flat("g_D_offset")
        l_c = self.center_loss + 0.05 * pm.Flat("L_c_offset")
        alpha = pm.Deterministic("alpha", 1.0 / inv_alpha)
        beta = pm.Deterministic("beta", 1.0 / inv_beta)
        a_ref = pm.Deterministic("a_ref", g_N + pt.log(inv_alpha))  # log(A / N_ref^α): the N term at the centre
        b_ref = pm.Deterministic("b_ref", g_D + pt.log(inv_beta))
        e = l_c - pt.exp(g_N) * inv_alpha - pt.exp(g_D) * inv_beta
        log_E = pm.Deterministic("log_E", pt.log(e))
        prior = (pm.logp(pm.Gamma.dist(2.0, 4.0), alpha) + pm.logp(pm.Gamma.dist(2.0, 4.0), beta)
                 + pm.logp(pm.Normal.dist(-1.0, 1.5), a_ref) + pm.logp(pm.Normal.dist(-1.0, 1.5), b_ref)
                 + pm.logp(pm.Normal.dist(0.5, 0.5), log_E) + 2.0 * pt.log(alpha) + 2.0 * pt.log(beta) - log_E)
        pm.Potential("prior", pt.switch(e > 0, prior, -np.inf))
        # where E <= 0 the Potential is -inf; the terms take log max(E, tiny) so that the likelihood there is
        # finite rather than NaN (ADVI's gradient averages over such draws; NUTS rejects them either way)
        safe_log_E = pt.log(pt.maximum(e, 1e-12))
        return logsumexp_terms(a_ref - alpha * x_N, b_ref - beta * x_D, safe_log_E)

    def params(self, posterior: xr.Dataset) -> dict[str, np.ndarray]:
        alpha, beta = stacked(posterior, "alpha"), stacked(posterior, "beta")
        return {
            "E": np.exp(stacked(posterior, "log_E")),
            "A": np.exp(stacked(posterior, "a_ref") + alpha * self.center_N),
            "B": np.exp(stacked(posterior, "b_ref") + beta * self.center_D),
            "alpha": alpha,
            "beta": beta,
            "a_exponent": beta / (alpha + beta),  # N* ∝ C^a
            "b_exponent": alpha / (alpha + beta),  # D* ∝ C^b
            **{k: stacked(posterior, k) for k in ("sigma", "nu") if k in posterior},
        }

    def loss(self, posterior: xr.Dataset, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Draws (S, T) of the mean loss E + A/N^α + B/D^β at targets N, D of shape (T,) or,
        draw by draw, (S, T)."""
        p = {k: v[:, None] for k, v in self.params(posterior).items()}
        N, D = (np.asarray(x, dtype=float) for x in (N, D))
        N, D = (x if x.ndim == 2 else np.atleast_1d(x)[None, :] for x in (N, D))
        return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]

    def optimal(self, posterior: xr.Dataset, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draws (S, T) of N*(C), D*(C) under C = 6ND, one law per posterior draw."""
        p = self.params(posterior)
        return optimal_6nd(p, np.atleast_1d(np.asarray(C, dtype=float)))


def optimal_6nd(p: dict[str, np.ndarray], C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N* = G (C/6)^(β/(α+β)), G = (αA/(βB))^(1/(α+β)); D* = C/(6N*). Shapes (S,) × (T,) → (S, T)."""
    alpha, beta = p["alpha"][:, None], p["beta"][:, None]
    log_G = (np.log(alpha * p["A"][:, None]) - np.log(beta * p["B"][:, None])) / (alpha + beta)
    log_N = log_G + beta / (alpha + beta) * np.log(C[None, :] / six_n(1.0))
    N = np.exp(log_N)
    return N, C[None, :] / six_n(N)
