"""How fast the command lines answer --help and a bad option, as a ratio to ``python -c pass``.

    python benchmarks/bench_startup.py [--repeats 5]

Each command is started afresh ``--repeats`` times; the best wall time is reported (start-up
noise only ever adds time) beside the interpreter's own start-up timed the same way, and
beside ``import pymc, arviz`` (what the commands used to load before looking at their options).
Goal: --help and input errors under 1 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CASES = {
    "python -c pass (floor)": ["-c", "pass"],
    "fit --help": ["-m", "bayes_scaling.fit", "--help"],
    "plan --help": ["-m", "bayes_scaling.plan", "--help"],
    "backtest --help": ["-m", "bayes_scaling.backtest", "--help"],
    "fit --target 4e9 (bad option)": ["-m", "bayes_scaling.fit", "--target", "4e9"],
    "fit --data missing.csv (bad input)": ["-m", "bayes_scaling.fit", "--data", "missing.csv"],
    "import pymc, arviz (for scale)": ["-c", "import pymc, arviz"],
}


def best_of(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    times = {name: best_of(cmd, args.repeats) for name, cmd in CASES.items()}
    floor = times["python -c pass (floor)"]
    print(f"{'command':<40}{'best s':>8}{'x floor':>9}")
    for name, sec in times.items():
        goal = "   goal < 1 s" if "--" in name or "bad" in name else ""
        print(f"{name:<40}{sec:>8.2f}{sec / floor:>9.1f}{goal}")


if __name__ == "__main__":
    main()
