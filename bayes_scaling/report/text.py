"""Every console report of the project, as text: what a fit's exponents are, which model LOO
prefers, what each model predicts beside the OLS point, the diagnostics, a loss law's
parameters beside their published values, a compute plan, a backtest's ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_scaling.laws.base import TOKENS_PER_PARAM_RULE, LawFit
from models.flops import six_n

UNITS = {"lr": "", "batch_size": " tokens"}


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:,.0f}"


def exponents_text(exponents: pd.DataFrame) -> str:
    """b_N and c_D (and τ_c, and a curved law's e_NN, f_DD) per quantity and model as 'median [lo, hi]'."""
    lines = []
    show = exponents[exponents["param"].isin(["b_N", "c_D", "tau_c", "e_NN", "f_DD"])]
    for q, block in show.groupby("quantity", sort=False):
        bent = "; a curved law adds e_NN·(log N)² + f_DD·(log D)², b_N and c_D its slopes at the table's centre"
        lines.append(f"  {q}:  log q* = const + b_N·log N + c_D·log D" + (bent if (block["param"] == "e_NN").any() else ""))
        for model, rows in block.groupby("model", sort=False):
            cells = [f"{r.param} {r.median:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]" for r in rows.itertuples()]
            lines.append(f"    {model:<13} " + "   ".join(cells))
    return "\n".join(lines)


def compare_text(table: pd.DataFrame) -> str:
    """Per quantity: LOO (interpolation) beside leave-one-N-out and the largest-N / largest-D folds
    (extrapolation), each with its stacking weight and the held-out cells' coverage."""
    lines = []
    cv = "lono_elpd" in table
    for q, block in table.groupby("quantity", sort=False):
        lines.append(f"  {q}:" + ("   LOO (each cell)                    | leave-one-N-out          "
                                  "| held out: largest N, largest D (elpd; cover)" if cv else ""))
        for r in block.itertuples():
            row = (f"    {r.rank}. {r.model:<13} elpd {r.elpd_loo:7.2f} ± {r.se:4.2f}  diff {r.elpd_diff:6.2f}  "
                   f"w {r.weight:.2f}")
            if cv:
                row += (f" | {r.lono_elpd:7.2f} ± {r.lono_se:4.2f}  w {r.lono_weight:.2f}"
                        f" | {r.largest_n_elpd:6.2f}; {r.cover_largest_n:.2f}   {r.largest_d_elpd:6.2f}; {r.cover_largest_d:.2f}")
            if r.n_high_k:
                row += f"  ({r.method})"
            lines.append(row)
    return "\n".join(lines)


def predictions_text(pred: pd.DataFrame, smooth: frozenset[str] = frozenset()) -> str:
    """Per target and quantity: each model's median and interval, OLS point first; a kind in ``smooth``
    (one that tells the smooth optimum from the best grid run) is labelled as the smooth optimum."""
    lines = []
    for (n, d), block in pred.groupby(["N", "D"], sort=False):
        lines.append(f"  at N = {n:.3g}, D = {d:.3g}:")
        for q, rows in block.groupby("quantity", sort=False):
            ols = rows[rows["model"] == "ols"]
            head = f"    {q}{UNITS.get(q, '')}"
            if not ols.empty and "point" in ols:
                head += f"   (OLS point {_fmt(float(ols['point'].iloc[0]))})"
            lines.append(head)
            for r in rows.itertuples():
                width = r.hi / r.lo
                mark = "  smooth optimum" if r.model in smooth else ""
                mark += "  <- recommended" if getattr(r, "recommended", False) else ""
                lines.append(f"      {r.model:<13} {_fmt(r.median):>10}  {int(round(r.ci_prob * 100))}% "
                             f"[{_fmt(r.lo)}, {_fmt(r.hi)}]  (×{width:.2f} wide){mark}")
    return "\n".join(lines)


def diagnostics_text(diagnostics: dict[str, dict]) -> str:
    """One line per Bayesian fit."""
    lines = []
    for key, d in diagnostics.items():
        flag = "ok " if d["ok"] else "!! "
        lines.append(f"  {flag}{key:<26} R-hat {d['max_rhat']:.3f}  ESS bulk {d['min_ess_bulk']:.0f}  "
                     f"tail {d['min_ess_tail']:.0f}  divergences {d['divergences']}")
    return "\n".join(lines)


def law_text(fit: LawFit, source: str, optimal: pd.DataFrame, ci_prob: float) -> str:
    """Console report: estimates with intervals beside the published values, then N*, D*."""
    law, pct = fit.law, f"{ci_prob:.0%}"
    lines = [
        f"law {law.name}: {law.formula}",
        f"data: {source} ({len(law.table)} rows); {fit.n_draws} posterior draws, {fit.wall_s:.1f} s",
        f"diagnostics: {fit.diagnostics.describe()}",
        "",
        f"{'param':<16}{'median':>12}  {pct + ' CrI':<26}reference ({law.reference_source})",
    ]
    for row in fit.param_table(ci_prob).itertuples():
        ref = ""
        if np.isfinite(row.reference):
            ref = f"{row.reference:.4g}"
            if np.isfinite(row.reference_lo):
                ref += f" [{row.reference_lo:.4g}, {row.reference_hi:.4g}]"
        lines.append(f"{row.param:<16}{row.median:>12.4g}  {f'[{row.lo:.4g}, {row.hi:.4g}]':<26}{ref}")
    if not optimal.empty:
        lines += ["", f"compute-optimal allocation (median [{pct} CrI]); rule: {TOKENS_PER_PARAM_RULE:g} tokens/param",
                  f"{'C (FLOPs)':<11}{'N*':<30}{'D*':<30}{'tokens/param':<26}{'rule N':>10}"]
        for C, group in optimal.groupby("C"):
            cell = {r.quantity: f"{r.median:.3g} [{r.lo:.3g}, {r.hi:.3g}]" for r in group.itertuples()}
            rule_N = np.sqrt(C / six_n(TOKENS_PER_PARAM_RULE))
            lines.append(f"{C:<11.0e}{cell['N_opt']:<30}{cell['D_opt']:<30}{cell['tokens_per_param']:<26}{rule_N:>10.3g}")
    return "\n".join(lines)


def plan_text(plan, ci_prob: float, table: pd.DataFrame, flops) -> str:
    """The plan as a console table, one block per budget, with the published rules beside."""
    lines = [f"compute plan (flops model {flops.kind}); median [{ci_prob:.0%} CrI] vs published rule"]
    for C, group in plan.table.groupby("compute", sort=False):
        note = "  (extrapolates beyond the loss data)" if C > table["C"].max() else ""
        lines.append(f"\nC = {C:.3g} FLOPs{note}")
        for r in group.itertuples():
            ref = f"{r.reference:.4g}  ({r.reference_source})" if np.isfinite(r.reference) else ""
            lines.append(f"  {r.quantity:<17}{r.median:>11.4g}  {f'[{r.lo:.4g}, {r.hi:.4g}]':<26}{ref}")
        if plan.joint:
            d = plan.draws[float(C)]
            corr = np.corrcoef(np.log(d["lr"]), np.log(d["batch_size"]))[0, 1]
            lines.append(f"  (lr and batch_size drawn jointly from one law of both: correlation of their log draws {corr:+.2f})")
    return "\n".join(lines)


def plan_surface_text(table: pd.DataFrame, source: str) -> str:
    """The loss surface's word on each planned run: its loss, and the penalty of the user's own choice."""
    lines = [f"\nloss of the planned run (surface {source}; median [{table['ci_prob'].iloc[0]:.0%} interval]):"]
    for C, group in table.groupby("compute", sort=False):
        lines.append(f"C = {C:.3g} FLOPs, N = {group['N'].iloc[0]:.3g}, D = {group['D'].iloc[0]:.3g}")
        for r in group.itertuples():
            pen = "" if r.run == "recommended" else (f"   penalty {r.penalty_median:+.4f} nats "
                                                     f"[{r.penalty_lo:+.4f}, {r.penalty_hi:+.4f}]")
            lines.append(f"  {r.run:<12} lr {r.lr:.3g}, B {r.batch_size:,.0f} tokens: loss {r.loss_median:.4f} "
                         f"[{r.loss_lo:.4f}, {r.loss_hi:.4f}]{pen}")
    return "\n".join(lines)


def ranking_text(rank: pd.DataFrame, ci_prob: float) -> str:
    """A backtest's ranking table (one row per model)."""
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        return (f"ranking (by mean loss regret; coverage = the truth inside the {ci_prob:.0%} interval: the measured "
                "best run, or for '(smooth optimum)' rows the smooth optimum of the kind fitted to every cell; "
                "bias in log2; run_*: held-out run losses):\n"
                + rank.to_string(index=False))


def sensitivity_text(table: pd.DataFrame) -> str:
    """The quantities whose interval is mostly their prior's, per model and quantity (or that none is)."""
    flagged = table[table["prior_driven"]]
    if flagged.empty:
        return "  no parameter or prediction is prior-driven (see sensitivity.csv)"
    lines = []
    for (m, q), rows in flagged.groupby(["model", "quantity"], sort=False):
        items = [f"{r.variable} ({r.diagnosis if r.diagnosis != 'ok' else 'little learned'}"
                 + (f", contraction {r.contraction:.2f}" if np.isfinite(r.contraction) else "") + ")"
                 for r in rows.itertuples()]
        lines.append(f"  !! {m}/{q}: prior-driven: " + "; ".join(items))
    return "\n".join(lines) + "\n  (test another prior with --prior NAME=DIST; every value is in sensitivity.csv)"


def advice_text(table: pd.DataFrame, path: pd.DataFrame, budget: float, ci_prob: float) -> str:
    """The advisor's console table: each candidate alone (expected hi/lo ratio of the interval at every
    law × target, shrinkage, gain per EFLOP), then the chosen set and what it buys."""
    laws = table[["model", "quantity", "target_N", "target_D"]].drop_duplicates()
    heads = [f"{r.quantity}@{r.target_N:.2g},{r.target_D:.2g}" + (f" {r.model}" if table["model"].nunique() > 1 else "")
             for r in laws.itertuples()]
    lines = [f"expected {ci_prob:.0%} interval (hi/lo ratio) after each candidate sweep alone: now → after",
             f"  {'candidate':<58}{'runs':>5}{'FLOPs':>10}  " + "".join(f"{h:<24}" for h in heads)
             + f"{'gain/EFLOP':>11}{'chosen':>8}"]
    for label, rows in table.groupby("candidate", sort=False):
        first = rows.iloc[0]
        cells = "".join(f"{f'×{_ratio(r.width_before)} → ×{_ratio(r.width_after)}':<24}" for r in rows.itertuples())
        chosen = f"#{first.order}" if first.chosen else ""
        lines.append(f"  {label[:57]:<58}{first.runs:>5}{first.flops:>10.2e}  {cells}"
                     f"{rows['gain_per_eflop'].mean():>11.3g}{chosen:>8}")
    final = path[path["step"] == path["step"].max()]
    checked = final[final["estimate"] == final["estimate"].iloc[-1]]
    spent = float(checked["flops_spent"].iloc[0])
    lines.append(f"\nchosen set: {spent:.3g} of {budget:.3g} FLOPs; expected intervals after it "
                 f"({checked['estimate'].iloc[0]}):")
    start = path[path["step"] == 0]
    for r, r0 in zip(checked.itertuples(), start.itertuples()):
        lines.append(f"  {r.model} {r.quantity} at N={r.target_N:.3g}, D={r.target_D:.3g}: ×{_ratio(r0.width)} → ×{_ratio(r.width)} "
                     f"({r.shrinkage:.0%} narrower in log width)")
    added = [a for a in path.drop_duplicates("step")["added"] if a]
    lines += ["  order: " + ("; ".join(added) if added else "none — no candidate narrows the intervals")]
    return "\n".join(lines)


def _ratio(x: float) -> str:
    """A hi/lo ratio with enough digits to tell a narrow interval (the loss's ×1.037) from another."""
    return f"{x:.4g}" if x < 1.2 else f"{x:.3g}"
