"""Fault injection: kill -9 a sweep at random moments, resume it, and count what was lost.

    PYTHONPATH=. python benchmarks/faults.py [--trials 20] [--seed 0] [--work DIR]

Each trial starts from a copy of a prepared tiny plan (8 runs of about a quarter second)
and sends SIGKILL, at a random moment, to one of (the modes take turns):

    group    the whole process group of ``run --workers 2`` (supervisor and both workers)
    worker   one worker process of ``run --workers 2`` (its supervisor lives on)
    drainer  one of two ``worker`` processes draining the plan together
    collect  ``collect`` of a finished plan (to .csv or .parquet in turn); every other
             collect trial is killed the moment its temp file appears (mid-write)

The random moment of a training mode: wait until k of the 8 runs are finished (k uniform
in 0..7), then a further uniform 0-1.5 s (so some kills land while workers start up).
Then it resumes -- ``run --workers 2`` for the training modes, ``collect`` again -- collects
the table, and counts

    lost     planned runs without a readable result.json at the end
    twice    runs with two ``done:*`` lines in events.log (trained to completion twice)
    missing  planned runs absent from the collected table
    stale    temp files (``*.tmp``), lock tombstones and lock files left in the plan and output

The goal is 0 / 0 / 0 / 0. Process start-up (importing torch) dominates each trial.
Measured with ``PYTHONPATH=. python benchmarks/faults.py`` (20 trials, seed 0) on this
project's 2 shared CPU cores at load average 6-9 from other jobs: 603 s of wall time
(5.0 CPU-minutes), 20 of 20 kills landed (two collect kills mid-write, leaving a temp
file), lost 0, trained twice 0, rows missing 0, stale files 0, every resume exit code 0.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.artifacts import read_result  # noqa: E402

SPEC = """\
[data]
synthetic_docs = 300
tokenizer = "bpe:300"
seq_len = 16
val_tokens = 256

[model]
shapes = [[1, 2, 16], [1, 2, 32]]

[grid]
tokens = [8192]
batch_tokens = [128, 256]
lr = "2^-7:2^-5:2"
seeds = [0]

