"""Final-loss tables for the loss laws, all in one schema.

Every loader returns a DataFrame with one row per training run::

    N (parameters), D (tokens), C (training FLOPs), loss [, budget]

``budget`` (iso-FLOP group, FLOPs) is set where the source groups its runs by budget.
Bundled tables (provenance: ``data/PROVENANCE.md``):

* ``chinchilla`` — Epoch AI's extraction of Chinchilla's Figure 4 (Besiroglu et al. 2024):
  245 runs; ``Training FLOP`` is C and D = C / (6N).
* ``porian`` — Porian et al. (2024) iso-FLOP points; one setting at a time
  (:data:`PORIAN_DEFAULT`, Porian's final setting that reproduces Chinchilla's a ≈ 0.5).

A path is read as a run table (``runtable`` schema: needs N, D, loss; C = 6ND);
diverged runs and rows without a finite loss are dropped.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.runtable import read_table
from bayes_scaling.io import file_sha256
from models.flops import training_flops

LOSS_DATASETS = ("chinchilla", "porian")
CHINCHILLA_FILE = "chinchilla_svg_extracted_data.csv"
PORIAN_FILE = "porian_isoflop_points.csv"

#: Porian et al.'s final setting (tuned AdamW, short warmup, constant lr, standard param
#: count, validation loss) on RefinedWeb — the one that matches Chinchilla.
PORIAN_DEFAULT = {
    "dataset": "rw",
    "hparams": "tuned",
    "warmup": "short",
    "decay": "const",
    "param_count": "standard",
    "loss_split": "val",
}

#: Runs whose 6ND lies within this relative distance of each other share an iso-FLOP budget.
BUDGET_RTOL = 0.05


def _bundled(name: str) -> Path:
    return Path(str(resources.files("bayes_scaling") / "data" / name))


def load_chinchilla() -> pd.DataFrame:
    """Epoch's extraction of Chinchilla Fig. 4: N, D = C/(6N), C, loss (245 rows)."""
    raw = pd.read_csv(_bundled(CHINCHILLA_FILE))
    N = raw["Model Size"].to_numpy(float)
    C = raw["Training FLOP"].to_numpy(float)
    return pd.DataFrame({"N": N, "D": C / training_flops(N, 1.0), "C": C, "loss": raw["loss"].to_numpy(float)})


def load_porian(**setting: str) -> pd.DataFrame:
    """Porian et al.'s iso-FLOP points of one setting (defaults: :data:`PORIAN_DEFAULT`).

    ``setting`` overrides any of dataset, hparams, warmup, decay, param_count, loss_split.
    ``budget`` and ``C`` are Porian's nominal FLOP budget.
    """
    unknown = set(setting) - set(PORIAN_DEFAULT)
    if unknown:
        raise InputError(f"porian: unknown filter(s) {sorted(unknown)}; choose from {list(PORIAN_DEFAULT)}")
    chosen = {**PORIAN_DEFAULT, **setting}
    raw = pd.read_csv(_bundled(PORIAN_FILE))
    mask = np.ones(len(raw), dtype=bool)
    for col, value in chosen.items():
        mask &= raw[col].astype(str) == str(value)
    if not mask.any():
        combos = "; ".join("/".join(c) for c in raw.groupby(list(PORIAN_DEFAULT)).size().index)
        wanted = ",".join(f"{k}={v}" for k, v in chosen.items())
        raise InputError(f"porian: no rows for {wanted}; settings ({'/'.join(PORIAN_DEFAULT)}): {combos}")
    sub = raw[mask]
    return pd.DataFrame({
        "N": sub["N"].to_numpy(float),
        "D": sub["D_tokens"].to_numpy(float),
        "C": sub["flops"].to_numpy(float),
        "loss": sub["loss"].to_numpy(float),
        "budget": sub["flops"].to_numpy(float),
    })


def load_loss_table(data: str | os.PathLike[str]) -> tuple[pd.DataFrame, str, str]:
    """A bundled name or a CSV/Parquet path → (table, source label, sha256 of the file read).

    Names: ``chinchilla``, ``porian`` or ``porian:key=value,...`` to pick another Porian
    setting, e.g. ``porian:dataset=owt2,hparams=base,decay=kaplan`` (see :data:`PORIAN_DEFAULT`).
    """
    text = str(data)
    if text == "chinchilla":
        return load_chinchilla(), "chinchilla", file_sha256(_bundled(CHINCHILLA_FILE))
    if text == "porian" or text.startswith("porian:"):
        setting = _parse_setting(text.partition(":")[2])
        label = "porian:" + ",".join(f"{k}={v}" for k, v in {**PORIAN_DEFAULT, **setting}.items())
        return load_porian(**setting), label, file_sha256(_bundled(PORIAN_FILE))
    path = Path(text)
    if not path.exists() and path.suffix == "":
        raise InputError(f"--data {text!r}: neither a bundled loss table {LOSS_DATASETS} nor an existing file")
    return runs_to_loss_table(read_table(path), source=text), text, file_sha256(path)


def _parse_setting(text: str) -> dict[str, str]:
    setting = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise InputError(f"--data porian:{text}: expected key=value pairs, got {item!r}")
        setting[key.strip()] = value.strip()
    return setting


def runs_to_loss_table(frame: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """A run table (N, D, loss[, status, C]) → the loss-law schema, validated row by row.

    Diverged runs and rows with an empty loss are dropped (a failed run has no final loss).
    """
    frame = frame.rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
    missing = [c for c in ("N", "D", "loss") if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; a loss table needs N, D, loss (C optional)")
    keep = frame["loss"].notna()
    if "status" in frame.columns:
        keep &= frame["status"].fillna("ok").astype(str).str.strip().str.lower() != "diverged"
    frame = frame[keep]
    columns = ["N", "D", "loss"] + (["C"] if "C" in frame.columns else [])
    out = pd.DataFrame(index=frame.index)
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            line = int(frame.index[i]) + 2  # header is line 1
            raise InputError(f"{source}:{line}: column '{col}': must be a finite number > 0, got {frame[col].iloc[i]!r}")
        out[col] = values
    if "C" not in out.columns:
        out["C"] = training_flops(out["N"], out["D"])
    if len(out) < 3:
        raise InputError(f"{source}: {len(out)} usable rows; a loss law needs at least 3")
    return out[["N", "D", "C", "loss"]].reset_index(drop=True)


def assign_budgets(table: pd.DataFrame, rtol: float = BUDGET_RTOL) -> pd.DataFrame:
    """Add ``budget`` (if absent): runs whose C agree within ``rtol`` share one (their median C)."""
    if "budget" in table.columns:
        return table
    order = np.argsort(table["C"].to_numpy())
    log_c = np.log(table["C"].to_numpy()[order])
    group = np.concatenate([[0], np.cumsum(np.diff(log_c) > np.log1p(rtol))])
    budget = np.empty(len(table))
    for g in np.unique(group):
        budget[order[group == g]] = np.exp(np.median(log_c[group == g]))
    return table.assign(budget=budget)
