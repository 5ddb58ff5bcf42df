"""Console summary of a fit: what the exponents are, which model LOO prefers, and what
each model predicts at the targets beside the OLS point — readable at a glance."""

from __future__ import annotations

import pandas as pd

UNITS = {"lr": "", "batch_size": " tokens"}


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:,.0f}"


def exponents_text(exponents: pd.DataFrame) -> str:
    """b_N and c_D (and τ_c) per quantity and model as 'median [lo, hi]'."""
    lines = []
    show = exponents[exponents["param"].isin(["b_N", "c_D", "tau_c"])]
    for q, block in show.groupby("quantity", sort=False):
        lines.append(f"  {q}:  log q* = const + b_N·log N + c_D·log D")
        for model, rows in block.groupby("model", sort=False):
            cells = [f"{r.param} {r.median:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]" for r in rows.itertuples()]
            lines.append(f"    {model:<13} " + "   ".join(cells))
    return "\n".join(lines)


def compare_text(table: pd.DataFrame) -> str:
    """LOO ranking per quantity."""
    lines = []
    for q, block in table.groupby("quantity", sort=False):
        lines.append(f"  {q}:")
        for r in block.itertuples():
            note = "" if r.n_high_k == 0 else f"  ({r.method})"
            lines.append(f"    {r.rank}. {r.model:<13} elpd {r.elpd_loo:7.2f} ± {r.se:4.2f}   "
                         f"diff {r.elpd_diff:6.2f} ± {r.dse:4.2f}   weight {r.weight:.2f}{note}")
    return "\n".join(lines)


def predictions_text(pred: pd.DataFrame) -> str:
    """Per target and quantity: each model's median and interval, OLS point first."""
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
                lines.append(f"      {r.model:<13} {_fmt(r.median):>10}  {int(round(r.ci_prob * 100))}% "
                             f"[{_fmt(r.lo)}, {_fmt(r.hi)}]  (×{width:.2f} wide)")
    return "\n".join(lines)


def diagnostics_text(diagnostics: dict[str, dict]) -> str:
    """One line per Bayesian fit."""
    lines = []
    for key, d in diagnostics.items():
        flag = "ok " if d["ok"] else "!! "
        lines.append(f"  {flag}{key:<26} R-hat {d['max_rhat']:.3f}  ESS bulk {d['min_ess_bulk']:.0f}  "
                     f"tail {d['min_ess_tail']:.0f}  divergences {d['divergences']}")
    return "\n".join(lines)
