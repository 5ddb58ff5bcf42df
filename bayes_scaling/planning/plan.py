"""Compute planner: a FLOP budget → N*, D*, tokens/param, loss, learning rate, batch size.

For every posterior draw s of the loss law L_s(N, D) = E + A/N^α + B/D^β:

    N*_s = argmin_N L_s(N, C/M(N)),  D*_s = C/M(N*_s)      (capped at --max-N)
    η_s ~ p(η* | N*_s, D*_s),        B_s ~ p(B* | N*_s, D*_s)  (η*/B* posterior predictive)

each optimum from its own law, or — with the ``joint`` kind, whose laws share a correlation ρ — the
pair (η_s, B_s) from their joint predictive, B given η.

with M(N) = 6N FLOPs/token (``6ND``) or DeepSeek's M = 72·L·d² + 12·L·d·l_seq (``deepseek``,
the shape L, d from d = aspect·L and N = 12·L·d²). The
uncertainty is carried draw by draw; nothing is plugged in at a median. The FLOP formulas
are those of ``models.flops``, shared with the model and the trainer.

    python -m bayes_scaling.plan --compute 1e21 --compute 1e23 --out runs/plan
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import TOKENS_PER_PARAM_RULE, LawFit
from bayes_scaling.math.draws import quantiles
from models import flops as flop_formulas

FLOPS_MODELS = ("6ND", "deepseek")
#: DeepSeek LLM (Bi et al. 2024), C = M·D: η_opt = 0.3118·C^−0.125, B_opt = 0.2920·C^0.3271 (tokens).
DEEPSEEK_LR = (0.3118, -0.125)
DEEPSEEK_BATCH = (0.2920, 0.3271)
QUANTITIES = ("N_opt", "D_opt", "tokens_per_param", "loss", "lr", "batch_size")
GOLDEN_ITERATIONS = 80


@dataclass(frozen=True)
class FlopsModel:
    """FLOPs per training token M(N): ``6ND`` (M = 6N) or ``deepseek`` (adds attention)."""

    kind: str = "6ND"
    seq_len: int = 4096
    aspect: float = 128.0

    def per_token(self, N: np.ndarray) -> np.ndarray:
        if self.kind == "6ND":
            return flop_formulas.six_n(N)
        n_layer, d_model = flop_formulas.shape_of(N, self.aspect)
        return flop_formulas.deepseek(n_layer, d_model, self.seq_len)


@dataclass
class Plan:
    """Per-budget draws of every planned quantity and their summary table."""

    budgets: np.ndarray
    draws: dict[float, dict[str, np.ndarray]]
    table: pd.DataFrame
    #: the lr and batch size were drawn jointly (``optimum_draws``), not each from its own law
    joint: bool = False


def compute_optimal(loss_fit: LawFit, budgets: np.ndarray, flops: FlopsModel,
                    max_N: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draws (S, T) of N*, D* per budget, one loss law per posterior draw."""
    p = loss_fit.law.params(loss_fit.posterior)
    if flops.kind == "6ND":
        N, _ = loss_fit.law.optimal(loss_fit.posterior, budgets)
    else:
        N = _golden_argmin(p, budgets, flops)
    if max_N is not None:
        N = np.minimum(N, max_N)  # loss along an iso-FLOP line is unimodal in log N
    return N, budgets[None, :] / flops.per_token(N)


def _golden_argmin(p: dict[str, np.ndarray], budgets: np.ndarray, flops: FlopsModel) -> np.ndarray:
    """Vectorised golden-section search for argmin_N L_s(N, C/M(N)) on log N, per draw and budget."""
    def loss(log_N):
        N = np.exp(log_N)
        D = budgets[None, :] / flops.per_token(N)
        return p["A"][:, None] / N ** p["alpha"][:, None] + p["B"][:, None] / D ** p["beta"][:, None]

    shape = (p["A"].size, budgets.size)
    lo = np.full(shape, np.log(1e3))
    hi = np.broadcast_to(np.log(budgets / flop_formulas.six_n(1.0)), shape).copy()  # at least one token
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(GOLDEN_ITERATIONS):
        x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left = loss(x1) < loss(x2)
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
    return np.exp((lo + hi) / 2)


def make_plan(budgets, loss_fit: LawFit, optimum_fits: dict, *, flops: FlopsModel = FlopsModel(),
              max_N: float | None = None, ci_prob: float = 0.9, seed: int = 0) -> Plan:
    """Propagate the loss-law and η*/B* posteriors draw by draw to each budget."""
    budgets = np.asarray(budgets, dtype=float)
    N, D = compute_optimal(loss_fit, budgets, flops, max_N)
    L = loss_fit.law.loss(loss_fit.posterior, N, D)  # draw s's law at draw s's optimum
    rng = np.random.default_rng(seed)
    draws, rows = {}, []
    for t, C in enumerate(budgets):
        d = {"N_opt": N[:, t], "D_opt": D[:, t], "tokens_per_param": D[:, t] / N[:, t], "loss": L[:, t],
             **optimum_draws(optimum_fits, N[:, t], D[:, t], rng)}
        draws[float(C)] = d
        refs = references(C)
        for q in QUANTITIES:
            med, lo, hi = quantiles(d[q], ci_prob)
            ref, source = refs.get(q, (np.nan, ""))
            rows.append({"compute": C, "quantity": q, "median": med, "lo": lo, "hi": hi, "ci_prob": ci_prob,
                         "reference": ref, "reference_source": source})
    return Plan(budgets, draws, pd.DataFrame(rows), joint=optimum_fits["lr"].couples)


