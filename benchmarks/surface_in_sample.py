"""Where the surface's bowls put each fitted cell's optimum, against the cell's measured best run.

    python benchmarks/surface_in_sample.py [--data steplaw-dense] [--seed 0]

Fits the full-surface model to every run of ``--data`` (4 × 1000 draws) and, in each fitted cell,
compares with the measured best run (log₂ ratios): the smooth optimum (the bowl's argmin, posterior
median), and the best run a sweep of the cell's own configurations would find (``SurfaceFit.best_run``:
its median and geometric mean), with whether the best run's 90 % interval holds the measured one.
No extrapolation is involved: a bias here is the bowl family's, not the laws'.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.surface.fit import fit_surface


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="steplaw-dense")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    loaded = load_runs(args.data)
    sf = fit_surface(loaded.runs, SamplerConfig(seed=args.seed), source=loaded.source)
    print(f"surface fit of {args.data}: {sf.diagnostics.describe()}")
    runs, optima = sf.data.runs, sf.cell_optima()
    rows = []
    for j, cell in sf.data.cells.iterrows():
        here = runs[runs["cell"] == j]
        best = sf.best_run(cell["N"], cell["D"], B=here["B"].to_numpy(), lr=here["lr"].to_numpy()).set_index("quantity")
        smooth = optima[(optima["N"] == cell["N"]) & (optima["D"] == cell["D"])].set_index("quantity")
        for q, col in (("lr", "best_lr"), ("batch_size", "best_B")):
            measured = cell[col]
            rows.append({"quantity": q, "N": cell["N"], "D": cell["D"],
                         "smooth_log2": np.log2(smooth.loc[q, "median"] / measured),
                         "best_run_median_log2": np.log2(best.loc[q, "median"] / measured),
                         "best_run_geomean_log2": np.log2(best.loc[q, "mean"] / measured),
                         "best_run_covers": best.loc[q, "lo"] <= measured <= best.loc[q, "hi"]})
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format=lambda x: f"{x:+.2f}"))
    summary = table.groupby("quantity")[["smooth_log2", "best_run_median_log2", "best_run_geomean_log2",
                                         "best_run_covers"]].mean()
    summary["smooth_se"] = table.groupby("quantity")["smooth_log2"].std() / np.sqrt(len(sf.data.cells))
    print("\nmean over the fitted cells (log2 of fit / measured best run):")
    print(summary.to_string(float_format=lambda x: f"{x:+.3f}"))


if __name__ == "__main__":
    main()
