"""How to run NUTS: one frozen config, the same defaults in the library and on every command line.

Light (no PyMC at import): the command lines build it from their options before any data is read.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, replace

from bayes_scaling.errors import InputError

SAMPLERS = ("nutpie", "pymc")
#: NUTS tuning steps per chain, unless a model has its own (``OptimumSpec.tune``) or one is given.
TUNE = 1000
#: The hierarchical law of the optima (its per-N slopes): half the tuning. At 500 steps every fit of
#: 20 (blog-partII and steplaw-dense, both optima, five seeds) passed every check with no divergence,
#: its prediction at (4e9, 1e11) as close to a 4 x 4000 reference as at 1000 steps (median within
#: 0.05 posterior sd, 90 % width within 5 %), in about 0.75x the time
#: (``benchmarks/bench_optimum_accept.py --models hierarchical --target-accept 0 --tune 500,1000
#: --seeds 5``). The pooled and quantized laws keep TUNE: quantized B* on blog-partII failed R-hat
#: (1.010) at 500 in one of two seeds.
PER_N_LAW_TUNE = 500
#: Exact LOO refits per model kind for the points whose Pareto k is too high for PSIS.
MAX_REFITS = 10
#: The laws of the optima: small steps through the per-N funnel of the hierarchical models and the
#: cliffs of the censored likelihood (at 0.95 the hierarchical backtest folds diverged in 4 of 7).
TARGET_ACCEPT = 0.99
#: The surface model: no funnel (its bowls are centred, each informed by a cell's runs), so larger
#: steps do. On StepLaw's 1,911 runs 0.99 took 136 gradient evaluations per draw, 0.95 took 72 with
#: no divergence and the same exponents, 0.9 took 47 with one divergence
#: (``benchmarks/bench_surface.py --target-accept``).
SURFACE_TARGET_ACCEPT = 0.95
#: The laws of the optima without a per-N hierarchy (pooled, quantized: ``OptimumSpec.target_accept``;
#: the others keep TARGET_ACCEPT). On blog-partII's and steplaw-dense's best runs, both optima, two
#: seeds each, 0.95 took 0.5-0.55x the leapfrog steps of 0.99 with no divergence, every check passed,
#: and the prediction at (4e9, 1e11) within Monte-Carlo error of a 4 x 4000 reference; 0.9 had
#: divergences (quantized B* on blog-partII), as had the hierarchical kind at 0.95
#: (``benchmarks/bench_optimum_accept.py``).
FLAT_LAW_TARGET_ACCEPT = 0.95
#: Exact leave-out refits of the laws (one chain, ``optimum.spec.REFIT_DRAWS``): a held-out cell's
#: elpd, not a posterior to judge. On blog-partII's quantized and hierarchical lr laws (10 held-out
#: cells, two runs) their elpd was 0.009-0.013 nats from a 4 x 2000-draw reference on average at 0.9
#: and 0.011-0.016 at 0.99, in under half the time (``benchmarks/bench_refits.py --cells
#: 0,3,6,9,12,15,18,21,24,27``).
REFIT_TARGET_ACCEPT = 0.9
#: The loss laws L(N, D) (``laws``), each a handful of parameters: at 0.95 the bundled fits
#: (chinchilla, kaplan, envelope on Chinchilla's points; isoflop on Porian's and Chinchilla's) take
#: 0.5-0.7x the leapfrog steps of 0.99 with no divergence and pass every check (at 0.99 isoflop on
#: Porian's R-hat was 1.012) (``benchmarks/bench_loss_laws.py --target-accept``). A law measured
#: on no bundled table (critical-batch) keeps TARGET_ACCEPT (``Law.target_accept``).
LAW_TARGET_ACCEPT = 0.95


@dataclass(frozen=True)
class SamplerConfig:
    """How to run NUTS. ``cores`` is the number of chains run in parallel; ``target_accept`` None:
    each model's own (TARGET_ACCEPT, the surface model's SURFACE_TARGET_ACCEPT, the laws' leave-out
    refits REFIT_TARGET_ACCEPT, a loss law its ``target_accept``); ``tune`` None: each model's own
    (TUNE, the hierarchical law PER_N_LAW_TUNE)."""

    sampler: str = "nutpie"
    draws: int = 1000
    tune: int | None = None
    chains: int = 4
    cores: int = 2
    seed: int = 0
    target_accept: float | None = None

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise InputError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        for name in ("draws", "tune", "chains", "cores"):
            value = getattr(self, name)
            if name == "tune" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"--{name} {value!r}: must be an integer >= 1")
        if self.target_accept is not None and not 0.5 <= self.target_accept < 1:
            raise InputError(f"--target-accept {self.target_accept}: must be in [0.5, 1)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SamplerConfig:
        """The config of a command line's sampler options (``cli.common.sampler_options``)."""
        return cls(sampler=args.sampler, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                   target_accept=args.target_accept)

    def with_target_accept(self, default: float) -> SamplerConfig:
        """This config, its target acceptance ``default`` unless one was given."""
        return self if self.target_accept is not None else replace(self, target_accept=default)

    def with_tune(self, default: int) -> SamplerConfig:
        """This config, its tuning steps ``default`` unless a number was given."""
        return self if self.tune is not None else replace(self, tune=default)

    def capped(self, **limits: int) -> SamplerConfig:
        """This config with each named setting at most its limit (an unset ``tune``: the limit)."""
        return replace(self, **{name: limit if getattr(self, name) is None else min(getattr(self, name), limit)
                                for name, limit in limits.items()})

    def as_dict(self) -> dict:
        """The settings (manifests, resume stamps, cache keys); an unset target acceptance or number
        of tuning steps as the values each model then uses."""
        d = asdict(self)
        d["exact"] = {"pooled law of the optima": "independent exact draws (conjugate given σ) unless --prior "
                                                  "gives a, b or c a non-Normal prior"}
        if self.tune is None:
            d["tune"] = {"default": TUNE, "hierarchical law of the optima": PER_N_LAW_TUNE}
        if self.target_accept is None:
            d["target_accept"] = {"laws of the optima": TARGET_ACCEPT,
                                  "pooled and quantized laws of the optima": FLAT_LAW_TARGET_ACCEPT,
                                  "surface": SURFACE_TARGET_ACCEPT,
                                  "leave-out refits of the laws": REFIT_TARGET_ACCEPT,
                                  "loss laws": LAW_TARGET_ACCEPT, "critical-batch law": TARGET_ACCEPT}
        return d

    def describe(self) -> str:
        accept = f"{self.target_accept:g}" if self.target_accept is not None else "each model's own"
        return f"NUTS ({self.sampler}, {self.chains}x{self.draws} draws, target_accept {accept})"
