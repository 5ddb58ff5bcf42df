"""The one owner of the project's FLOP formulas (no torch: the planner and the fits import it).

Training (forward + backward) FLOPs per token of a decoder-only transformer with L layers of
width d, trained on sequences of l_seq tokens, N = non-embedding parameters:

    "6N"        M = 6·N                                  (Kaplan et al. 2020: C ≈ 6·N·D)
    "deepseek"  M = 72·L·d² + 12·L·d·l_seq              (DeepSeek LLM 2024: the non-embedding
                matmuls, 6·12·L·d², plus the attention scores QKᵀ and AV, 12·L·d·l_seq;
                no vocabulary projection)

and a run of D tokens costs C = M·D. ``models.gpt``, ``models.moe``, ``training`` and
``bayes_scaling.planning`` all call these functions, so the formulas exist once.
"""

from __future__ import annotations

FLOPS_KINDS = ("6N", "deepseek")


def six_n(n_params):
    """M = 6·N: FLOPs per training token (works on floats and NumPy arrays)."""
    return 6.0 * n_params


def training_flops(n_params, tokens):
    """C = 6·N·D, the FLOPs of a run of D tokens (floats or arrays)."""
    return six_n(n_params) * tokens


def attention_scores(n_layer, d_model, seq_len):
    """12·L·d·l_seq: training FLOPs per token of QKᵀ and AV (the part 6N leaves out)."""
    return 12.0 * n_layer * d_model * seq_len


def deepseek(n_layer, d_model, seq_len):
    """DeepSeek's M = 72·L·d² + 12·L·d·l_seq (floats or arrays)."""
    return 72.0 * n_layer * d_model**2 + attention_scores(n_layer, d_model, seq_len)


def shape_of(n_params, aspect: float):
    """(L, d) of a dense GPT with N = 12·L·d² and d = aspect·L, as real numbers (for the planner,
    which has N and an aspect ratio but no integer shape)."""
    n_layer = (n_params / (12.0 * aspect**2)) ** (1.0 / 3.0)
    return n_layer, aspect * n_layer
