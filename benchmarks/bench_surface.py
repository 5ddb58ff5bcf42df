"""Wall time of the full-surface fit on StepLaw (1,911 runs) against the best-run hierarchical fit.

    python benchmarks/bench_surface.py [--draws 1000 --tune 1000] [--advi]

Both timings include nutpie's compilation and are taken in the same process, so their
ratio is meaningful on a shared machine even when the absolute seconds are not.
Target (issue #6): the NUTS surface fit within 120 s on 2 cores.
"""

from __future__ import annotations

import argparse
import time

from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.inputs.runtable import QUANTITIES, best_runs
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.surface.fit import fit_surface


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--slopes", choices=("pooled", "per_n"), default="pooled")
    p.add_argument("--advi", action="store_true", help="also time the approximate ADVI mode")
    args = p.parse_args()
    config = SamplerConfig(draws=args.draws, tune=args.tune)
    loaded = load_runs("steplaw-dense")
    best = best_runs(loaded.runs, source=loaded.source)

    t0 = time.perf_counter()
    fitter = Fitter(config)
    hier = {q: fitter.fit("hierarchical", best.quantity(q)) for q in QUANTITIES}
    t_hier = time.perf_counter() - t0
    t0 = time.perf_counter()
    sf = fit_surface(loaded.runs, config, slopes=args.slopes, source=loaded.source)
    t_surf = time.perf_counter() - t0
    print(f"hierarchical (best runs, both optima, incl. compile): {t_hier:6.1f} s  "
          + "; ".join(f"{q}: {f.diagnostics.describe()}" for q, f in hier.items()))
    print(f"surface NUTS ({len(loaded.runs)} runs, slopes={args.slopes}, incl. compile): {t_surf:6.1f} s  "
          f"{sf.diagnostics.describe()}")
    print(f"ratio surface / hierarchical: {t_surf / t_hier:.1f}x   (target: surface <= 120 s)")
    if args.advi:
        t0 = time.perf_counter()
        sa = fit_surface(loaded.runs, config, slopes=args.slopes, approx="advi", source=loaded.source)
        t_advi = time.perf_counter() - t0
        print(f"surface ADVI (approximate): {t_advi:6.1f} s  ratio to NUTS surface {t_advi / t_surf:.2f}")
        for q in QUANTITIES:
            nuts = sf.as_optimum_fits()[q].coefficients()
            advi = sa.as_optimum_fits()[q].coefficients()
            print(f"  {q}: NUTS vs ADVI exponents\n" + nuts.merge(advi, on="param", suffixes=("_nuts", "_advi"))[
                ["param", "median_nuts", "lo_nuts", "hi_nuts", "median_advi", "lo_advi", "hi_advi"]].to_string(index=False))


if __name__ == "__main__":
    main()
