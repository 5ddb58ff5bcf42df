"""How few draws an exact leave-out refit needs: the held-out elpd of a cell against a 4 × 2000-draw refit.

    python benchmarks/bench_refits.py [--data blog-partII] [--cells 0,17,29]

For each kind and held-out cell: log mean_s p(cell | θ_s^(−cell)) from refits of several sizes
and target acceptances (a refit's elpd may not need the main fit's 0.99), and their wall times
(the compiled model is reused, as in the fit). The fit's refits use ``optimum.spec.REFIT_CHAINS ×
REFIT_DRAWS`` (tune REFIT_TUNE) at ``REFIT_TARGET_ACCEPT``; their elpd should agree with the
reference within Monte-Carlo error (a few hundredths of a nat), far below an elpd's standard error.

``--reading``: instead, the seconds of one such refit (cell 0 held out) when its draws are read
from nutpie's raw trace (what the fit does: ``sample(..., posterior_only=True)``) against nutpie's
own conversion of the whole trace (sampler statistics included), alternating ``--repeats`` times.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayes_scaling.inference.config import REFIT_TARGET_ACCEPT, SamplerConfig
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.optimum.compare import cell_loglik
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.optimum.spec import REFIT_CHAINS, REFIT_DRAWS, REFIT_TUNE

#: label: (chains, draws, tune, target acceptance; None: the model's own)
SIZES = {"reference 4x2000 (tune 1000) at 0.99": (4, 2000, 1000, 0.99),
         f"{REFIT_CHAINS}x{REFIT_DRAWS} (tune {REFIT_TUNE}) at 0.99": (REFIT_CHAINS, REFIT_DRAWS, REFIT_TUNE, 0.99),
         f"{REFIT_CHAINS}x{REFIT_DRAWS} (tune {REFIT_TUNE}) at {REFIT_TARGET_ACCEPT}: the fit's":
             (REFIT_CHAINS, REFIT_DRAWS, REFIT_TUNE, None),
         f"1x300 (tune 150) at {REFIT_TARGET_ACCEPT}": (1, 300, 150, None)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="blog-partII")
    p.add_argument("--models", default="quantized,hierarchical")
    p.add_argument("--cells", default="0,17,29")
    p.add_argument("--reading", action="store_true", help="time reading the refit's draws (see above)")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    loaded = load_runs(args.data)
    best = loaded.best()
    data = best.quantity("lr")
    if args.reading:
        reading(data, args.models.split(","), args.repeats)
        return
    rows = []
    for kind in args.models.split(","):
        base = Fitter(SamplerConfig())
        fit = base.fit(kind, data)
        for i in map(int, args.cells.split(",")):
            keep = np.arange(len(data.y)) != i
            for label, (chains, draws, tune, accept) in SIZES.items():
                fitter = Fitter(SamplerConfig(chains=chains, draws=draws, tune=tune, cores=min(chains, 2),
                                              target_accept=accept))
                fitter.cache = base.cache
                t0 = time.perf_counter()
                if label.startswith("reference"):
                    post = fitter.fit(kind, data.subset(keep), fit.centers).posterior
                else:
                    post = fitter.refit_posterior(kind, data.subset(keep), fit.centers)
                wall = time.perf_counter() - t0
                ll = cell_loglik(fit, data.subset(~keep), posterior=post)[:, 0]
                rows.append({"model": kind, "cell": data.cell[i], "refit": label,
                             "elpd": float(logsumexp(ll) - np.log(ll.size)), "wall_s": wall})
    table = pd.DataFrame(rows)
    ref = table[table["refit"].str.startswith("reference")].set_index(["model", "cell"])["elpd"]
    table["minus_reference"] = table["elpd"] - ref.loc[list(zip(table["model"], table["cell"]))].to_numpy()
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
        print(table.groupby("refit")[["minus_reference", "wall_s"]].agg(lambda s: s.abs().mean()))


def reading(data, kinds: list[str], repeats: int) -> None:
    from dataclasses import replace

    from bayes_scaling.optimum.spec import get

    for kind in kinds:
        fitter = Fitter(SamplerConfig())
        fit = fitter.fit(kind, data)
        config = replace(fitter.config.with_target_accept(REFIT_TARGET_ACCEPT), chains=REFIT_CHAINS, draws=REFIT_DRAWS,
                         tune=REFIT_TUNE)
        train = data.subset(np.arange(len(data.y)) != 0)
        times = {True: [], False: []}
        for _ in range(repeats):
            for raw in (True, False):
                t0 = time.perf_counter()
                get(kind).sample(train, fit.centers, fitter, config, posterior_only=raw)
                times[raw].append(time.perf_counter() - t0)
        raw, full = np.mean(times[True]), np.mean(times[False])
        print(f"{kind:<14} refit, draws read from the raw trace {raw:.3f} s   nutpie's whole conversion {full:.3f} s   "
              f"ratio {full / raw:.2f}x  (mean of {repeats})")


if __name__ == "__main__":
    main()
