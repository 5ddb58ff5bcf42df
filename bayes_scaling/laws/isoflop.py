"""Chinchilla's Method 2: iso-FLOP parabolas with latent minima.

For run i in budget j (centred x = log N − mean log N, c = log C − mean log C):

    log L_i ~ StudentT(ν, ℓ_j + κ_j (x_i − m_j)², σ)
    m_j ~ Normal(k₀ + a·c_j, τ)            (latent log N*(C_j), centred)
    log κ_j ~ Normal(μ_κ, σ_κ)

so N*(C) = k·C^a with k = exp(mean log N + k₀ − a·mean log C), and D*(C) = C/(6N*).
Only runs whose loss is within ``loss_window`` (relative) of their budget's lowest loss
enter, since a parabola describes an iso-FLOP curve only near its minimum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import Law, register
from bayes_scaling.math.draws import stacked
from models.flops import six_n

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: Published exponents a of N*(C) ∝ C^a: Chinchilla Method 2 (Hoffmann et al. 2022, Table 2).
CHINCHILLA_METHOD2_A = 0.49

#: Keep runs with loss ≤ (1 + LOSS_WINDOW)·(their budget's lowest loss).
LOSS_WINDOW = 0.10
#: Budgets with fewer runs than this (after the window) are left out.
MIN_RUNS_PER_BUDGET = 4


def select_isoflop(table: pd.DataFrame, loss_window: float = LOSS_WINDOW,
                   min_runs: int = MIN_RUNS_PER_BUDGET) -> pd.DataFrame:
    """Group runs into budgets, keep those near each budget's minimum, drop thin budgets."""
    from bayes_scaling.inputs.loss_tables import assign_budgets

    table = assign_budgets(table)
    lowest = table.groupby("budget")["loss"].transform("min")
    near = table[table["loss"] <= (1 + loss_window) * lowest]
    counts = near.groupby("budget")["N"].transform("nunique")
    kept = near[counts >= min_runs].sort_values(["budget", "N"]).reset_index(drop=True)
    if kept["budget"].nunique() < 2:
        raise InputError(
            f"iso-FLOP fit needs at least 2 budgets with >= {min_runs} model sizes within "
            f"{loss_window:.0%} of the budget's lowest loss; found {kept['budget'].nunique()}"
        )
    return kept


@register
class IsoflopLaw(Law):
    """Per-budget parabolas in log N with latent minima on a power law in C."""

    name = "isoflop"
    formula = "log L = l_j + kappa_j (log N - log N*_j)^2,  N*(C) = k C^a"
    default_data = "porian"
    reference = {"a": (CHINCHILLA_METHOD2_A, 0.462, 0.534)}
    reference_source = "Chinchilla Method 2 (Hoffmann et al. 2022, Table 2: a = 0.49, 80% CI)"
    has_optimal = True
    figures = ("isoflop_curves", "optimal_allocation")

    def __init__(self, table: pd.DataFrame, loss_window: float = LOSS_WINDOW,
                 min_runs: int = MIN_RUNS_PER_BUDGET) -> None:
        self.table = select_isoflop(table, loss_window, min_runs)
        self.budgets = np.sort(self.table["budget"].unique())
        self.center_N = float(np.log(self.table["N"]).mean())
        self.center_C = float(np.log(self.budgets).mean())

    def model(self):
        """Weakly informative priors: a ~ N(0.5, 0.25), curvatures log-normal around 0.1."""
        import pymc as pm

        budget_idx = np.searchsorted(self.budgets, self.table["budget"].to_numpy())
        log_loss = np.log(self.table["loss"].to_numpy())
        coords = {"budget": self.budgets, "run": np.arange(len(self.table))}
        with pm.Model(coords=coords) as model:
            x = pm.Data("x", np.log(self.table["N"].to_numpy()) - self.center_N, dims="run")
            c = pm.Data("c", np.log(self.budgets) - self.center_C, dims="budget")
            idx = pm.Data("budget_idx", budget_idx, dims="run")
            y = pm.Data("log_loss", log_loss, dims="run")
            a = pm.Normal("a", 0.5, 0.25)
            k0 = pm.Normal("k0", 0.0, 1.0)
            tau = pm.HalfNormal("tau", 0.2)
            z_m = pm.Normal("z_m", 0.0, 1.0, dims="budget")
            m = pm.Deterministic("m", k0 + a * c + tau * z_m, dims="budget")
            mu_kappa = pm.Normal("mu_kappa", np.log(0.1), 1.5)
            sigma_kappa = pm.HalfNormal("sigma_kappa", 0.5)
            z_kappa = pm.Normal("z_kappa", 0.0, 1.0, dims="budget")
            kappa = pm.Deterministic("kappa", pm.math.exp(mu_kappa + sigma_kappa * z_kappa), dims="budget")
            ell = pm.Normal("ell", float(log_loss.mean()), 1.0, dims="budget")
            sigma = pm.HalfNormal("sigma", 0.05)
            nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
            mu = ell[idx] + kappa[idx] * (x - m[idx]) ** 2
            pm.StudentT("obs", nu=nu, mu=mu, sigma=sigma, observed=y, dims="run")
        return model

    def params(self, posterior: xr.Dataset) -> dict[str, np.ndarray]:
        a = stacked(posterior, "a")
        log_k = self.center_N + stacked(posterior, "k0") - a * self.center_C
        return {"a": a, "b_exponent": 1 - a, "log10_k": log_k / np.log(10),
                "tau": stacked(posterior, "tau"), "sigma": stacked(posterior, "sigma"),
                "nu": stacked(posterior, "nu")}

    def optimal(self, posterior: xr.Dataset, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draws (S, T) of the law's N*(C) = k C^a and D*(C) = C/(6N*)."""
        a = stacked(posterior, "a")[:, None]
        C = np.atleast_1d(np.asarray(C, dtype=float))[None, :]
        N = np.exp(self.center_N + stacked(posterior, "k0")[:, None] + a * (np.log(C) - self.center_C))
        return N, C / six_n(N)

    def budget_minima(self, posterior: xr.Dataset) -> np.ndarray:
        """Draws (S, J) of each budget's latent N*_j."""
        return np.exp(self.center_N + stacked(posterior, "m"))

    def curve(self, posterior: xr.Dataset, j: int, N: np.ndarray) -> np.ndarray:
        """Draws (S, G) of budget j's iso-FLOP parabola (mean loss) on the grid N."""
        x = np.log(np.asarray(N, dtype=float))[None, :] - self.center_N
        ell, kappa, m = (stacked(posterior, k)[:, j, None] for k in ("ell", "kappa", "m"))
        return np.exp(ell + kappa * (x - m) ** 2)

    def isoflop_budgets(self) -> np.ndarray:
        """Every fitted budget (each has its own parabola)."""
        return self.budgets

    def isoflop_curve(self, posterior: xr.Dataset, budget: float, N: np.ndarray) -> np.ndarray:
        return self.curve(posterior, int(np.searchsorted(self.budgets, budget)), N)

    def isoflop_minimum(self, posterior: xr.Dataset, budget: float) -> np.ndarray:
        """The budget's own latent minimum N*_j (not the power law's N*(C) through all of them)."""
        return self.budget_minima(posterior)[:, int(np.searchsorted(self.budgets, budget))]
