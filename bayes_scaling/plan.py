"""Compute planner: a FLOP budget → N*, D*, tokens/param, loss, learning rate, batch size.

For every posterior draw s of the loss law L_s(N, D) = E + A/N^α + B/D^β:

    N*_s = argmin_N L_s(N, C/M(N)),  D*_s = C/M(N*_s)      (capped at --max-N)
    η_s ~ p(η* | N*_s, D*_s),        B_s ~ p(B* | N*_s, D*_s)  (η*/B* posterior predictive)

with M(N) = 6N FLOPs/token (``6ND``) or DeepSeek's M = 6N + 6·n_layer·d_model·seq_len
(``deepseek``, shape from d_model = aspect·n_layer and N = 12·n_layer·d_model²). The
uncertainty is carried draw by draw; nothing is plugged in at a median.

    python -m bayes_scaling.plan --compute 1e21 --compute 1e23 --out runs/plan
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.cli import ArgumentParser, guarded
from bayes_scaling.io import staged_dir, write_csv, write_json
from bayes_scaling.laws_common import TOKENS_PER_PARAM_RULE, LawFit, fit_law, quantiles
from bayes_scaling.laws_parametric import ParametricLaw
from bayes_scaling.loss_data import load_loss_table
from bayes_scaling.sampling import SAMPLERS, SamplerConfig

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
            return 6 * N
        d_model = (N * self.aspect / 12) ** (1 / 3)
        return 6 * N + 6 * self.seq_len * d_model**2 / self.aspect  # n_layer·d_model = d_model²/aspect


@dataclass
class Plan:
    """Per-budget draws of every planned quantity and their summary table."""

    budgets: np.ndarray
    draws: dict[float, dict[str, np.ndarray]]
    table: pd.DataFrame


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
    hi = np.broadcast_to(np.log(budgets / 6.0), shape).copy()  # at least one token
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
             "lr": optimum_fits["lr"].sample_paired(N[:, t], D[:, t], rng),
             "batch_size": optimum_fits["batch_size"].sample_paired(N[:, t], D[:, t], rng)}
        draws[float(C)] = d
        refs = references(C)
        for q in QUANTITIES:
            med, lo, hi = quantiles(d[q], ci_prob)
            ref, source = refs.get(q, (np.nan, ""))
            rows.append({"compute": C, "quantity": q, "median": med, "lo": lo, "hi": hi, "ci_prob": ci_prob,
                         "reference": ref, "reference_source": source})
    return Plan(budgets, draws, pd.DataFrame(rows))


def references(C: float) -> dict[str, tuple[float, str]]:
    """Published rules at budget C: 20 tokens/param (Chinchilla) and DeepSeek's η, B."""
    rule_N = np.sqrt(C / (6 * TOKENS_PER_PARAM_RULE))
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


def parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="python -m bayes_scaling.plan",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Plan a training run for a FLOP budget with honest uncertainty.\n\n"
            "Fits the loss law L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla Method 3) and the\n"
            "laws of the optimal learning rate and batch size, then for every posterior draw finds\n"
            "the compute-optimal N*, D* for the budget and the lr / batch size at that (N*, D*).\n"
            "Reports medians with equal-tailed intervals beside the 20 tokens/param rule and\n"
            "DeepSeek's eta = 0.3118*C^-0.125, B = 0.2920*C^0.3271 (tokens)."
        ),
        epilog="example: python -m bayes_scaling.plan --compute 1e21 --compute 1e23 --max-N 7e10 --out runs/plan",
    )
    ap.add_argument("--compute", type=float, action="append", required=True, metavar="FLOPS",
                    help="training budget in FLOPs (repeatable), e.g. 1e21")
    ap.add_argument("--max-N", type=float, default=None, help="largest model you can train (parameters); caps N*")
    ap.add_argument("--flops-model", choices=FLOPS_MODELS, default="6ND",
                    help="C = 6*N*D (default) or DeepSeek's C = M*D with attention FLOPs in M")
    ap.add_argument("--seq-len", type=int, default=4096, help="sequence length for --flops-model deepseek (default 4096)")
    ap.add_argument("--aspect", type=float, default=128.0, help="d_model / n_layer for --flops-model deepseek (default 128)")
    ap.add_argument("--loss-law-data", default="chinchilla",
                    help="loss table for the loss law: chinchilla (default), porian[:filters] or a CSV/Parquet run table")
    ap.add_argument("--optimum-data", default="blog-partII", help="run table for the lr / batch-size laws (default blog-partII)")
    ap.add_argument("--optimum-model", default="hierarchical", help="model for the lr / batch-size laws (default hierarchical)")
    ap.add_argument("--ci-prob", type=float, default=0.9, help="credible-interval probability (default 0.9)")
    ap.add_argument("--draws", type=int, default=1000, help="posterior draws per chain (default 1000)")
    ap.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default 1000)")
    ap.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    ap.add_argument("--target-accept", type=float, default=0.99,
                    help="NUTS target acceptance (default 0.99: small steps through the lr/batch models' per-N funnel)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--sampler", choices=SAMPLERS, default="nutpie", help="NUTS implementation (default nutpie)")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default runs/plan-<timestamp>/)")
    ap.add_argument("--no-plot", dest="plot", action="store_false", help="skip plan.png")
    return ap


