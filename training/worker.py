"""Drain a plan: claim a pending run, train it, write its result, release it, repeat.

A run's state is read off the plan directory alone (``run_state``), first match wins:

    finished    runs/<id>/result.json reads back as a result (``artifacts.read_result``)
    running     locks/<id>.lock is held by a live owner (``claims.is_stale`` is false)
    failed      runs/<id>/error.json exists: the run raised, or one of its writes failed
    unreadable  runs/<id>/result.json exists but is truncated, empty, ``{}`` or partial
    pending     anything else (never started, or its worker died: its lock is stale)

A worker trains pending and unreadable runs (an unreadable result is overwritten) and never
a failed one unless asked: ``retry_before = t`` retrains the failed runs whose error.json was
written before t (the start of a ``--retry-failed`` command), so any number of workers retry
each failed run once per command; a retry that succeeds removes the error.json.

A worker killed at any moment leaves either a finished run or none: the trainer writes
result.json last, atomically, and the killed run's lock goes stale, so the next worker
that reaches it trains it again from the start (first removing the temp files the killed
writer left in ``runs/<id>/``). Any number of workers -- local processes, Slurm jobs,
``worker`` commands on other machines -- can drain one plan at the same time; the locks
(``claims``) keep any two from training the same run. ``drain`` walks the plan again after
every pass that claimed a run, so a run whose worker died meanwhile is picked up, and stops
after a pass that claims nothing; it attempts each run at most once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path

from bayes_scaling.io import write_json
from training.artifacts import read_result, remove_stale_temps
from training.claims import DEFAULT_STALE_AFTER_S, Claim, clear_if_stale, heartbeat, is_stale, release, try_claim
from training.data import TokenData
from training.events import log_event
from training.plan import PlannedRun, read_plan
from training.trainer import Runtime, train

#: The states of ``run_state``, in report order.
STATES = ("finished", "running", "failed", "unreadable", "pending")
ERROR_FILE = "error.json"
RESULT_FILE = "result.json"


def run_dir(plan_dir: str | Path, run_id: str) -> Path:
    """``DIR/runs/<id>``: where a run's result.json, curve.csv and error.json live."""
    return Path(plan_dir) / "runs" / run_id


def lock_path(plan_dir: str | Path, run_id: str) -> Path:
    """``DIR/locks/<id>.lock``: held while a worker trains the run."""
    return Path(plan_dir) / "locks" / f"{run_id}.lock"


def is_finished(plan_dir: str | Path, run_id: str) -> bool:
    """Whether the run's result.json reads back as a result (a truncated or ``{}`` one does not)."""
    return read_result(run_dir(plan_dir, run_id) / RESULT_FILE)[0] is not None


def stays_failed(plan_dir: str | Path, run_id: str, retry_before: float | None = None) -> bool:
    """Whether a worker leaves the run alone as failed: its error.json exists and was written at or after
    ``retry_before`` (None: whenever)."""
    try:
        written = (run_dir(plan_dir, run_id) / ERROR_FILE).stat().st_mtime
    except FileNotFoundError:
        return False
    return retry_before is None or written >= retry_before


def run_state(plan_dir: str | Path, run_id: str, stale_after: float = DEFAULT_STALE_AFTER_S) -> tuple[str, str]:
    """``(state, detail)``: state as in the module docstring; detail is the error text of a failed run,
    why the result of an unreadable one does not read, else ""."""
    result, why = read_result(run_dir(plan_dir, run_id) / RESULT_FILE)
    if result is not None:
        return "finished", ""
    lock = lock_path(plan_dir, run_id)
    if lock.exists() and not is_stale(lock, stale_after):
        return "running", ""
    error = run_dir(plan_dir, run_id) / ERROR_FILE
    if error.exists():
        return "failed", _error_text(error)
    if why != "missing":
        return "unreadable", why
    return "pending", ""


def _error_text(path: Path) -> str:
    """The "error" line of an error.json (or why it cannot be read)."""
    try:
        return str(json.loads(path.read_text()).get("error", "?"))
    except (OSError, ValueError, AttributeError):
        return "error.json unreadable"


def drain(plan_dir: str | Path, *, runtime_overrides: dict | None = None, stale_after: float = DEFAULT_STALE_AFTER_S,
          max_runs: int | None = None, retry_before: float | None = None) -> dict[str, int]:
    """Train the plan's claimable runs until a pass over the plan claims none; returns what this worker did:
    ``finished`` and ``failed`` runs, and ``not_retried``: failed runs it left alone (see ``stays_failed``).

    ``runtime_overrides`` replace [runtime] keys of the plan (e.g. device, threads).
    """
    plan_dir = Path(plan_dir)
    plan = read_plan(plan_dir)
    runtime = dataclasses.replace(plan.runtime, **(runtime_overrides or {}))
    data = TokenData(plan_dir / "data")
    counts = {"finished": 0, "failed": 0}
    attempted: set[str] = set()
    not_retried: set[str] = set()
    claimed = True
    while claimed:
        claimed = False
        for run in plan.runs:
            if max_runs is not None and len(attempted) >= max_runs:
                break
            if run.run_id in attempted:
                continue
            lock = lock_path(plan_dir, run.run_id)
            finished = is_finished(plan_dir, run.run_id)
            if finished or stays_failed(plan_dir, run.run_id, retry_before):
                if not finished:
                    not_retried.add(run.run_id)
                clear_if_stale(lock, stale_after)  # a worker killed between its result and its release
                continue
            claim = try_claim(lock, stale_after)
            if claim is None:
                continue
            try:
                # finished or failed between our check and our claim
                if is_finished(plan_dir, run.run_id) or stays_failed(plan_dir, run.run_id, retry_before):
                    continue
                claimed = True
                attempted.add(run.run_id)
                counts["finished" if _train_one(plan_dir, run, data, runtime, claim) else "failed"] += 1
            finally:
                release(claim)
    return counts | {"not_retried": len(not_retried - attempted)}


def _train_one(plan_dir: Path, run: PlannedRun, data: TokenData, runtime: Runtime, claim: Claim) -> bool:
    """Train one claimed run; False (and error.json) if it raised, a write failed or an output did not read back."""
    out = run_dir(plan_dir, run.run_id)
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)  # left by a worker killed mid-write; we hold the lock, so none is live
        log_event(plan_dir, "start", run.run_id)
        with heartbeat(claim):
            result = train(run.config, data, out, runtime=runtime, run_id=run.run_id)
    except Exception as err:  # a crashing run must not stop the sweep; it is recorded, retried on request
        _record_failure(plan_dir, run, err)
        return False
    (out / ERROR_FILE).unlink(missing_ok=True)
    try:
        log_event(plan_dir, f"done:{result['status']}", run.run_id)
    except OSError as err:
        print(f"warning: run {run.run_id} finished but events.log could not be written ({err})", file=sys.stderr)
    return True


def _record_failure(plan_dir: Path, run: PlannedRun, err: Exception) -> None:
    """Write error.json and the "failed" event; one stderr line either way."""
    path = run_dir(plan_dir, run.run_id) / ERROR_FILE
    text = f"{type(err).__name__}: {err}"
    try:
        write_json(path, {"run_id": run.run_id, "error": text, "traceback": traceback.format_exc(),
                          "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})
        log_event(plan_dir, "failed", run.run_id)
    except OSError as again:
        print(f"warning: run {run.run_id} failed ({text}) and the failure could not be recorded ({again}); "
              "it stays pending", file=sys.stderr)
        return
    print(f"run {run.run_id} failed: {text} (see {path})", file=sys.stderr)
