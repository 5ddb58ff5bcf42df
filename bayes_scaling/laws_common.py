"""What every loss law shares: a fitted-law container and draw summaries.

A law class (``laws_parametric.ParametricLaw`` etc.) knows its data, builds a
``pm.Model`` and turns posterior draws into named natural-scale parameters and, where
the law says so, into compute-optimal N*(C), D*(C). :func:`fit_law` samples it with
``sampling.sample`` and judges the result with ``sampling.diagnose``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_scaling import sampling
from bayes_scaling.sampling import Diagnostics, SamplerConfig

#: Chinchilla's rule of thumb: compute-optimal training uses ~20 tokens per parameter.
TOKENS_PER_PARAM_RULE = 20.0


class Law(Protocol):
    """The interface :func:`fit_law`, the report and the planner rely on."""

    name: str
    formula: str
    table: pd.DataFrame
    #: published values, param → (median, lo, hi) (lo/hi may be NaN), and their source
    reference: dict[str, tuple[float, float, float]]
    reference_source: str

    def model(self) -> pm.Model: ...

    def params(self, posterior: xr.Dataset) -> dict[str, np.ndarray]:
        """Named natural-scale parameters, each an array of S stacked draws."""
        ...


@dataclass
class LawFit:
    """A law, its posterior and its convergence diagnostics."""

    law: Law
    idata: xr.DataTree
    diagnostics: Diagnostics
    wall_s: float

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    @property
    def n_draws(self) -> int:
        post = self.idata["posterior"]
        return int(post.sizes["chain"] * post.sizes["draw"])

    def param_table(self, ci_prob: float = 0.9) -> pd.DataFrame:
        """One row per parameter: median, equal-tailed interval, published reference."""
        rows = []
        for name, draws in self.law.params(self.posterior).items():
            med, lo, hi = quantiles(draws, ci_prob)
            ref = self.law.reference.get(name, (np.nan, np.nan, np.nan))
            rows.append({"param": name, "median": med, "lo": lo, "hi": hi, "ci_prob": ci_prob,
                         "reference": ref[0], "reference_lo": ref[1], "reference_hi": ref[2]})
        return pd.DataFrame(rows)


def fit_law(law: Law, config: SamplerConfig) -> LawFit:
    """Sample ``law``'s model and diagnose every free parameter."""
    t0 = time.perf_counter()
    model = law.model()
    idata = sampling.sample(model, config)
    free = [rv.name for rv in model.free_RVs]
    return LawFit(law, idata, sampling.diagnose(idata, var_names=free), time.perf_counter() - t0)


def stacked(posterior: xr.Dataset, name: str) -> np.ndarray:
    """Variable ``name`` with (chain, draw) flattened into the first axis."""
    v = posterior[name]
    return v.values.reshape((-1,) + v.shape[2:])


def quantiles(draws: np.ndarray, ci_prob: float = 0.9, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and equal-tailed ``ci_prob`` interval along ``axis``."""
    tail = (1 - ci_prob) / 2
    med, lo, hi = np.quantile(draws, [0.5, tail, 1 - tail], axis=axis)
    return med, lo, hi
