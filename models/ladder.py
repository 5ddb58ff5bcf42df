"""A size ladder: a sensible GPT shape for a target non-embedding parameter count.

For each depth L, the width d solving L·(12d² + 13d) + 2d = N is rounded to a multiple of
the head width (``head_dim``, halved for narrow models so there are ≥ 2 heads). Among
depths whose count lands within ``TOLERANCE`` of the target we take the one whose aspect
ratio d/L is closest to ``aspect`` (nanochat: 64); otherwise the closest count.
"""

from __future__ import annotations

import math

from models.gpt import GPTConfig

ASPECT = 64
HEAD_DIM = 64
TOLERANCE = 0.1


def shape_for_params(target_N: float, *, vocab_size: int = 50304, block_size: int = 1024,
                     aspect: int = ASPECT, head_dim: int = HEAD_DIM, tie_embeddings: bool = True) -> GPTConfig:
    """The GPTConfig for ``target_N`` non-embedding params (see module docstring)."""
    if not target_N > 0:
        raise ValueError(f"target_N must be positive, got {target_N}")
    candidates = []
    for n_layer in range(1, 161):
        d = math.sqrt(target_N / (12 * n_layer))
        hd = head_dim
        while hd > 8 and d < 2 * hd:
            hd //= 2
        n_embd = max(hd, round(d / hd) * hd)
        cfg = GPTConfig(vocab_size=vocab_size, n_layer=n_layer, n_head=n_embd // hd, n_embd=n_embd,
                        block_size=block_size, tie_embeddings=tie_embeddings)
        err = abs(math.log(cfg.num_params() / target_N))
        candidates.append((err, abs(math.log(n_embd / n_layer / aspect)), cfg))
    close = [c for c in candidates if c[0] <= math.log1p(TOLERANCE)]
    if close:
        return min(close, key=lambda c: c[1])[2]
    return min(candidates, key=lambda c: c[0])[2]
