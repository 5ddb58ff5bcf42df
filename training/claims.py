"""Lock files: several workers, on one machine or many sharing a file system, drain one plan.

A worker claims run ``id`` by creating ``locks/<id>.lock`` with
``os.open(O_CREAT | O_EXCL)`` -- atomic, so exactly one creator wins (also on NFS v3+).
The file holds the owner's host, pid, process start time and a random token; the
owner touches it every ``HEARTBEAT_S`` seconds while it trains.

A lock is *stale* when its owner is provably dead (same host, and that pid no longer
exists, is a zombie, or is a different process started later) or when its heartbeat is
older than ``stale_after`` seconds (a machine that died). A stale lock is broken by
renaming it to a unique tombstone -- only one of several workers racing to break it
succeeds -- and checking that the tombstone is the very lock judged stale (same token)
before claiming afresh; a fresh lock grabbed by mistake is put back with ``os.link``
(which, unlike rename, never overwrites).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_S = 30.0
DEFAULT_STALE_AFTER_S = 600.0


@dataclass(frozen=True)
class Claim:
    path: Path
    token: str


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux /proc), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(owner: dict) -> bool:
    """Whether the process recorded in a lock on *this* host still runs."""
    pid = int(owner.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True  # no /proc: trust kill(0)
    if state == "Z":
        return False  # killed and not yet reaped
    return owner.get("start") in (None, _process_start(pid))


def read_owner(path: str | Path) -> dict | None:
    """A lock's owner record (host, pid, start, token, claimed); None while it is being written or garbage."""
    try:
        owner = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def is_stale(path: Path, stale_after: float = DEFAULT_STALE_AFTER_S) -> bool:
    """Whether the lock at ``path`` belongs to a dead owner (see module docstring)."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    owner = read_owner(path)
    if owner is None:  # being written, or garbage: only age can tell
        return age > max(stale_after, 5.0)
    if owner.get("host") == socket.gethostname() and not _owner_alive(owner):
        return True
    return age > stale_after


def try_claim(path: str | Path, stale_after: float = DEFAULT_STALE_AFTER_S) -> Claim | None:
    """Create the lock file at ``path`` (breaking it if stale); None if someone else holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # at most: fail, break a stale lock, try again
        token = secrets.token_hex(8)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _break_if_stale(path, stale_after):
                return None
            continue
        pid = os.getpid()
        owner = {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid), "token": token,
                 "claimed": time.time()}
        with os.fdopen(fd, "w") as fh:
            json.dump(owner, fh)
        return Claim(path, token)
    return None


def _break_if_stale(path: Path, stale_after: float) -> bool:
    owner = read_owner(path)
    if not is_stale(path, stale_after):
        return False
    tomb = path.with_name(f"{path.name}.stale-{secrets.token_hex(4)}")
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return True  # someone else broke it; race for the fresh claim
    if owner is not None and read_owner(tomb) not in (None, owner):  # we moved a fresh lock: put it back
        try:
            os.link(tomb, path)
        except FileExistsError:
            pass
        tomb.unlink(missing_ok=True)
        return False
    tomb.unlink(missing_ok=True)
    return True


def clear_if_stale(path: str | Path, stale_after: float = DEFAULT_STALE_AFTER_S) -> None:
    """Remove a lock left behind by a dead owner (e.g. killed after writing its result)."""
    path = Path(path)
    if path.exists():
        _break_if_stale(path, stale_after)


def release(claim: Claim) -> None:
    """Remove our lock (only if it is still ours)."""
    owner = read_owner(claim.path)
    if owner is not None and owner.get("token") == claim.token:
        claim.path.unlink(missing_ok=True)


@contextmanager
def heartbeat(claim: Claim, every: float = HEARTBEAT_S) -> Iterator[None]:
    """Touch the lock every ``every`` seconds in a background thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                os.utime(claim.path)
            except OSError:
                pass

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{claim.path.stem}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
