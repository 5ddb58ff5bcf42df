"""Sweep grids and the censoring interval of a best grid value.

A sweep tries a quantity q (learning rate or batch size) on a grid g_1 < … < g_K.
If g_k wins, the latent optimum q* is only known to lie in g_k's *cell*:

    log q* ∈ ( (log g_{k-1} + log g_k)/2 , (log g_k + log g_{k+1})/2 )

i.e. half a grid step either side in log space; the first cell is open below
(−∞) and the last is open above (+∞), since the optimum may lie off the grid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bayes_scaling.errors import InputError

#: Two grid values closer than this (relative) are the same grid point (2^-11.5 is
#: written 0.000345 in one row and 0.0003453 in the next of the StepLaw table).
GRID_RTOL = 0.01

#: Selection jitter σ_sel (log units) of a best grid value when the table cannot tell it: 0.05, i.e.
#: 5 % in q, a fourteenth of a power-of-2 grid step (it also keeps the censored likelihood smooth).
SELECTION_JITTER = 0.05

#: Two model sizes closer than this in log N are one size (a target at a fitted N uses its slope).
SAME_SIZE_LOG_TOL = 1e-6

#: A parsed BASE^LO:BASE^HI:STEP grid larger than this is a typo (e.g. step 1e-9), not a sweep.
MAX_GRID_POINTS = 10_000

_POW = r"(?P<base>[0-9.]+)\^(?P<exp>[-+]?[0-9.]+)"


@dataclass(frozen=True)
class Grid:
    """A sorted set of positive grid values (a power-of-2 sweep, or any list)."""

    values: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=float)
        if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
            shown = ", ".join(f"{v:g}" for v in values.ravel())
            raise InputError(f"a grid needs positive finite values, got [{shown}]")
        object.__setattr__(self, "values", merge_close(values))

    @classmethod
    def parse(cls, spec: str) -> Grid:
        """Parse ``"2^-12:2^-8:1"`` (base^lo : base^hi : step in log_base) or ``"a,b,c"``.

        >>> Grid.parse("2^-3:2^-1:1").values.tolist()
        [0.125, 0.25, 0.5]
        >>> Grid.parse("2^16:2^19:0.5").values.size
        7
        """
        spec = spec.strip()
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) != 3:
                raise InputError(f"grid {spec!r}: expected BASE^LO:BASE^HI:STEP, e.g. 2^-12:2^-8:1")
            lo, hi = (_parse_power(p, spec) for p in parts[:2])
            if lo[0] != hi[0]:
                raise InputError(f"grid {spec!r}: both ends need the same base")
            try:
                step = float(parts[2])
            except ValueError:
                raise InputError(f"grid {spec!r}: step {parts[2]!r} is not a number") from None
            if not np.isfinite(step) or step <= 0 or hi[1] < lo[1]:
                raise InputError(f"grid {spec!r}: need LO <= HI and a positive step")
            # floor, not round: the last point must not overshoot HI (2^-12:2^-8:1.5 ends at 2^-9)
            n = int(np.floor((hi[1] - lo[1]) / step + 1e-9)) + 1
            if n > MAX_GRID_POINTS:
                raise InputError(f"grid {spec!r}: {n} points; a sweep grid has at most {MAX_GRID_POINTS}")
            exps = lo[1] + step * np.arange(n)
            return cls(lo[0] ** exps)
        try:
            values = [float(v) for v in spec.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"grid {spec!r}: expected numbers separated by commas or BASE^LO:BASE^HI:STEP") from None
        return cls(np.array(values))

    def index_of(self, value: float) -> int:
        """Index of the grid point equal to ``value`` (within GRID_RTOL), or -1."""
        rel = np.abs(np.log(self.values) - np.log(value))
        k = int(np.argmin(rel))
        return k if rel[k] <= np.log1p(GRID_RTOL) else -1

    def log_bounds(self, value: float) -> tuple[float, float]:
        """Natural-log cell edges (lo, hi) of the grid point ``value``; ±inf at the edges."""
        k = self.index_of(value)
        if k < 0:
            raise InputError(f"value {value:g} is not on the grid {self}")
        return cell_log_bounds(np.log(self.values), k)

    def __str__(self) -> str:
        return "{" + ", ".join(f"{v:.4g}" for v in self.values) + "}"


def cell_log_bounds(log_values: np.ndarray, k: int) -> tuple[float, float]:
    """Cell of the k-th of sorted log grid values: midpoints to its neighbours."""
    lo = -np.inf if k == 0 else 0.5 * (log_values[k - 1] + log_values[k])
    hi = np.inf if k == len(log_values) - 1 else 0.5 * (log_values[k] + log_values[k + 1])
    return float(lo), float(hi)


def merge_close(values: np.ndarray, rtol: float = GRID_RTOL) -> np.ndarray:
    """Sorted unique values, merging neighbours within ``rtol`` (keeps the first)."""
    values = np.sort(np.asarray(values, dtype=float))
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = np.diff(np.log(values)) > np.log1p(rtol)
    return values[keep]


def _parse_power(text: str, spec: str) -> tuple[float, float]:
    match = re.fullmatch(_POW, text.strip())
    if not match:
        raise InputError(f"grid {spec!r}: cannot read {text!r}; write powers like 2^-12")
    try:
        base, exp = float(match["base"]), float(match["exp"])
    except ValueError:  # "2..^-12" matches the pattern but is not a number
        raise InputError(f"grid {spec!r}: cannot read {text!r}; write powers like 2^-12") from None
    if base <= 0 or base == 1:
        raise InputError(f"grid {spec!r}: base must be positive and not 1")
    return base, exp
