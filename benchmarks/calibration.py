"""Simulation-based calibration of the optimum models and the surface model on StepLaw's design.

    python benchmarks/calibration.py --out results/sbc [--sims 50 --surface-sims 8 --draws 250]

Writes sbc.csv (one row per simulation, model, optimum and checked scalar: rank of the
truth among the thinned posterior draws, 50 % / 90 % coverage), coverage.csv and
rank_histograms.png, and prints the coverage table. Goal (issue #6): 90 % intervals
cover 85–95 %. With n simulations a coverage estimate has a binomial standard error
of about √(0.9·0.1/n) (0.04 at n = 50, two optima each).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.evaluation.calibration import Design, coverage_table, sbc_best_run, sbc_surface
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.io import atomic_path, write_csv
from bayes_scaling.optimum.spec import registry
from bayes_scaling.inference.config import SamplerConfig


def rank_histograms(sbc: pd.DataFrame, path: Path, bins: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, params = sorted(sbc["model"].unique()), sorted(sbc["param"].unique())
    fig, axes = plt.subplots(len(models), len(params), figsize=(3 * len(params), 2.2 * len(models)), squeeze=False)
    for i, m in enumerate(models):
        for k, prm in enumerate(params):
            s = sbc[(sbc["model"] == m) & (sbc["param"] == prm)]
            ax = axes[i, k]
            ax.hist(s["rank"] / s["n_ranks"], bins=np.linspace(0, 1, bins + 1), color="C0")
            ax.axhline(len(s) / bins, color="k", lw=0.8)
            ax.set_title(f"{m}: {prm} (n={len(s)})", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.supxlabel("normalised rank of the truth (uniform if calibrated)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="sbc", help="output folder")
    p.add_argument("--sims", type=int, default=50, help="simulations per best-run model (default 50)")
    p.add_argument("--surface-sims", type=int, default=8, help="simulations of the surface model (default 8)")
    p.add_argument("--models", default=",".join([n for n, s in registry().items() if s.bayesian] + ["surface"]))
    p.add_argument("--draws", type=int, default=250, help="draws per chain (default 250)")
    p.add_argument("--tune", type=int, default=400)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    design = Design.of(load_runs("steplaw-dense").runs)
    config = SamplerConfig(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
    parts = []
    for m in args.models.split(","):
        t0 = time.perf_counter()
        if m == "surface":
            parts.append(sbc_surface(design, args.surface_sims, config, seed=args.seed))
        else:
            parts.append(sbc_best_run(m, design, args.sims, config, seed=args.seed))
        print(f"{m}: {time.perf_counter() - t0:.0f} s", flush=True)
    sbc = pd.concat(parts, ignore_index=True)
    table = coverage_table(sbc)
    out = Path(args.out)
    write_csv(out / "sbc.csv", sbc)
    write_csv(out / "coverage.csv", table)
    rank_histograms(sbc, out / "rank_histograms.png")
    with pd.option_context("display.float_format", "{:.2f}".format, "display.width", 160):
        print(table.to_string(index=False))
    print(f"wrote {out / 'sbc.csv'}, {out / 'coverage.csv'}, {out / 'rank_histograms.png'}")


if __name__ == "__main__":
    main()
