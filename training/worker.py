"""Drain a plan: claim a pending run, train it, write its result, release it, repeat.

A run is *finished* once ``runs/<id>/result.json`` exists (the trainer writes it last,
atomically), so a worker killed at any moment leaves either a finished run or none:
the run's lock goes stale and the next worker trains it again from the start. Any
number of workers -- a local process pool, Slurm jobs, ``worker`` commands on other
machines -- can drain one plan at the same time; the locks (``claims``) keep any two
from training the same run. A run that raises is recorded in ``runs/<id>/error.json``
and retried by the next ``run``/``worker`` invocation (not by this one).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import traceback
from pathlib import Path

from bayes_scaling.io import write_json
from training.claims import DEFAULT_STALE_AFTER_S, clear_if_stale, heartbeat, release, try_claim
from training.data import TokenData
from training.plan import PlannedRun, read_plan
from training.trainer import train

EVENTS_FILE = "events.log"


def run_dir(plan_dir: str | Path, run_id: str) -> Path:
    return Path(plan_dir) / "runs" / run_id


def is_finished(plan_dir: str | Path, run_id: str) -> bool:
    return (run_dir(plan_dir, run_id) / "result.json").exists()


def log_event(plan_dir: str | Path, event: str, run_id: str) -> None:
    """Append ``time event run_id host pid`` to events.log in one write (O_APPEND: lines never interleave)."""
    line = f"{time.time():.3f} {event} {run_id} {socket.gethostname()} {os.getpid()}\n".encode()
    fd = os.open(Path(plan_dir) / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def drain(plan_dir: str | Path, *, runtime_overrides: dict | None = None, stale_after: float = DEFAULT_STALE_AFTER_S,
          max_runs: int | None = None) -> dict[str, int]:
    """Train pending runs of the plan until none is left to claim; returns counts of what this worker did.

    ``runtime_overrides`` replace [runtime] keys of the plan (e.g. device, threads).
    """
    plan_dir = Path(plan_dir)
    plan = read_plan(plan_dir)
    runtime = dataclasses.replace(plan.runtime, **(runtime_overrides or {}))
    data = TokenData(plan_dir / "data")
    counts = {"finished": 0, "failed": 0}
    for run in plan.runs:
        if max_runs is not None and counts["finished"] + counts["failed"] >= max_runs:
            break
        lock = plan_dir / "locks" / f"{run.run_id}.lock"
        if is_finished(plan_dir, run.run_id):
            clear_if_stale(lock, stale_after)  # a worker killed between its result and its release
            continue
        claim = try_claim(lock, stale_after)
        if claim is None:
            continue
        try:
            if is_finished(plan_dir, run.run_id):  # finished between our check and our claim
                continue
            counts["finished" if _train_one(plan_dir, run, data, runtime, claim) else "failed"] += 1
        finally:
            release(claim)
    return counts


def _train_one(plan_dir: Path, run: PlannedRun, data: TokenData, runtime, claim) -> bool:
    out = run_dir(plan_dir, run.run_id)
    out.mkdir(parents=True, exist_ok=True)
    log_event(plan_dir, "start", run.run_id)
    try:
        with heartbeat(claim):
            result = train(run.config, data, out, runtime=runtime, run_id=run.run_id)
    except Exception as err:  # a crashing run must not stop the sweep; it is recorded and retried later
        write_json(out / "error.json", {"run_id": run.run_id, "error": f"{type(err).__name__}: {err}",
                                        "traceback": traceback.format_exc(), "host": socket.gethostname()})
        log_event(plan_dir, "failed", run.run_id)
        return False
    (out / "error.json").unlink(missing_ok=True)
    log_event(plan_dir, f"done:{result['status']}", run.run_id)
    return True
