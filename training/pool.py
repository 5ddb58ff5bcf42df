"""``run --workers K`` on one machine: K spawned worker processes under a supervisor.

Each worker is a ``multiprocessing`` spawn-context Process running ``worker.drain``. The
supervisor waits on their sentinels. A worker that ends with a non-zero exit code or by a
signal has *died*: the supervisor reports it, breaks the lock of the run it held (its owner
is a dead pid on this host, so ``claims.is_stale`` already calls it stale, and a live worker
may break it first; events.log then names the run) so that run is pending again -- *requeued* -- and starts a replacement worker while claimable runs remain,
at most ``max_restarts`` times in all, so a worker that dies at every start cannot loop.
The other workers go on. Workers start with SIGINT ignored, so a Ctrl-C reaches the
supervisor alone: it terminates them, breaks their locks (the interrupted runs are pending
again; finished runs stay finished) and re-raises KeyboardInterrupt.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

from bayes_scaling.errors import InputError
from training.claims import DEFAULT_STALE_AFTER_S, clear_if_stale, read_owner
from training.events import open_run

#: Seconds between two looks at the workers (and two progress-bar updates).
POLL_S = 0.5


@dataclass(frozen=True)
class Death:
    """A worker that ended badly: its pid, exit code (-k: killed by signal k) and the run it held."""

    pid: int
    exitcode: int
    run_id: str | None

    @property
    def cause(self) -> str:
        return f"signal {-self.exitcode}" if self.exitcode < 0 else f"exit {self.exitcode}"


@dataclass
class PoolReport:
    """What happened to the workers of one ``run_pool``."""

    deaths: list[Death] = field(default_factory=list)
    restarts: int = 0
    gave_up: bool = False  # a worker died with runs left and ``max_restarts`` spent

    def summary(self) -> str:
        """One line, e.g. ``1 worker died (signal 9); its run was requeued (ab12cd34ef56); 1 replacement started``;
        "" when no worker died."""
        n = len(self.deaths)
        if not n:
            return ""
        causes = ", ".join(dict.fromkeys(d.cause for d in self.deaths))
        held = [d.run_id for d in self.deaths if d.run_id]
        if not held:
            runs = "it held no run" if n == 1 else "they held no run"
        elif n == 1:
            runs = f"its run was requeued ({held[0]})"
        else:
            runs = f"their {len(held)} run(s) were requeued ({', '.join(held)})"
        line = f"{n} worker{'s' if n > 1 else ''} died ({causes}); {runs}; "
        line += f"{self.restarts} replacement{'s' if self.restarts != 1 else ''} started"
        return line + ("; --max-restarts reached" if self.gave_up else "")


def _worker_main(plan_dir: str, kwargs: dict) -> None:
    """A worker process: drain the plan; bad input is one ``error:`` line and exit code 2."""
    from training.worker import drain

    try:
        drain(plan_dir, **kwargs)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


def run_pool(plan_dir: Path, workers: int, drain_kwargs: dict, *, max_restarts: int,
             runs_left: Callable[[], bool], tick: Callable[[], None] = lambda: None,
             say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> PoolReport:
    """Run ``workers`` worker processes on ``plan_dir`` until all have ended; replace the dead (see module docstring).

    ``runs_left()`` tells whether claimable runs remain (a replacement is started only then), ``tick()``
    runs every ``POLL_S`` seconds (a progress bar), ``say`` prints a line.
    """
    context = multiprocessing.get_context("spawn")
    report = PoolReport()

    def start() -> multiprocessing.process.BaseProcess:
        proc = context.Process(target=_worker_main, args=(str(plan_dir), drain_kwargs), name="training-worker")
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through exec: workers ignore Ctrl-C
        try:
            proc.start()
        finally:
            signal.signal(signal.SIGINT, previous)
        return proc

    live: list[multiprocessing.process.BaseProcess] = []
    try:
        for _ in range(workers):
            live.append(start())
        while live:
            ended = wait([p.sentinel for p in live], timeout=POLL_S)
            tick()
            for proc in [p for p in live if p.sentinel in ended]:
                proc.join()
                live.remove(proc)
                if proc.exitcode == 0:
                    continue
                stale_after = drain_kwargs.get("stale_after", DEFAULT_STALE_AFTER_S)
                death = Death(proc.pid, proc.exitcode, _requeue(plan_dir, proc.pid, stale_after))
                report.deaths.append(death)
                held = f" while training run {death.run_id}; the run is requeued" if death.run_id else " holding no run"
                say(f"worker pid {death.pid} died ({death.cause}){held}")
                if not runs_left():
                    continue
                if report.restarts >= max_restarts:
                    report.gave_up = True
                    say(f"not replacing it: --max-restarts {max_restarts} reached")
                    continue
                report.restarts += 1
                live.append(start())
    except BaseException:  # Ctrl-C (or a bug here): no worker may outlive its supervisor
        for proc in live:
            proc.terminate()
        for proc in live:
            proc.join()
            _requeue(plan_dir, proc.pid, drain_kwargs.get("stale_after", DEFAULT_STALE_AFTER_S))
        raise
    return report


def _requeue(plan_dir: Path, pid: int, stale_after: float) -> str | None:
    """Break the lock a dead worker ``pid`` of this host held; the id of the run it was training, None if none.

    A live worker may have found that lock stale and taken the run before we look, so the run is
    read from events.log when no lock of ``pid`` is left.
    """
    host = socket.gethostname()
    for lock in sorted((plan_dir / "locks").glob("*.lock")):
        owner = read_owner(lock)
        if owner is not None and owner.get("host") == host and owner.get("pid") == pid:
            clear_if_stale(lock, stale_after)
            return lock.stem
    return open_run(plan_dir, host, pid)
