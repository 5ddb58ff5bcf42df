"""``python -m bayes_scaling.fit --law NAME`` — fit a loss law L(N, D), report it, write it.

Laws (``laws/``, one module each, listed by ``laws.base.registry``): ``chinchilla`` (Method 3),
``isoflop`` (Method 2), ``envelope`` (Method 1), ``kaplan`` (its joint law; on a steps table
the critical batch) and ``critical-batch``. The run writes into its output directory
``law_params.csv`` (median and interval of each parameter beside its published value),
``optimal.csv`` (N*, D*, tokens/param over a grid of budgets, where the law gives them),
``data_used.csv``, ``posterior/<law>.nc``, ``plots/*.png`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bayes_scaling.cli import common
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.laws.base import registry

#: Budgets (FLOPs) at which ``optimal.csv`` and the console report N*, D*.
REPORT_BUDGETS = np.array([1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25])
ARTIFACTS = ("law_params.csv", "data_used.csv", "optimal.csv", "posterior", "plots")


def run_law(args: argparse.Namespace, argv: list[str]) -> int:
    """Fit ``args.law`` on ``args.data`` (or the law's default table), write, report."""
    from bayes_scaling.errors import InputError

    laws = registry()
    if args.law not in laws:
        raise InputError(f"--law {args.law!r}: choose one of {', '.join(laws)}")
    law_cls = laws[args.law]
    ci_prob = common.check_ci_prob(args.ci_prob)
    config = SamplerConfig.from_args(args)
    data = args.data or law_cls.default_data
    command = common.CommandRun("fit", argv, args.out, common.data_label(data or args.law), ARTIFACTS)
    law, source, sha256 = law_cls.from_data(args.data)

    from bayes_scaling.io import write_csv
    from bayes_scaling.laws.base import fit_law

    fit = fit_law(law, config)
    params = fit.param_table(ci_prob)
    optimal = fit.optimal_table(REPORT_BUDGETS, ci_prob)
    with command.publish({
        "law": law.name, "formula": law.formula,
        "data": {"source": source, "sha256": sha256, "rows": len(law.table)},
        "seed": config.seed, "sampler": config.as_dict(), "ci_prob": ci_prob,
        "diagnostics": {law.name: fit.diagnostics.as_dict()}, "sampling_wall_s": round(fit.wall_s, 2),
        "reference_source": law.reference_source,
    }) as stage:
        write_csv(stage / "law_params.csv", params)
        write_csv(stage / "data_used.csv", law.table)
        if not optimal.empty:
            write_csv(stage / "optimal.csv", optimal)
        fit.to_netcdf(stage / "posterior" / f"{law.name}.nc", source)
        if args.plots:
            from bayes_scaling.report.figures.laws import save_law_plots

            save_law_plots(fit, stage / "plots", ci_prob=ci_prob)

    from bayes_scaling.report.text import law_text

    print(law_text(fit, source, optimal, ci_prob))
    print(f"wrote {command.out}/")
    failed = [] if fit.diagnostics.ok else [law.name]
    if failed:
        print(f"WARNING: the {law.name} fit did not converge ({'; '.join(fit.diagnostics.problems())}); "
              "do not trust these intervals — rerun with more --tune/--draws.", file=sys.stderr)
    return common.strict_exit(failed, args.strict)
