"""A GPT in one readable file (nanoGPT lineage), with exact parameter and FLOP accounting.

Architecture (pre-norm):  x ← x + Attn(LN(x)),  x ← x + MLP(LN(x)),  logits = LN(x)·W_outᵀ
    Attn: causal multi-head self-attention through ``F.scaled_dot_product_attention``
    MLP:  W₂·GELU(W₁·x), hidden width 4·d
    learned token and position embeddings; the output head tied to the token embedding
    by default.

Parameters (d = n_embd, L = n_layer, V = vocab_size, T = block_size), all Linear and
LayerNorm layers with biases:
    per block:  attention 4d² + 4d, MLP 8d² + 5d, two LayerNorms 4d   → 12d² + 13d
    non-embedding N = L·(12d² + 13d) + 2d          (final LayerNorm included)
    embedding:  V·d (tokens) + T·d (positions) [+ V·d for an untied head]
"N" everywhere in this project means the non-embedding count (Kaplan et al. 2020).

Training FLOPs per token: "6N" (6·N) or "deepseek" (M = 72·L·d² + 12·L·d·l_seq), by the
formulas of ``models.flops``, their one owner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import flops


@dataclass
class GPTConfig:
    """Shape of a GPT. ``num_params``/``flops_per_token`` need no weights."""

    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    tie_embeddings: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")

    def num_params(self, non_embedding: bool = True, active: bool = False) -> int:
        """Parameter count by the formula in the module docstring (``active``: the ones a token
        uses — all of them in a dense model; the MoE subclass counts its k active experts)."""
        d, L = self.n_embd, self.n_layer
        n = L * (12 * d * d + 13 * d) + 2 * d
        return n if non_embedding else n + self.embedding_params()

    def embedding_params(self) -> int:
        """Token and position embeddings, plus the output head when it is not tied."""
        head = 0 if self.tie_embeddings else self.vocab_size * self.n_embd
        return (self.vocab_size + self.block_size) * self.n_embd + head

    def flops_per_token(self, seq_len: int | None = None, kind: str = "6N") -> float:
        """Training (forward + backward) FLOPs per token: 6N or DeepSeek's M."""
        if kind == "6N":
            return flops.six_n(self.num_params(non_embedding=True))
        if kind == "deepseek":
            return flops.deepseek(self.n_layer, self.n_embd, seq_len or self.block_size)
        raise ValueError(f"kind must be one of {flops.FLOPS_KINDS}, got {kind!r}")


class CausalSelfAttention(nn.Module):
    """softmax(QKᵀ/√h + causal mask)·V per head, heads concatenated and projected."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    """W₂·GELU(W₁·x) with hidden width 4·d."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm residual block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: GPTConfig, mlp: nn.Module | None = None) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = mlp if mlp is not None else MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer language model."""

    def __init__(self, cfg: GPTConfig, blocks: list[nn.Module] | None = None) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(blocks if blocks is not None else [Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/√(2L) so the residual stream's variance
        # does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) and, given targets, the mean cross-entropy (ignore_index=-1)."""
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def num_params(self, non_embedding: bool = True, active: bool = False) -> int:
        """Counted from the module itself (shared tensors once); equals the config's formula.
        ``active`` changes nothing in a dense model (every parameter is used by every token)."""
        seen: dict[int, int] = {id(p): p.numel() for p in self.parameters()}
        total = sum(seen.values())
        if not non_embedding:
            return total
        embedding = {id(self.wte.weight), id(self.wpe.weight), id(self.lm_head.weight)}
        return total - sum(n for pid, n in seen.items() if pid in embedding)

    def flops_per_token(self, seq_len: int | None = None, kind: str = "6N") -> float:
        """Training FLOPs per token (see GPTConfig.flops_per_token)."""
        if kind == "6N":
            return flops.six_n(self.num_params(non_embedding=True))
        return self.config.flops_per_token(seq_len, kind)

    def configure_optimizer(self, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.95)
                            ) -> torch.optim.AdamW:
        """AdamW; weight decay on matrices (≥ 2-D: linear weights, embeddings), not on biases/norms."""
        params = {id(p): p for p in self.parameters() if p.requires_grad}.values()
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=False)
