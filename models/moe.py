"""The GPT of ``gpt.py`` with each MLP replaced by top-k routed experts (a sparse MoE).

Router: p = softmax(W_r·x) over E experts; each token goes to its k most probable experts,
mixed with the renormalised weights p_e / Σ_{top-k} p. Each expert is a GPT MLP.
Load balancing (Switch Transformer, Fedus et al. 2021), per layer:

    aux = E · Σ_e f_e · P_e,   f_e = share of the token→expert assignments that went to e,
                               P_e = mean router probability of e

aux = 1 when routing is perfectly balanced and → E when it collapses onto one expert; the
model adds ``aux_loss_coef`` × (mean aux over layers) to the language-model loss.

Parameters per block: attention 4d² + 4d, LayerNorms 4d, router d·E, experts E·(8d² + 5d);
*active* per token: the same with k experts instead of E. N (non-embedding) follows gpt.py's
conventions; the FLOPs per token are 6·N_active ("6N") or 6·N_active plus the attention
scores 12·L·d·l_seq ("deepseek": DeepSeek's M with the active experts), by ``models.flops``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import flops
from models.gpt import GPT, MLP, Block, GPTConfig


@dataclass
class MoEConfig(GPTConfig):
    """A GPTConfig plus routing: ``n_experts`` experts per layer, ``top_k`` active."""

    n_experts: int = 8
    top_k: int = 2
    aux_loss_coef: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"need 1 <= top_k ({self.top_k}) <= n_experts ({self.n_experts})")

    def num_params(self, non_embedding: bool = True, active: bool = False) -> int:
        d, L = self.n_embd, self.n_layer
        experts = self.top_k if active else self.n_experts
        n = L * (4 * d * d + 4 * d + 4 * d + d * self.n_experts + experts * (8 * d * d + 5 * d)) + 2 * d
        return n if non_embedding else n + self.embedding_params()

    def flops_per_token(self, seq_len: int | None = None, kind: str = "6N") -> float:
        six_n = flops.six_n(self.num_params(non_embedding=True, active=True))
        if kind == "6N":
            return six_n
        if kind == "deepseek":
            return six_n + flops.attention_scores(self.n_layer, self.n_embd, seq_len or self.block_size)
        raise ValueError(f"kind must be one of {flops.FLOPS_KINDS}, got {kind!r}")


class MoELayer(nn.Module):
    """Top-k routed mixture of GPT MLPs; keeps its last load-balancing loss in ``aux_loss``."""

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        self.top_k = cfg.top_k
        self.router = nn.Linear(cfg.n_embd, cfg.n_experts, bias=False)
        self.experts = nn.ModuleList(MLP(cfg) for _ in range(cfg.n_experts))
        self.aux_loss = torch.tensor(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        probs = F.softmax(self.router(flat).float(), dim=-1)               # (M, E)
        top_p, top_e = probs.topk(self.top_k, dim=-1)                      # (M, k)
        weights = (top_p / top_p.sum(-1, keepdim=True)).to(flat.dtype)
        self.aux_loss = load_balancing_loss(probs, top_e)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = (top_e == e).nonzero(as_tuple=True)
            if token.numel():
                out.index_add_(0, token, weights[token, slot, None] * expert(flat[token]))
        return out.reshape(shape)


def load_balancing_loss(probs: torch.Tensor, top_e: torch.Tensor) -> torch.Tensor:
    """E · Σ_e f_e · P_e from router probabilities (M, E) and chosen experts (M, k)."""
    n_experts = probs.shape[-1]
    counts = torch.zeros(n_experts, device=probs.device).index_add_(
        0, top_e.reshape(-1), torch.ones(top_e.numel(), device=probs.device))
    f = counts / top_e.numel()
    return n_experts * (f * probs.mean(0)).sum()


class MoEGPT(GPT):
    """GPT whose blocks use MoELayer; ``forward`` adds the balancing loss to the LM loss."""

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__(cfg, blocks=[Block(cfg, mlp=MoELayer(cfg)) for _ in range(cfg.n_layer)])
        self.last_aux_loss = torch.tensor(0.0)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits, loss = super().forward(idx, targets)
        self.last_aux_loss = torch.stack([b.mlp.aux_loss for b in self.blocks]).mean()
        if loss is not None:
            loss = loss + self.config.aux_loss_coef * self.last_aux_loss
        return logits, loss

    def num_params(self, non_embedding: bool = True, active: bool = False) -> int:
        """Total from the module; active = total minus the (E − k) unused experts per layer."""
        n = super().num_params(non_embedding)
        if active:
            per_expert = sum(p.numel() for p in self.blocks[0].mlp.experts[0].parameters())
            n -= self.config.n_layer * (self.config.n_experts - self.config.top_k) * per_expert
        return n

    def flops_per_token(self, seq_len: int | None = None, kind: str = "6N") -> float:
        return self.config.flops_per_token(seq_len, kind)
