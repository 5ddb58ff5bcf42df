"""Progress of long steps, on stderr: a bar on a terminal, one plain line per finished unit in a log.

    with steps(len(folds), "backtest folds") as tick:
        for fold in folds:
            ...
            tick(f"{fold}: 12.3 s")

On a terminal (stderr is a TTY) a ``tqdm`` bar counts the units with their rate and ETA; in a log
(stderr redirected) each finished unit is one line ``label 3/8 (elapsed 41 s, ETA 68 s): detail``
— no carriage returns, no escape codes. One long unit (a NUTS run of minutes) reports its own
way through with :func:`fraction`: a line at every tenth, on a terminal too (it may run in a worker
process beside another's bar). ``set_quiet(True)`` (``--quiet``) silences all; the commands' reports
on stdout are not progress and stay.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def quiet() -> bool:
    return _QUIET


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """Silence progress inside a block of sub-second units that a caller's own line already counts."""
    was = _QUIET
    set_quiet(True)
    try:
        yield
    finally:
        set_quiet(was)


def note(text: str) -> None:
    """One progress line on stderr (unless quiet)."""
    if not _QUIET:
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def steps(total: int, label: str) -> Iterator[Callable[[str], None]]:
    """Count ``total`` units of ``label``; the yielded ``tick(detail)`` marks one finished."""
    if _QUIET or total <= 0:
        yield lambda detail="": None
        return
    t0 = time.perf_counter()
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(total=total, desc=label, unit="", file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
            def tick(detail: str = "") -> None:
                bar.set_postfix_str(detail[:40], refresh=False)
                bar.update(1)

            yield tick
        return
    done = 0

    def tick(detail: str = "") -> None:
        nonlocal done
        done += 1
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total - done)
        print(f"{label} {done}/{total} (elapsed {elapsed:.0f} s, ETA {eta:.0f} s)" + (f": {detail}" if detail else ""),
              file=sys.stderr, flush=True)

    yield tick


def fraction(label: str, total: int, *, every: float = 0.1) -> Callable[[int, str], None]:
    """``update(done, detail)`` for one long unit of ``total`` small steps (a NUTS run's draws): one line
    ``label 40% (elapsed 95 s, ETA 140 s): detail`` each time another ``every`` of the way is done."""
    if _QUIET or total <= 0:
        return lambda done, detail="": None
    t0 = time.perf_counter()
    reported = 0

    def update(done: int, detail: str = "") -> None:
        nonlocal reported
        step = int(min(done, total) / total / every + 1e-9)
        if step <= reported or done <= 0:
            return
        reported = step
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total - done)
        print(f"{label} {done / total:.0%} (elapsed {elapsed:.0f} s, ETA {eta:.0f} s)" + (f": {detail}" if detail else ""),
              file=sys.stderr, flush=True)

    return update