def run(args: argparse.Namespace) -> int:
    """Validate, fit both posteriors, plan, write plan.csv / plan_draws.csv / plan.png / manifest.json."""
    from bayes_scaling.api import ALL_MODELS, fit_optimum
    from bayes_scaling.datasets import load_runs

    for name in ("draws", "tune", "chains"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not 0 < args.ci_prob < 1:
        raise InputError(f"--ci-prob must lie in (0, 1), got {args.ci_prob}")
    if not 0.5 <= args.target_accept < 1:
        raise InputError(f"--target-accept {args.target_accept}: must be in [0.5, 1)")
    if args.seq_len < 0 or not args.aspect > 0:
        raise InputError(f"--seq-len must be >= 0 and --aspect > 0, got {args.seq_len} and {args.aspect}")
    if args.optimum_model not in ALL_MODELS:
        raise InputError(f"--optimum-model {args.optimum_model!r}: choose one of {', '.join(ALL_MODELS)}")
    table, source = load_loss_table(args.loss_law_data)
    check_budgets(args.compute, table, args.max_N, source)
    load_runs(args.optimum_data)  # fail on a bad run table before any fitting
    t0 = time.perf_counter()
    config = SamplerConfig(sampler=args.sampler, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                           target_accept=args.target_accept)
    loss_fit = fit_law(ParametricLaw(table), config)
    optimum = fit_optimum(data=args.optimum_data, model=args.optimum_model, config=config)
    flops = FlopsModel(args.flops_model, args.seq_len, args.aspect)
    plan = make_plan(args.compute, loss_fit, optimum, flops=flops, max_N=args.max_N, ci_prob=args.ci_prob, seed=args.seed)
    out = args.out or Path("runs") / f"plan-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    diagnostics = {"loss_law": loss_fit.diagnostics, **{q: f.diagnostics for q, f in optimum.items()}}
    with staged_dir(out) as stage:  # the directory appears complete or not at all
        write_csv(stage / "plan.csv", plan.table)
        write_csv(stage / "plan_draws.csv", draws_frame(plan))
        if args.plot:
            from bayes_scaling.loss_plots import plot_plan, save_figure

            grid = plan_grid(plan.budgets, table)
            curve = make_plan(grid, loss_fit, optimum, flops=flops, max_N=args.max_N, ci_prob=args.ci_prob,
                              seed=args.seed)
            save_figure(plot_plan(plan, curve, ci_prob=args.ci_prob), stage / "plan.png")
        write_json(stage / "manifest.json", {
            "compute": args.compute, "flops_model": args.flops_model, "max_N": args.max_N,
            "loss_law_data": source, "optimum_data": args.optimum_data, "optimum_model": args.optimum_model,
            "ci_prob": args.ci_prob, "sampler": asdict(config), "wall_s": round(time.perf_counter() - t0, 2),
            "diagnostics": {k: d.as_dict() if d else None for k, d in diagnostics.items()},
        })
    print(report(plan, args.ci_prob, table, flops))
    for name, d in diagnostics.items():
        print(f"diagnostics {name}: {d.describe() if d else 'n/a'}")
        if d is not None and not d.ok:
            print(f"WARNING: the {name} fit did not converge; do not trust its intervals.", file=sys.stderr)
    print(f"wrote {out}/")
    return 0


def plan_grid(budgets: np.ndarray, table: pd.DataFrame, n: int = 25) -> np.ndarray:
    """Budgets for the plan's fans: a decade either side of the requested ones, not below the data."""
    lo = max(budgets.min() / 10, table["C"].min())
    return np.logspace(np.log10(lo), np.log10(budgets.max() * 10), n)


def draws_frame(plan: Plan) -> pd.DataFrame:
    """One row per (budget, draw) with every planned quantity."""
    return pd.concat([pd.DataFrame({"compute": C, "draw": np.arange(len(d["N_opt"])), **d})
                      for C, d in plan.draws.items()], ignore_index=True)


def report(plan: Plan, ci_prob: float, table: pd.DataFrame, flops: FlopsModel) -> str:
    """The plan as a console table, one block per budget, with the published rules beside."""
    lines = [f"compute plan (flops model {flops.kind}); median [{ci_prob:.0%} CrI] vs published rule"]
    for C, group in plan.table.groupby("compute", sort=False):
        note = "  (extrapolates beyond the loss data)" if C > table["C"].max() else ""
        lines.append(f"\nC = {C:.3g} FLOPs{note}")
        for r in group.itertuples():
            ref = f"{r.reference:.4g}  ({r.reference_source})" if np.isfinite(r.reference) else ""
            lines.append(f"  {r.quantity:<17}{r.median:>11.4g}  {f'[{r.lo:.4g}, {r.hi:.4g}]':<26}{ref}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
