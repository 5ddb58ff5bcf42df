"""What the laws of the optima lose and gain at a lower NUTS target acceptance, or fewer tuning steps.

    python benchmarks/bench_optimum_accept.py [--data blog-partII] [--models quantized,hierarchical]
        [--target-accept 0.8,0.9,0.95,0.99] [--tune 1000] [--seeds 2]

For each kind and optimum: a reference posterior (4 × 4000 draws at 0.99), then 4 × 1000 draws (the
CLI's) at each target acceptance (0: the kind's own), number of tuning steps and seed. Per row: wall
seconds (the compile is paid once before, unmeasured), mean leapfrog steps per draw, divergences,
the diagnostics' verdict, and the prediction at the extrapolation target (N, D) = (4e9, 1e11)
against the reference's: the shift of the median of log q* in units of the reference's posterior
sd, and the ratio of the 90 % interval's width (log scale). Monte Carlo error alone moves the median
by about 0.02–0.05 sd and the width by a few per cent at 4 × 1000 draws.
"""

from __future__ import annotations

import argparse

import numpy as np

from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.optimum.fit import Fitter

TARGET = (4e9, 1e11)
REFERENCE = SamplerConfig(draws=4000, tune=1000, target_accept=0.99)


def summary(fit) -> tuple[float, float, float]:
    """Median, 90 % width and sd of log q* at TARGET (the law's mean plus the cells' scatter)."""
    draws = fit.log_draws([TARGET[0]], [TARGET[1]])[:, 0]
    lo, med, hi = np.quantile(draws, [0.05, 0.5, 0.95])
    return float(med), float(hi - lo), float(draws.std())


def row(kind: str, q: str, accept: str, tune: int, seed: str, fit, against: str) -> str:
    """One printed row: the fit's settings, cost and checks; ``against``: its comparison with the reference."""
    stats = fit.idata["sample_stats"]
    return (f"{kind:<14}{q:<12}{accept:>7}{tune:>6}{seed:>5}{fit.wall_s:>8.1f}"
            f"{float(stats['n_steps'].mean()):>7.1f}{int(stats['diverging'].sum()):>5}{against:>24}  "
            f"{fit.diagnostics.describe()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="blog-partII")
    ap.add_argument("--models", default="quantized,hierarchical",
                    help="NUTS-sampled kinds (pooled's draws are exact: math/conjugate.py)")
    ap.add_argument("--target-accept", default="0.8,0.9,0.95,0.99")
    ap.add_argument("--tune", default="1000", help="comma-separated numbers of tuning steps")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    best = load_runs(args.data).best()
    accepts = [float(a) or None for a in args.target_accept.split(",")]
    tunes = [int(t) for t in args.tune.split(",")]
    print(f"{'kind':<14}{'optimum':<12}{'accept':>7}{'tune':>6}{'seed':>5}{'wall s':>8}{'steps':>7}{'div':>5}"
          f"{'Δmedian/sd':>12}{'width ratio':>12}  diagnostics")
    for kind in args.models.split(","):
        for q in ("lr", "batch_size"):
            data = best.quantity(q)
            fitter = Fitter(SamplerConfig(draws=10, tune=10, chains=1))
            fitter.fit(kind, data)                               # the compile, unmeasured; later fits swap data
            fitter.config = REFERENCE
            ref = fitter.fit(kind, data)
            ref_med, ref_width, ref_sd = summary(ref)
            print(row(kind, q, "ref", REFERENCE.tune, "", ref, ""), flush=True)
            for accept in accepts:
                for tune in tunes:
                    for seed in range(args.seeds):
                        fitter.config = SamplerConfig(target_accept=accept, tune=tune, seed=seed + 1)
                        fit = fitter.fit(kind, data)
                        med, width, _ = summary(fit)
                        against = f"{(med - ref_med) / ref_sd:>12.3f}{width / ref_width:>12.3f}"
                        print(row(kind, q, f"{accept:g}" if accept else "own", tune, str(seed + 1), fit, against),
                              flush=True)


if __name__ == "__main__":
    main()
