"""Loss scaling laws: pick a law, fit it, report it — the ``fit --law`` entry point.

Laws (each a class with its one-formula docstring in its own module):

* ``chinchilla`` — L(N, D) = E + A/N^α + B/D^β (Method 3; :mod:`laws_parametric`)
* ``isoflop``    — per-budget parabolas in log N, N*(C) = k·C^a (Method 2; :mod:`laws_isoflop`)
* ``envelope``   — N*(C), D*(C) through the lower loss envelope (Method 1; :mod:`laws_envelope`)
* ``kaplan``     — L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (:mod:`laws_kaplan`); on a steps
  table (target_loss, batch_size, steps) the critical batch B_crit(L) = B*/L^(1/α_B)
  (:mod:`laws_critical_batch`)

:func:`run_law` writes into its output directory ``law_params.csv`` (median and interval
of each parameter beside its published value), ``optimal.csv`` (N*, D*, tokens/param
over a grid of budgets, where the law gives them), ``data_used.csv``,
``posterior/<law>.nc``, ``plots/*.png`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.io import staged_dir, write_csv, write_datatree, write_json
from bayes_scaling.laws_common import TOKENS_PER_PARAM_RULE, Law, LawFit, fit_law, quantiles
from bayes_scaling.laws_critical_batch import COLUMNS as STEPS_COLUMNS
from bayes_scaling.laws_critical_batch import CriticalBatchLaw
from bayes_scaling.laws_envelope import EnvelopeLaw
from bayes_scaling.laws_isoflop import IsoflopLaw
from bayes_scaling.laws_kaplan import KaplanLaw
from bayes_scaling.laws_parametric import ParametricLaw
from bayes_scaling.loss_data import load_loss_table
from bayes_scaling.runtable import read_table
from bayes_scaling.sampling import SAMPLERS, SamplerConfig

LAWS = {"chinchilla": ParametricLaw, "isoflop": IsoflopLaw, "envelope": EnvelopeLaw, "kaplan": KaplanLaw}
DEFAULT_DATA = {"chinchilla": "chinchilla", "isoflop": "porian", "envelope": "chinchilla", "kaplan": "chinchilla"}

#: Exit code under the fit CLI's --strict when the fit fails its convergence diagnostics.
STRICT_EXIT = 3

#: Budgets (FLOPs) at which ``optimal.csv`` and the console report N*, D*.
REPORT_BUDGETS = np.array([1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25])


def build_law(law: str, data: str | None = None) -> tuple[Law, str]:
    """The law object for ``law`` on ``data`` (bundled name or path; None → the law's default)."""
    if law not in LAWS:
        raise InputError(f"--law {law!r}: choose one of {', '.join(LAWS)}")
    data = data or DEFAULT_DATA[law]
    if law == "kaplan" and Path(data).is_file():
        frame = read_table(data)
        if set(STEPS_COLUMNS) <= {str(c).strip() for c in frame.columns}:
            return CriticalBatchLaw(frame, source=data), data
    table, source = load_loss_table(data)
    return _law_from(LAWS[law], table, source), source


def _law_from(cls, table: pd.DataFrame, source: str) -> Law:
    try:
        return cls(table)
    except InputError as err:
        raise InputError(f"{source}: {err}") from None


def optimal_table(fit: LawFit, budgets: np.ndarray, ci_prob: float = 0.9) -> pd.DataFrame:
    """N*, D*, tokens/param per budget (median and interval over posterior draws); empty if the law has no optimum."""
    if not hasattr(fit.law, "optimal"):
        return pd.DataFrame()
    N, D = fit.law.optimal(fit.posterior, budgets)
    rows = []
    for name, draws in (("N_opt", N), ("D_opt", D), ("tokens_per_param", D / N)):
        med, lo, hi = quantiles(draws, ci_prob)
        for t, C in enumerate(budgets):
            rows.append({"C": C, "quantity": name, "median": med[t], "lo": lo[t], "hi": hi[t], "ci_prob": ci_prob})
    return pd.DataFrame(rows)


def run_law(args: argparse.Namespace) -> int:
    """Fit ``args.law`` on ``args.data``, write the artifacts under ``args.out``, print a summary.

    Also honours the fit CLI's ``target_accept`` and ``strict`` (exit 3 on failed diagnostics) when present.
    """
    _check_args(args)
    law, source = build_law(args.law, args.data)
    config = SamplerConfig(sampler=args.sampler, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                           target_accept=getattr(args, "target_accept", SamplerConfig.target_accept))
    out = Path(args.out) if args.out else Path("runs") / f"law-{args.law}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    t0 = time.perf_counter()
    fit = fit_law(law, config)
    params = fit.param_table(args.ci_prob)
    optimal = optimal_table(fit, REPORT_BUDGETS, args.ci_prob)
    with staged_dir(out) as stage:  # the directory appears complete or not at all
        write_csv(stage / "law_params.csv", params)
        write_csv(stage / "data_used.csv", law.table)
        if not optimal.empty:
            write_csv(stage / "optimal.csv", optimal)
        write_datatree(stage / "posterior" / f"{law.name}.nc", fit.idata)
        plots = []
        if args.plots:
            from bayes_scaling.loss_plots import save_law_plots

            plots = save_law_plots(fit, stage / "plots", ci_prob=args.ci_prob)
        write_json(stage / "manifest.json", {
            "law": law.name, "formula": law.formula, "data": source, "n_rows": len(law.table),
            "sampler": asdict(config), "ci_prob": args.ci_prob, "diagnostics": fit.diagnostics.as_dict(),
            "sampling_wall_s": round(fit.wall_s, 2), "total_wall_s": round(time.perf_counter() - t0, 2),
            "reference_source": law.reference_source,
            "files": sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file()) + ["manifest.json"],
            "plots": [str(p.relative_to(stage)) for p in plots],
        })
    print(summary(fit, source, optimal, args.ci_prob))
    print(f"wrote {out}/")
    if not fit.diagnostics.ok:
        print(f"WARNING: the {law.name} fit did not converge ({'; '.join(fit.diagnostics.problems())}); "
              "do not trust these intervals — rerun with more --tune/--draws.", file=sys.stderr)
        if getattr(args, "strict", False):
            return STRICT_EXIT
    return 0


def _check_args(args: argparse.Namespace) -> None:
    for name in ("draws", "tune", "chains"):
        if int(getattr(args, name)) < 1:
            raise InputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not 0 < float(args.ci_prob) < 1:
        raise InputError(f"--ci-prob must lie in (0, 1), got {args.ci_prob}")
    if args.sampler not in SAMPLERS:
        raise InputError(f"--sampler must be one of {SAMPLERS}, got {args.sampler!r}")


def summary(fit: LawFit, source: str, optimal: pd.DataFrame, ci_prob: float) -> str:
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
            rule_N = np.sqrt(C / (6 * TOKENS_PER_PARAM_RULE))
            lines.append(f"{C:<11.0e}{cell['N_opt']:<30}{cell['D_opt']:<30}{cell['tokens_per_param']:<26}{rule_N:>10.3g}")
    return "\n".join(lines)
