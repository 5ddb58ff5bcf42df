"""An opt-in store of finished results on disk (``fit --cache DIR``), as brms's ``file=``: a result is
kept under the SHA-256 of everything that decides it — the data, the model kind, the sampler settings,
the model options, what is scored — and of the package versions, so that a rerun with the same inputs
loads it instead of sampling again, and any change misses. Delete the folder to clear it.

The files are pickles: load a cache folder only if you wrote it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from importlib import metadata
from pathlib import Path

#: Bumped when what is stored changes shape.
FORMAT = 1
#: Packages whose versions are part of every key (a new sampler or model library misses the cache).
VERSIONED = ("bayes-scaling", "pymc", "pytensor", "nutpie", "arviz", "arviz-stats", "numpy")


def _versions() -> str:
    out = []
    for name in VERSIONED:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=-")
    return ";".join(out)


def key_of(*parts: object) -> str:
    """SHA-256 of ``parts`` (bytes as they are, anything else by its pickle), the format and the versions."""
    h = hashlib.sha256(f"{FORMAT};{_versions()}".encode())
    for part in parts:
        blob = part if isinstance(part, bytes) else pickle.dumps(part, protocol=5)
        h.update(len(blob).to_bytes(8, "little"))
        h.update(blob)
    return h.hexdigest()


class ResultCache:
    """Results by key in one folder: ``get`` (None on a miss or an unreadable file), ``put`` (atomic)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.pkl"

    def get(self, key: str):
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with path.open("rb") as f:
                return pickle.load(f)
        except Exception:                       # a truncated or foreign file is a miss, and is replaced
            return None

    def put(self, key: str, value: object) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=5)
            os.replace(tmp, self.path(key))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
