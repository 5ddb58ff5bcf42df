"""Wall time and convergence of each loss law at the CLI's default sampler settings.

    .venv/bin/python benchmarks/bench_loss_laws.py [--draws 1000 --tune 1000 --chains 4]
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
    args = ap.parse_args()
    config = SamplerConfig(draws=args.draws, tune=args.tune, chains=args.chains)
    print(f"{'law':<12}{'data':<12}{'rows':>6}{'wall s':>9}  diagnostics")
    for law_name, data in (("chinchilla", "chinchilla"), ("isoflop", "porian"), ("isoflop", "chinchilla"),
                           ("envelope", "chinchilla"), ("kaplan", "chinchilla")):
        law, _, _ = registry()[law_name].from_data(data)
        fit = fit_law(law, config)
        print(f"{law_name:<12}{data:<12}{len(law.table):>6}{fit.wall_s:>9.1f}  {fit.diagnostics.describe()}")


if __name__ == "__main__":
    main()
