"""Where the surface model puts each StepLaw cell's optimum, against the cell's best run, by window.

    python benchmarks/surface_window.py [--windows 0.1,0.03,0.015] [--draws 500 --tune 500]

For each window (nats above a cell's best loss kept exact; runs above it are censored)
it fits the surface model to all 17 cells of ``steplaw-dense`` and prints, per optimum,
the mean and SD over cells of log2(fitted optimum / best measured run), the median
width (log2) of the cells' 90 % intervals, and the sampler diagnostics. A systematic
negative mean is the bias described in ``bayes_scaling.surface``; a narrower window fits
the bowl closer to its minimum.
"""

from __future__ import annotations

import argparse

import numpy as np

from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.surface.fit import fit_surface


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--windows", default="0.1,0.03,0.015", help="comma-separated windows in nats")
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=500)
    args = p.parse_args()
    loaded = load_runs("steplaw-dense")
    print(f"{'window':>7} {'optimum':<11} {'mean log2(fit/best)':>20} {'sd':>6} {'90% width log2':>15}  diagnostics")
    for window in (float(w) for w in args.windows.split(",")):
        sf = fit_surface(loaded.runs, SamplerConfig(draws=args.draws, tune=args.tune), window=window, source=loaded.source)
        cells = sf.cell_optima()
        for q in ("lr", "batch_size"):
            c = cells[cells["quantity"] == q]
            ratio = np.log2(c["median"] / c["measured"])
            width = np.log2(c["hi"] / c["lo"]).median()
            print(f"{window:7.3f} {q:<11} {ratio.mean():+20.2f} {ratio.std():6.2f} {width:15.2f}  {sf.diagnostics.describe()}",
                  flush=True)


if __name__ == "__main__":
    main()
