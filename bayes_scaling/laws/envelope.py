"""Chinchilla's Method 1: the lower envelope of loss against FLOPs.

The envelope is the set of runs no cheaper run beats (the Pareto front of (C, loss)).
On its runs (centred c = log C − mean log C):

    log N_i ~ StudentT(ν, log k_N + a·c_i, σ_N),   log D_i ~ StudentT(ν, log k_D + b·c_i, σ_D)

giving N*(C) = k_N C^a and D*(C) = k_D C^b (a + b ≈ 1 when C = 6ND).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import Law, register
from bayes_scaling.math.draws import stacked

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

MIN_ENVELOPE_RUNS = 4


def lower_envelope(table: pd.DataFrame) -> pd.DataFrame:
    """Runs with a lower loss than every cheaper run, sorted by C."""
    ordered = table.sort_values(["C", "loss"]).reset_index(drop=True)
    best_before = np.minimum.accumulate(np.concatenate([[np.inf], ordered["loss"].to_numpy()[:-1]]))
    front = ordered[ordered["loss"].to_numpy() < best_before].reset_index(drop=True)
    if len(front) < MIN_ENVELOPE_RUNS:
        raise InputError(f"envelope fit needs >= {MIN_ENVELOPE_RUNS} runs on the loss-vs-FLOPs envelope; found {len(front)}")
    return front


@register
class EnvelopeLaw(Law):
    """Power laws N*(C), D*(C) through the runs on the lower loss envelope."""

    name = "envelope"
    formula = "N*(C) = k_N C^a,  D*(C) = k_D C^b  (runs on the lower loss envelope)"
    default_data = "chinchilla"
    reference = {"a": (0.50, 0.488, 0.502), "b": (0.50, 0.501, 0.512)}
    reference_source = "Chinchilla Method 1 (Hoffmann et al. 2022, Table 2, 80% CI)"
    has_optimal = True
    figures = ("optimal_allocation",)

    def __init__(self, table: pd.DataFrame) -> None:
        self.all_runs = table
        self.table = lower_envelope(table)
        self.center_C = float(np.log(self.table["C"]).mean())

    def model(self):
        """Weakly informative priors: exponents ~ N(0.5, 0.25)."""
        import pymc as pm

        c = np.log(self.table["C"].to_numpy()) - self.center_C
        log_N, log_D = np.log(self.table["N"].to_numpy()), np.log(self.table["D"].to_numpy())
        with pm.Model(coords={"run": np.arange(len(self.table))}) as model:
            c = pm.Data("c", c, dims="run")
            y_N = pm.Data("log_N", log_N, dims="run")
            y_D = pm.Data("log_D", log_D, dims="run")
            a = pm.Normal("a", 0.5, 0.25)
            b = pm.Normal("b", 0.5, 0.25)
            log_kN = pm.Normal("log_kN_ref", float(log_N.mean()), 3.0)  # log N* at the centre
            log_kD = pm.Normal("log_kD_ref", float(log_D.mean()), 3.0)
            sigma_N = pm.HalfNormal("sigma_N", 0.5)
            sigma_D = pm.HalfNormal("sigma_D", 0.5)
            nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
            pm.StudentT("obs_N", nu=nu, mu=log_kN + a * c, sigma=sigma_N, observed=y_N, dims="run")
            pm.StudentT("obs_D", nu=nu, mu=log_kD + b * c, sigma=sigma_D, observed=y_D, dims="run")
        return model

    def params(self, posterior: xr.Dataset) -> dict[str, np.ndarray]:
        a, b = stacked(posterior, "a"), stacked(posterior, "b")
        ln10 = np.log(10)
        return {"a": a, "b": b,
                "log10_k_N": (stacked(posterior, "log_kN_ref") - a * self.center_C) / ln10,
                "log10_k_D": (stacked(posterior, "log_kD_ref") - b * self.center_C) / ln10,
                "sigma_N": stacked(posterior, "sigma_N"), "sigma_D": stacked(posterior, "sigma_D"),
                "nu": stacked(posterior, "nu")}

    def optimal(self, posterior: xr.Dataset, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draws (S, T) of N*(C) = k_N C^a and D*(C) = k_D C^b."""
        c = np.log(np.atleast_1d(np.asarray(C, dtype=float)))[None, :] - self.center_C
        N = np.exp(stacked(posterior, "log_kN_ref")[:, None] + stacked(posterior, "a")[:, None] * c)
        D = np.exp(stacked(posterior, "log_kD_ref")[:, None] + stacked(posterior, "b")[:, None] * c)
        return N, D
