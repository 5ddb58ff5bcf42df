"""Wall time of the full-surface fit on StepLaw (1,911 runs) against the best-run hierarchical fit.

    python benchmarks/bench_surface.py [--draws 1000 --tune 1000] [--advi]
    python benchmarks/bench_surface.py --data steplaw-moe --tune 2000 --target-accept 0.995
    python benchmarks/bench_surface.py --large [--cells 100 --runs-per-cell 2000]

``--large``: the fast path on a simulated 200k-run table (100 cells, 40 lr × 50 batch values each,
StepLaw-exponent optima): ADVI with its progress lines, timed end to end (goal: within 5 minutes),
and its recovered exponents beside the true ones. Labelled approximate, as everywhere it is shown.

Both timings include nutpie's compilation and are taken in the same process, so their
ratio is meaningful on a shared machine even when the absolute seconds are not.
Target (issue #6): the NUTS surface fit within 120 s on 2 cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.inputs.runtable import QUANTITIES, best_runs
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.surface.fit import SurfaceFitter, fit_surface


#: The simulated large table's true optimum laws (StepLaw's published exponents), as (a, b, c) of
#: log q* = a + b·log N + c·log D.
LARGE_TRUTH = {"lr": (float(np.log(1.79)), -0.713, 0.307), "batch_size": (float(np.log(0.58)), 0.0, 0.571)}


def large_table(cells: int, runs_per_cell: int, seed: int = 0):
    """A simulated sweep of ``cells`` (N, D) cells with ``runs_per_cell`` runs each (lr × batch grid)."""
    from bayes_scaling.evaluation.calibration import Design, sweep_runs
    from bayes_scaling.inputs.runtable import validate_runs

    rng = np.random.default_rng(seed)
    side = int(round(np.sqrt(cells)))
    N, D = (g.ravel() for g in np.meshgrid(np.geomspace(5e7, 2e9, side), np.geomspace(2e9, 1e11, side), indexing="ij"))
    n_lr = int(round(np.sqrt(runs_per_cell * 0.8)))
    n_b = runs_per_cell // n_lr
    log_opt = np.array([a + b * np.log(N) + c * np.log(D) for a, b, c in LARGE_TRUTH.values()])
    log_opt += 0.1 * rng.standard_normal(log_opt.shape)
    lo, hi = log_opt.min(axis=1) - 2.0, log_opt.max(axis=1) + 2.0
    design = Design(N=N, D=D, log_grid={"lr": np.linspace(lo[0], hi[0], n_lr), "batch_size": np.linspace(lo[1], hi[1], n_b)},
                    min_loss=1.69 + 406.4 / N**0.34 + 410.7 / D**0.28)
    runs = sweep_runs(design, log_opt, rng, h=np.array([0.04, 0.03]), rho=-0.3, beta=np.array([0.5, -0.2]),
                      delta=np.zeros(N.size), l_star=design.min_loss + 0.01 * rng.standard_normal(N.size),
                      sigma_loss=0.002)
    return validate_runs(runs)


def run_large(args, config: SamplerConfig) -> None:
    from bayes_scaling import progress
    from bayes_scaling.surface.data import surface_data
    from bayes_scaling.surface.fit import SurfaceFitter

    t0 = time.perf_counter()
    runs = large_table(args.cells, args.runs_per_cell)
    t_data = time.perf_counter() - t0
    progress.set_quiet(False)
    t0 = time.perf_counter()
    data = surface_data(runs, source="simulated")
    sa = SurfaceFitter(config).fit(data, approx="advi", progress=f"  surface ADVI ({len(runs):,} runs)")
    t_advi = time.perf_counter() - t0
    print(f"simulated {len(runs):,} runs in {data.cells.shape[0]} cells ({t_data:.0f} s); "
          f"ADVI end to end {t_advi:.0f} s (goal 300 s): {sa.method}")
    for q, (a, b, c) in LARGE_TRUTH.items():
        co = sa.as_optimum_fits()[q].coefficients().set_index("param")
        print(f"  {q}: b {co.loc['b_N', 'median']:.3f} [{co.loc['b_N', 'lo']:.3f}, {co.loc['b_N', 'hi']:.3f}] (true {b}), "
              f"c {co.loc['c_D', 'median']:.3f} [{co.loc['c_D', 'lo']:.3f}, {co.loc['c_D', 'hi']:.3f}] (true {c})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--large", action="store_true", help="time ADVI on a simulated 200k-run table instead")
    p.add_argument("--cells", type=int, default=100)
    p.add_argument("--runs-per-cell", type=int, default=2000)
    p.add_argument("--data", default="steplaw-dense", help="bundled sweep table (default steplaw-dense)")
    p.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance (default: each model's own, as in the commands)")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--slopes", choices=("pooled", "per_n"), default="pooled")
    p.add_argument("--advi", action="store_true", help="also time the approximate ADVI mode")
    args = p.parse_args()
    config = SamplerConfig(draws=args.draws, tune=args.tune, target_accept=args.target_accept)
    if args.large:
        run_large(args, config)
        return
    loaded = load_runs(args.data)
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
    steps = sf.idata["sample_stats"]["n_steps"].values
    print(f"surface NUTS ({len(loaded.runs)} runs, slopes={args.slopes}, target_accept "
          f"{SurfaceFitter(config).config.target_accept:g}, incl. compile): {t_surf:6.1f} s  "
          f"{sf.diagnostics.describe()}; {steps.mean():.0f} gradient evaluations per draw")
    print(f"ratio surface / hierarchical: {t_surf / t_hier:.1f}x   (target: surface <= 120 s)")
    for q in QUANTITIES:
        for name, fit in (("surface", sf.as_optimum_fits()[q]), ("hierarchical", hier[q])):
            co = fit.coefficients().set_index("param")
            print(f"  {q} {name:<12} " + "  ".join(f"{p} {co.loc[p, 'median']:+.3f} [{co.loc[p, 'lo']:+.3f}, "
                                                    f"{co.loc[p, 'hi']:+.3f}]" for p in ("b_N", "c_D")))
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
