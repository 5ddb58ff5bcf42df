"""nutpie compile time against the number of shared data arrays (why the models pack their data).

    python benchmarks/bench_compile.py [--arrays 8] [--repeats 2]

The same linear-Gaussian model of 30 observations is compiled with its 8 data rows given
either as 8 separate ``pm.Data`` arrays or as one packed ``pm.Data`` table, alternately in
one process (after one warm-up compile, which pays numba's start-up), and the seconds of
``nutpie.compile_pymc_model`` are printed with their ratio. The data differ per compile,
as they do between fits.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import nutpie
import pymc as pm


def build(packed: bool, n_arrays: int, seed: int) -> pm.Model:
    X = np.random.default_rng(seed).normal(size=(n_arrays, 30))
    with pm.Model() as model:
        if packed:
            table = pm.Data("table", X)
            rows = [table[i] for i in range(n_arrays)]
        else:
            rows = [pm.Data(f"row{i}", X[i]) for i in range(n_arrays)]
        a, b, c = pm.Normal("a"), pm.Normal("b"), pm.Normal("c")
        sigma = pm.Gamma("sigma", 2.0, 10.0)
        mu = a + b * rows[0] + c * rows[1] + sum(0.01 * r for r in rows[3:])
        pm.Normal("obs", mu, sigma, observed=rows[2])
    return model


def compile_seconds(model: pm.Model) -> float:
    t0 = time.perf_counter()
    nutpie.compile_pymc_model(model)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arrays", type=int, default=8, help="data rows of the model (>= 3)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    compile_seconds(build(True, args.arrays, seed=0))   # warm-up: numba's one-off start-up
    times = {True: [], False: []}
    for r in range(args.repeats):
        for packed in (True, False):
            times[packed].append(compile_seconds(build(packed, args.arrays, seed=1 + 2 * r + packed)))
    sep, one = np.median(times[False]), np.median(times[True])
    print(f"{args.arrays} separate pm.Data arrays: {sep:5.2f} s   one packed table: {one:5.2f} s   ratio {sep / one:.1f}x "
          f"(median of {args.repeats})")


if __name__ == "__main__":
    main()
