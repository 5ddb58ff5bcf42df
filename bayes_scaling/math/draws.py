"""Posterior draws as arrays: flatten (chain, draw), summarise along the draw axis.

Every fit in the project keeps its draws in an xarray Dataset with dims (chain, draw, …);
the math works on arrays whose axis 0 is the S = chains × draws samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr


def stacked(posterior: xr.Dataset, name: str) -> np.ndarray:
    """Variable ``name`` with (chain, draw) flattened into the first axis: shape (S, …)."""
    v = posterior[name]
    return v.values.reshape((-1,) + v.shape[2:])


def quantiles(draws: np.ndarray, ci_prob: float = 0.9, axis: int = 0, method: str = "linear"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, lo, hi): the median and the equal-tailed ``ci_prob`` interval along ``axis``
    (``method``: NumPy's quantile method)."""
    tail = (1.0 - ci_prob) / 2.0
    med, lo, hi = np.quantile(draws, [0.5, tail, 1.0 - tail], axis=axis, method=method)
    return med, lo, hi


def summarize_configurations(draws: np.ndarray, ci_prob: float) -> dict[str, np.ndarray]:
    """Median, geometric mean and equal-tailed ``ci_prob`` interval over axis 0 of positive draws of
    which many sit exactly on a sweep's configurations (a predicted best run). The median and the
    bounds are order statistics (``inverted_cdf``), so each is a draw itself: never an interpolation
    between two configurations, nor a log/exp round trip that lands one ulp beside a measured value."""
    med, lo, hi = quantiles(draws, ci_prob, method="inverted_cdf")
    return {"median": med, "mean": np.exp(np.log(draws).mean(axis=0)), "lo": lo, "hi": hi}


def summarize(draws: np.ndarray, ci_prob: float) -> dict[str, np.ndarray]:
    """Median, mean and equal-tailed ``ci_prob`` interval over axis 0."""
    med, lo, hi = quantiles(draws, ci_prob)
    return {"median": med, "mean": draws.mean(axis=0), "lo": lo, "hi": hi}