def optimum_draws(optimum_fits: dict, N: np.ndarray, D: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One draw of the lr and the batch size per planned (N[s], D[s]): jointly — B given η, draw by draw,
    from the lr fit's posterior, which holds both laws — when both were fitted together (``joint``),
    else each from its own law."""
    lr_fit, batch_fit = optimum_fits["lr"], optimum_fits["batch_size"]
    if lr_fit.couples != batch_fit.couples:
        raise ValueError("the lr and batch-size laws must both be joint, or neither")
    if lr_fit.couples:
        lr, batch = lr_fit.sample_pair(N, D, rng)
        return {"lr": lr, "batch_size": batch}
    return {"lr": lr_fit.sample_paired(N, D, rng), "batch_size": batch_fit.sample_paired(N, D, rng)}


#: Columns of ``plan_surface.csv``.
SURFACE_COLUMNS = ("compute", "run", "N", "D", "lr", "batch_size", "loss_median", "loss_lo", "loss_hi",
                   "penalty_median", "penalty_lo", "penalty_hi", "ci_prob")


def surface_losses(plan: Plan, surface, *, lr: float | None = None, batch_size: float | None = None,
                   ci_prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """What the loss surface (a ``surface.fit.SurfaceFit``) says of each budget's planned run.

    At the plan's median N*, D*, the run at the plan's median (η*, B*) ("recommended") and, given
    ``lr`` and/or ``batch_size``, the user's run ("yours"; the other value the plan's) are drawn
    jointly from one draw of that cell's bowl per posterior draw (``surface.predict.run_draws``):

        loss     = L* + f(log η − log η*, log B − log B*) + noise     (the predictive of a run)
        penalty  = f(yours) − f(recommended)                          (expected loss, same draw)

    so the penalty of a mis-set learning rate carries the bowl's and the cell optimum's uncertainty.
    """
    from bayes_scaling.surface.predict import run_draws

    rows = []
    for C, d in plan.draws.items():
        N, D = float(np.median(d["N_opt"])), float(np.median(d["D_opt"]))
        rec = (float(np.median(d["lr"])), float(np.median(d["batch_size"])))
        runs = {"recommended": rec}
        if lr is not None or batch_size is not None:
            runs["yours"] = (lr if lr is not None else rec[0], batch_size if batch_size is not None else rec[1])
        lrs = np.array([v[0] for v in runs.values()])
        bs = np.array([v[1] for v in runs.values()])
        mean, loss = run_draws(surface, np.full(lrs.size, N), np.full(lrs.size, D), bs, lrs, seed=seed)
        for k, (name, (eta, b)) in enumerate(runs.items()):
            med, lo, hi = quantiles(loss[:, k], ci_prob)
            pen = quantiles(mean[:, k] - mean[:, 0], ci_prob)
            rows.append(dict(zip(SURFACE_COLUMNS, (C, name, N, D, eta, b, med, lo, hi, *pen, ci_prob))))
    return pd.DataFrame(rows, columns=list(SURFACE_COLUMNS))


def references(C: float) -> dict[str, tuple[float, str]]:
    """Published rules at budget C: 20 tokens/param (Chinchilla) and DeepSeek's η, B."""
    rule_N = np.sqrt(C / flop_formulas.six_n(TOKENS_PER_PARAM_RULE))
    rule = f"{TOKENS_PER_PARAM_RULE:g} tokens/param"
    return {
        "N_opt": (rule_N, rule), "D_opt": (TOKENS_PER_PARAM_RULE * rule_N, rule),
        "tokens_per_param": (TOKENS_PER_PARAM_RULE, rule),
        "lr": (DEEPSEEK_LR[0] * C ** DEEPSEEK_LR[1], "DeepSeek 0.3118*C^-0.125"),
        "batch_size": (DEEPSEEK_BATCH[0] * C ** DEEPSEEK_BATCH[1], "DeepSeek 0.2920*C^0.3271 (tokens)"),
    }


def check_budgets(budgets: list[float], table: pd.DataFrame, max_N: float | None, source: str) -> None:
    """Reject non-positive budgets, budgets below the smallest run in the loss data, bad --max-N."""
    for C in budgets:
        if not np.isfinite(C) or C <= 0:
            raise InputError(f"--compute {C:g}: a FLOP budget must be a positive number")
    smallest = table.loc[table["C"].idxmin()]
    for C in budgets:
        if C < smallest["C"]:
            raise InputError(
                f"--compute {C:.3g}: below the smallest training run in {source} "
                f"({smallest['C']:.3g} FLOPs, N = {smallest['N']:.3g}); the loss law says nothing there"
            )
    if max_N is not None and not (np.isfinite(max_N) and max_N >= table["N"].min()):
        raise InputError(f"--max-N {max_N:g}: must be >= the smallest model in {source} ({table['N'].min():.3g})")


def plan_grid(budgets: np.ndarray, table: pd.DataFrame, n: int = 25) -> np.ndarray:
    """Budgets for the plan's fans: a decade either side of the requested ones, not below the data."""
    lo = max(budgets.min() / 10, table["C"].min())
    return np.logspace(np.log10(lo), np.log10(budgets.max() * 10), n)


def draws_frame(plan: Plan) -> pd.DataFrame:
    """One row per (budget, draw) with every planned quantity."""
    return pd.concat([pd.DataFrame({"compute": C, "draw": np.arange(len(d["N_opt"])), **d})
                      for C, d in plan.draws.items()], ignore_index=True)
