"""Wall time and convergence of each loss law at the CLI's default sampler settings.

    .venv/bin/python benchmarks/bench_loss_laws.py [--draws 1000 --tune 1000 --chains 4] [--target-accept 0.9,0.99]

``--target-accept``: each law at each of these target acceptances (default: the laws' own), with its
mean leapfrog steps per draw. Each law is fitted once unmeasured first, so that no row pays a compile.
"""

from __future__ import annotations

import argparse

from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.laws.base import fit_law, registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--target-accept", default=None, help="comma-separated target acceptances")
    args = ap.parse_args()
    accepts = [float(a) for a in args.target_accept.split(",")] if args.target_accept else [None]
    print(f"{'law':<12}{'data':<12}{'rows':>6}{'accept':>8}{'wall s':>9}{'steps':>7}  diagnostics")
    for law_name, data in (("chinchilla", "chinchilla"), ("isoflop", "porian"), ("isoflop", "chinchilla"),
                           ("envelope", "chinchilla"), ("kaplan", "chinchilla")):
        law, _, _ = registry()[law_name].from_data(data)
        fit_law(law, SamplerConfig(draws=10, tune=10, chains=1))          # the compile, unmeasured
        for accept in accepts:
            config = SamplerConfig(draws=args.draws, tune=args.tune, chains=args.chains, target_accept=accept)
            fit = fit_law(law, config)
            steps = float(fit.idata["sample_stats"]["n_steps"].mean())
            shown = f"{accept:g}" if accept is not None else "own"
            print(f"{law_name:<12}{data:<12}{len(law.table):>6}{shown:>8}{fit.wall_s:>9.1f}{steps:>7.1f}  "
                  f"{fit.diagnostics.describe()}", flush=True)


if __name__ == "__main__":
    main()
