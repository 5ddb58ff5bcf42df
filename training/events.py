"""events.log: one line per run start, finish or failure, ``time event run_id host pid`` (an audit trail).

Workers append with one ``O_APPEND`` write per line, so lines from several processes never
interleave. The supervisor of ``run --workers K`` reads it to tell which run a dead worker was
training: its lock may already be gone, broken by a live worker that found it stale first.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

EVENTS_FILE = "events.log"


def log_event(plan_dir: str | Path, event: str, run_id: str) -> None:
    """Append ``time event run_id host pid`` to events.log in one write."""
    line = f"{time.time():.3f} {event} {run_id} {socket.gethostname()} {os.getpid()}\n".encode()
    fd = os.open(Path(plan_dir) / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def open_run(plan_dir: str | Path, host: str, pid: int) -> str | None:
    """The run process ``pid`` of ``host`` last started and did not log an end for; None if there is none."""
    try:
        lines = (Path(plan_dir) / EVENTS_FILE).read_text().splitlines()
    except OSError:
        return None
    current = None
    for line in lines:
        fields = line.split()
        if len(fields) != 5 or fields[3] != host or fields[4] != str(pid):
            continue
        current = fields[2] if fields[1] == "start" else None
    return current
