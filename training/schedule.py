"""Learning-rate schedules: the multiplier of the peak lr at optimizer step t of S.

With W warmup steps (linear from lr/W up to lr) and a floor ``min_ratio`` = r:

    cosine    m(t) = r + (1 - r) * (1 + cos(pi * p)) / 2,    p = (t - W) / (S - W)
    wsd       warmup-stable-decay: m(t) = 1 until the last ``decay_frac`` of the steps,
              then linearly to r: m(t) = 1 - (1 - r) * (t - (S - K)) / K,  K = decay_frac * S
    constant  m(t) = 1 after warmup

During warmup every schedule is m(t) = (t + 1) / W, so step 0 already moves.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd", "constant")


def lr_multiplier(step: int, total_steps: int, *, schedule: str = "cosine", warmup_steps: int = 0,
                  min_ratio: float = 0.1, decay_frac: float = 0.2) -> float:
    """Multiplier m(step) in (0, 1] of the peak learning rate (see the module docstring)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if schedule == "wsd":
        decay_steps = max(1, round(decay_frac * total_steps))
        into_decay = step - (total_steps - decay_steps)
        if into_decay < 0:
            return 1.0
        return 1 - (1 - min_ratio) * min(into_decay + 1, decay_steps) / decay_steps
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