[runtime]
threads = 1
"""
MODES = ("group", "worker", "drainer", "collect")
ENV = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def sweep(*args: str, **kw) -> subprocess.Popen:
    """``python -m training.sweep ARGS`` as its own process group, output discarded."""
    return subprocess.Popen([sys.executable, "-m", "training.sweep", *args], env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def finish(*args: str) -> int:
    """Run ``python -m training.sweep ARGS`` to the end; its exit code."""
    return sweep(*args).wait()


def run_ids(plan_dir: Path) -> list[str]:
    import json

    return [r["run_id"] for r in json.loads((plan_dir / "plan.json").read_text())["runs"]]


def n_finished(plan_dir: Path) -> int:
    return sum(read_result(plan_dir / "runs" / rid / "result.json")[0] is not None for rid in run_ids(plan_dir))


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def is_worker(pid: int) -> bool:
    """Whether ``pid`` is a spawned worker (not multiprocessing's resource tracker)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_for_moment(plan_dir: Path, procs: list[subprocess.Popen], rng: random.Random) -> tuple[int, float]:
    """Wait until k runs are finished (k uniform in 0..n-1), then 0-1.5 s more; returns (k, extra)."""
    k, extra = rng.randrange(len(run_ids(plan_dir))), rng.uniform(0, 1.5)
    while n_finished(plan_dir) < k and any(p.poll() is None for p in procs):
        time.sleep(0.02)
    time.sleep(extra)
    return k, extra


def kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def trial_training(mode: str, plan_dir: Path, rng: random.Random) -> dict:
    if mode == "drainer":
        procs = [sweep("worker", str(plan_dir)) for _ in range(2)]
    else:
        procs = [sweep("run", str(plan_dir), "--workers", "2")]
    t0 = time.perf_counter()
    k, extra = wait_for_moment(plan_dir, procs, rng)
    at = time.perf_counter() - t0
    if mode == "group":
        killed = procs[0].poll() is None and _killpg(procs[0].pid)
        what = "run's process group"
    elif mode == "worker":
        workers = [c for c in children(procs[0].pid) if is_worker(c)]
        victim = rng.choice(workers) if workers else None
        killed = victim is not None and kill(victim)
        what = f"worker pid {victim}" if victim else "no live worker"
    else:
        victim = rng.choice(procs)
        killed = victim.poll() is None and kill(victim.pid)
        what = f"worker command pid {victim.pid}"
    first_rc = [p.wait() for p in procs]
    done_before = n_finished(plan_dir)
    resume_rc = finish("run", str(plan_dir), "--workers", "2")
    out = plan_dir.parent / "runs.csv"
    collect_rc = finish("collect", str(plan_dir), "--out", str(out))
    return dict(at=at, killed=killed, what=what, note=f"k={k} +{extra:.2f}s, rc {first_rc}, {done_before} done before resume",
                resume_rc=resume_rc, collect_rc=collect_rc, out=out)


def _killpg(pid: int) -> bool:
    try:
        os.killpg(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def trial_collect(plan_dir: Path, rng: random.Random, index: int, duration: float) -> dict:
    out_dir = plan_dir.parent / "out"
    out_dir.mkdir()
    out = out_dir / ("runs.csv" if index % 2 == 0 else "runs.parquet")
    proc = sweep("collect", str(plan_dir), "--out", str(out))
    t0 = time.perf_counter()
    mid_write = index % 4 in (1, 2)  # every other collect trial: at the temp file
    if mid_write:
        prefix = f".{out.name}."
        while proc.poll() is None and not any(n.startswith(prefix) for n in os.listdir(out_dir)):
            pass  # busy-wait: the temp file lives a few milliseconds
    else:
        time.sleep(rng.uniform(0, duration))
    at = time.perf_counter() - t0
    killed = proc.poll() is None and kill(proc.pid)
    proc.wait()
    temp_left = any(n.endswith(".tmp") for n in os.listdir(out_dir))
    collect_rc = finish("collect", str(plan_dir), "--out", str(out))
    return dict(at=at, killed=killed, what="collect" + (" at its temp file" if mid_write else ""),
                note=f"temp left by the kill: {'yes' if temp_left else 'no'}", resume_rc=0, collect_rc=collect_rc, out=out)


def check(plan_dir: Path, out: Path) -> dict[str, int]:
    ids = run_ids(plan_dir)
    lost = sum(read_result(plan_dir / "runs" / rid / "result.json")[0] is None for rid in ids)
    log = (plan_dir / "events.log").read_text().splitlines() if (plan_dir / "events.log").exists() else []
    done = Counter(line.split()[2] for line in log if line.split()[1].startswith("done"))
    twice = sum(1 for n in done.values() if n > 1)
    if out.exists():
        import pandas as pd

        table = pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out)
        missing = len(set(ids) - set(table["run_id"]))
    else:
        missing = len(ids)
    leftovers = [p for root in (plan_dir, out.parent) for p in root.rglob("*")
                 if p.name.endswith(".tmp") or ".stale-" in p.name or p.suffix == ".lock"]
    return dict(lost=lost, twice=twice, missing=missing, stale=len(leftovers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, help="scratch directory (default: a temporary one, removed at the end)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="faults-", dir=args.work))
    try:
        t_start = time.perf_counter()
        (work / "spec.toml").write_text(SPEC)
        template = work / "template"
        assert finish("plan", str(work / "spec.toml"), "--out", str(template)) == 0
        finished = work / "finished"
        shutil.copytree(template, finished)
        assert finish("run", str(finished), "--workers", "2") == 0
        t0 = time.perf_counter()
        assert finish("collect", str(finished), "--out", str(work / "calibration.csv")) == 0
        collect_s = time.perf_counter() - t0
        print(f"setup: plan + a full sweep + collect ({collect_s:.1f} s) in {time.perf_counter() - t_start:.0f} s")
        print(f"{'trial':>5} {'mode':<8} {'kill at':>7}  {'killed':<32} {'lost':>4} {'twice':>5} {'missing':>7} "
              f"{'stale':>5} {'rc':>5}  note")
        totals = Counter()
        for i in range(args.trials):
            mode = MODES[i % len(MODES)]
            trial_dir = work / f"trial{i:02d}"
            trial_dir.mkdir()
            plan_dir = trial_dir / "plan"
            if mode == "collect":
                shutil.copytree(finished, plan_dir)
                r = trial_collect(plan_dir, rng, i // len(MODES), collect_s)
            else:
                shutil.copytree(template, plan_dir)
                r = trial_training(mode, plan_dir, rng)
            c = check(plan_dir, r["out"])
            totals.update(c)
            totals["kills"] += bool(r["killed"])
            rc = f"{r['resume_rc']}/{r['collect_rc']}"
            totals["bad_rc"] += rc != "0/0"
            what = r["what"] if r["killed"] else f"(missed: {r['what']} had ended)"
            print(f"{i:>5} {mode:<8} {r['at']:>6.2f}s  {what:<32} {c['lost']:>4} {c['twice']:>5} {c['missing']:>7} "
                  f"{c['stale']:>5} {rc:>5}  {r['note']}", flush=True)
            shutil.rmtree(trial_dir)
        print(f"totals over {args.trials} trials ({totals['kills']} kills landed): lost {totals['lost']}, "
              f"trained twice {totals['twice']}, rows missing {totals['missing']}, stale files {totals['stale']}, "
              f"non-zero resume/collect exit codes {totals['bad_rc']}  (goal 0 / 0 / 0 / 0)")
        print(f"wall time {time.perf_counter() - t_start:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
