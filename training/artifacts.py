"""What counts as a finished run on disk, and the temp files a killed writer leaves behind.

A run is *finished* iff ``runs/<id>/result.json`` parses as a JSON object that holds every
key of ``RESULT_KEYS`` with ``status`` in ``RESULT_STATUSES``; any other result.json
(truncated, empty, ``{}``, not an object) is *unreadable*: not finished, retrained by the
next ``run``/``worker``, and never a row of the run table.

``bayes_scaling.io.atomic_path`` writes ``NAME`` through a temp file ``.NAME.XXXXXXXX.tmp``
beside it (``mkstemp``: 8 random characters); a writer killed with SIGKILL leaves that temp
for good, and whoever owns the destination next removes it (``remove_stale_temps``).

Light on purpose (no torch): the trainer, the workers and ``collect`` all use it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

#: Keys every result.json holds: the run-table contract that ``bayes_scaling`` reads.
RESULT_KEYS = ("run_id", "N", "D", "B", "lr", "loss", "status")
#: The statuses a finished run can have (a divergence is a result, not a failure).
RESULT_STATUSES = ("ok", "diverged")


def read_result(path: str | Path) -> tuple[dict | None, str]:
    """``(result, "")`` for a finished run's result.json, ``(None, why)`` for anything else
    (``why`` is "missing" when there is no file)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as err:
        return None, f"unreadable ({type(err).__name__})"
    if not text.strip():
        return None, "empty file"
    try:
        result = json.loads(text)
    except ValueError:
        return None, "truncated or invalid JSON"
    if not isinstance(result, dict):
        return None, f"not a JSON object (a {type(result).__name__})"
    if not result:
        return None, "an empty JSON object {}"
    absent = [k for k in RESULT_KEYS if k not in result]
    if absent:
        return None, f"partial: no {', '.join(absent)}"
    if result["status"] not in RESULT_STATUSES:
        return None, f"partial: status {result['status']!r} is not one of {', '.join(RESULT_STATUSES)}"
    return result, ""


def stale_temps(path: str | Path) -> list[Path]:
    """The temp files ``atomic_path`` makes for ``path`` (``.NAME.XXXXXXXX.tmp`` beside it) that exist now."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Remove every ``atomic_path`` temp file (``.*.XXXXXXXX.tmp``) in ``directory``; the caller must own
    the directory's artifacts (hold the run's lock), so no live writer's temp is taken. Returns what went."""
    directory = Path(directory)
    pattern = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
    if not directory.is_dir():
        return []
    gone = [p for p in directory.iterdir() if pattern.fullmatch(p.name)]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone
