"""Critical batch size and the steps/examples trade-off (Kaplan et al. 2020 §5; McCandlish et al. 2018).

Input — one row per (target loss, batch size), read off the loss curves the trainer logs:

    target_loss   the loss the run had to reach (> 0)
    batch_size    tokens per step B (> 0)
    steps         optimiser steps S the run needed to first reach target_loss (> 0)
    [examples]    tokens E = B·S it consumed (optional; computed when absent)

At each target l the runs trace (S/S_min − 1)(E/E_min − 1) = 1, i.e.
S = S_min + E_min/B, and the critical batch B_crit = E_min/S_min follows Kaplan's law:

    log S_i ~ Normal(log(S_min,l + S_min,l·B_crit,l / B_i), σ)
    log B_crit,l ~ Normal(log B* − log(L_l)/α_B, τ)
"""

from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from bayes_scaling.errors import InputError
from bayes_scaling.inference.config import TARGET_ACCEPT
from bayes_scaling.laws.base import Law, register
from bayes_scaling.math.draws import stacked

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

COLUMNS = ("target_loss", "batch_size", "steps")

#: Kaplan et al. 2020, eq. 5.3 (tokens): B* ≈ 2·10⁸, α_B ≈ 0.21.
KAPLAN_BCRIT_REFERENCE = {"B_star": (2e8, np.nan, np.nan), "alpha_B": (0.21, np.nan, np.nan)}


def validate_steps_table(frame: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """Check the schema above; return target_loss, batch_size, steps, examples as floats."""
    import pandas as pd

    frame = frame.rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; a steps table needs {', '.join(COLUMNS)} [, examples]")
    out = pd.DataFrame(index=frame.index)
    for col in COLUMNS + (("examples",) if "examples" in frame.columns else ()):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{source}:{i + 2}: column '{col}': must be a finite number > 0, got {frame[col].iloc[i]!r}")
        out[col] = values
    if "examples" not in out.columns:
        out["examples"] = out["batch_size"] * out["steps"]
    else:
        off = np.abs(out["examples"] / (out["batch_size"] * out["steps"]) - 1) > 0.01
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise InputError(f"{source}:{i + 2}: column 'examples' must equal batch_size × steps (within 1%)")
    sizes = out.groupby("target_loss")["batch_size"].nunique()
    if (sizes < 2).any() or len(sizes) < 2:
        raise InputError(f"{source}: need >= 2 target losses, each reached at >= 2 batch sizes")
    return out


@register
class CriticalBatchLaw(Law):
    """S_min, E_min per target loss and B_crit(L) = B*/L^(1/α_B) across targets."""

    name = "critical-batch"
    formula = "(S/S_min - 1)(E/E_min - 1) = 1,  B_crit(L) = E_min/S_min = B*/L^(1/alpha_B)"
    default_data = ""   # no bundled steps table: --data is required
    reference = KAPLAN_BCRIT_REFERENCE
    reference_source = "Kaplan et al. 2020, eq. 5.3"
    figures = ("critical_batch",)
    target_accept = TARGET_ACCEPT   # measured on no bundled table: the cautious default

    @staticmethod
    def is_steps_table(data: str) -> bool:
        """Whether ``data`` is a file whose header has the steps-table columns."""
        from bayes_scaling.inputs.runtable import read_table

        if not Path(data).is_file():
            return False
        return set(COLUMNS) <= {str(c).strip() for c in read_table(data).columns}

    @classmethod
    def from_data(cls, data=None):
        from bayes_scaling.inputs.runtable import read_table
        from bayes_scaling.io import file_sha256

        if not data:
            raise InputError(f"--law {cls.name} needs --data: a steps table with columns {', '.join(COLUMNS)} [, examples]")
        return cls(read_table(data), source=str(data)), str(data), file_sha256(data)

    def __init__(self, table: pd.DataFrame, source: str = "<table>") -> None:
        self.table = validate_steps_table(table, source)
        self.targets = np.sort(self.table["target_loss"].unique())
        self.center_L = float(np.log(self.targets).mean())

    def model(self):
        """Weakly informative priors: α_B ~ Gamma(3, 10), log B_crit and log S_min broad around the data."""
        import pymc as pm

        t = self.table
        idx = np.searchsorted(self.targets, t["target_loss"].to_numpy())
        log_b, log_s = np.log(t["batch_size"].to_numpy()), np.log(t["steps"].to_numpy())
        coords = {"target": self.targets, "run": np.arange(len(t))}
        with pm.Model(coords=coords) as model:
            log_B = pm.Data("log_B", log_b, dims="run")
            y = pm.Data("log_steps", log_s, dims="run")
            idx = pm.Data("target_idx", idx, dims="run")
            ell = pm.Data("log_target", np.log(self.targets) - self.center_L, dims="target")
            alpha_B = pm.Gamma("alpha_B", alpha=3.0, beta=10.0)
            log_bcrit_ref = pm.Normal("log_bcrit_ref", float(np.median(log_b)), 3.0)  # at the centre loss
            tau = pm.HalfNormal("tau", 0.3)
            z = pm.Normal("z", 0.0, 1.0, dims="target")
            log_bcrit = pm.Deterministic("log_bcrit", log_bcrit_ref - ell / alpha_B + tau * z, dims="target")
            log_smin = pm.Normal("log_smin", float(np.median(log_s)), 3.0, dims="target")
            sigma = pm.HalfNormal("sigma", 0.2)
            mu = log_smin[idx] + pm.math.log1pexp(log_bcrit[idx] - log_B)  # log(S_min (1 + B_crit/B))
            pm.Normal("obs", mu=mu, sigma=sigma, observed=y, dims="run")
        return model

    def params(self, posterior: xr.Dataset) -> dict[str, np.ndarray]:
        alpha_B = stacked(posterior, "alpha_B")
        out = {"B_star": np.exp(stacked(posterior, "log_bcrit_ref") + self.center_L / alpha_B),
               "alpha_B": alpha_B, "tau": stacked(posterior, "tau"), "sigma": stacked(posterior, "sigma")}
        bcrit, smin = np.exp(stacked(posterior, "log_bcrit")), np.exp(stacked(posterior, "log_smin"))
        for j, target in enumerate(self.targets):
            out[f"B_crit[L={target:g}]"] = bcrit[:, j]
            out[f"S_min[L={target:g}]"] = smin[:, j]
            out[f"E_min[L={target:g}]"] = bcrit[:, j] * smin[:, j]
        return out

    def steps(self, posterior: xr.Dataset, j: int, B: np.ndarray) -> np.ndarray:
        """Draws (S, G) of the steps S(B) = S_min (1 + B_crit/B) to reach target j."""
        bcrit = np.exp(stacked(posterior, "log_bcrit")[:, j, None])
        smin = np.exp(stacked(posterior, "log_smin")[:, j, None])
        return smin * (1 + bcrit / np.asarray(B, dtype=float)[None, :])
