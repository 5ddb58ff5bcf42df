"""Judge a posterior: max R-hat, min bulk/tail ESS and divergences against fixed thresholds.

A fit that fails them is flagged (``Diagnostics.ok``, ``problems()``), never silently
accepted: the console marks it ``!!``, the manifest records it, ``--strict`` exits 3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

#: Thresholds a fit must meet (Vehtari et al. 2021: R-hat < 1.01, ESS > 100/chain).
MAX_RHAT = 1.01
MIN_ESS_PER_CHAIN = 100


@dataclass(frozen=True)
class Diagnostics:
    """Convergence summary of one fit."""

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    chains: int
    draws: int

    @property
    def ok(self) -> bool:
        min_ess = MIN_ESS_PER_CHAIN * self.chains
        return (
            self.max_rhat < MAX_RHAT
            and self.min_ess_bulk >= min_ess
            and self.min_ess_tail >= min_ess
            and self.divergences == 0
        )

    def problems(self) -> list[str]:
        """Human-readable list of what failed (empty when ``ok``)."""
        out = []
        min_ess = MIN_ESS_PER_CHAIN * self.chains
        if not self.max_rhat < MAX_RHAT:
            out.append(f"R-hat {self.max_rhat:.3f} >= {MAX_RHAT}")
        if self.min_ess_bulk < min_ess:
            out.append(f"bulk ESS {self.min_ess_bulk:.0f} < {min_ess}")
        if self.min_ess_tail < min_ess:
            out.append(f"tail ESS {self.min_ess_tail:.0f} < {min_ess}")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions")
        return out

    def describe(self) -> str:
        status = "ok" if self.ok else "FAILED: " + "; ".join(self.problems())
        return (
            f"R-hat max {self.max_rhat:.3f}, ESS bulk min {self.min_ess_bulk:.0f}, "
            f"tail min {self.min_ess_tail:.0f}, divergences {self.divergences} [{status}]"
        )

    def as_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "ok": self.ok}

    @classmethod
    def worst(cls, items: list[Diagnostics]) -> Diagnostics:
        """One summary of several fits judged together: the worst R-hat and ESS, every divergence."""
        return cls(max(d.max_rhat for d in items), min(d.min_ess_bulk for d in items),
                   min(d.min_ess_tail for d in items), sum(d.divergences for d in items),
                   min(d.chains for d in items), min(d.draws for d in items))


def sampler_free_tree(post: xr.Dataset) -> xr.DataTree:
    """A tree of draws no sampler made (exact draws, an approximation's): the posterior, and the
    ``sample_stats`` that :func:`diagnose` reads, with no divergence."""
    import xarray as xr

    shape = (post.sizes["chain"], post.sizes["draw"])
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, dtype=bool))},
                       coords={"chain": post["chain"], "draw": post["draw"]})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def diagnose(idata: xr.DataTree, var_names: list[str] | None = None) -> Diagnostics:
    """Max R-hat, min bulk/tail ESS over all (or the named) posterior variables."""
    import arviz_stats as azs

    post = idata["posterior"].to_dataset()
    if var_names:
        post = post[var_names]
    rhat = azs.rhat(post)
    ess_bulk = azs.ess(post, method="bulk")
    ess_tail = azs.ess(post, method="tail")
    div = 0
    if "sample_stats" in idata.children and "diverging" in idata["sample_stats"].data_vars:
        div = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    return Diagnostics(
        max_rhat=_extreme(rhat, max),
        min_ess_bulk=_extreme(ess_bulk, min),
        min_ess_tail=_extreme(ess_tail, min),
        divergences=div,
        chains=int(post.sizes["chain"]),
        draws=int(post.sizes["draw"]),
    )


def _extreme(ds: xr.Dataset, pick) -> float:
    values = np.concatenate([np.ravel(v.values) for v in ds.data_vars.values()]) if ds.data_vars else np.array([np.nan])
    values = values[np.isfinite(values)]
    return float(pick(values)) if values.size else float("nan")
