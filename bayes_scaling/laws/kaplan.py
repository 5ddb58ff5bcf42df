"""Kaplan et al. (2020)'s joint law, whose limits are L(N) and L(D):

    L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D,   L(N) = (N_c/N)^α_N,   L(D) = (D_c/D)^α_D

fitted in log space with a Student-t likelihood (x = log N − mean log N, likewise for D):

    log L_i ~ StudentT(ν, α_D·LSE((p − α_N x_N,i)/α_D, (q − α_D x_D,i)/α_D), σ)

where p = log L(N) and q = log L(D) at the data's centre (this removes the strong
α–N_c correlation): log N_c = mean log N + p/α_N, log D_c = mean log D + q/α_D.
Kaplan's form has no irreducible loss, so its exponents on data with one (Chinchilla)
come out smaller than the E + A/N^α + B/D^β law's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayes_scaling.laws.base import Law, logsumexp_terms, register
from bayes_scaling.math.draws import stacked

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: Kaplan et al. 2020, Table 2 (L(N, D) fit; WebText2, non-embedding N); no intervals published.
KAPLAN_REFERENCE = {
    "alpha_N": (0.076, np.nan, np.nan),
    "alpha_D": (0.103, np.nan, np.nan),
    "N_c": (6.4e13, np.nan, np.nan),
    "D_c": (1.8e13, np.nan, np.nan),
}


@register
class KaplanLaw(Law):
    """L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D on a loss table (N, D, loss)."""

    name = "kaplan"
    formula = "L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    default_data = "chinchilla"
    reference = KAPLAN_REFERENCE
    reference_source = "Kaplan et al. 2020, Table 2 (different data and parameter count)"
    has_loss = True
    figures = ("isoflop_curves", "kaplan_limits")

    @classmethod
    def from_data(cls, data=None):
        """A steps table (target_loss, batch_size, steps) gives Kaplan's critical batch instead
        (``critical-batch``); any other table Kaplan's joint law."""
        from bayes_scaling.laws.critical_batch import CriticalBatchLaw

        if data is not None and CriticalBatchLaw.is_steps_table(data):
            return CriticalBatchLaw.from_data(data)
        return super().from_data(data)

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.center_N = float(np.log(table["N"]).mean())
        self.center_D = float(np.log(table["D"]).mean())

    def mean_log_loss(self, x_N, x_D):
        """log L = α_D·LSE((p − α_N·x_N)/α_D, (q − α_D·x_D)/α_D), declaring α_N, α_D ~ Gamma(2, 20)
        (mean 0.1) and p, q ~ Normal(1, 1) (log L(N), log L(D) at the centre)."""
        import pymc as pm

        alpha_N = pm.Gamma("alpha_N", alpha=2.0, beta=20.0)
        alpha_D = pm.Gamma("alpha_D", alpha=2.0, beta=20.0)
        p = pm.Normal("p", 1.0, 1.0)  # log L(N) at the centre
        q = pm.Normal("q", 1.0, 1.0)  # log L(D) at the centre
        return alpha_D * logsumexp_terms((p - alpha_N * x_N) / alpha_D, (q - alpha_D * x_D) / alpha_D)

    def params(self, posterior: xr.Dataset) -> dict[str, np.ndarray]:
        alpha_N, alpha_D = stacked(posterior, "alpha_N"), stacked(posterior, "alpha_D")
        return {
            "alpha_N": alpha_N,
            "alpha_D": alpha_D,
            "N_c": np.exp(self.center_N + stacked(posterior, "p") / alpha_N),
            "D_c": np.exp(self.center_D + stacked(posterior, "q") / alpha_D),
            **{k: stacked(posterior, k) for k in ("sigma", "nu") if k in posterior},
        }

    def loss(self, posterior: xr.Dataset, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Draws (S, T) of L(N, D); pass D = inf for L(N) and N = inf for L(D)."""
        p = self.params(posterior)
        N = np.atleast_1d(np.asarray(N, dtype=float))[None, :]
        D = np.atleast_1d(np.asarray(D, dtype=float))[None, :]
        a_N, a_D = p["alpha_N"][:, None], p["alpha_D"][:, None]
        return ((p["N_c"][:, None] / N) ** (a_N / a_D) + p["D_c"][:, None] / D) ** a_D
