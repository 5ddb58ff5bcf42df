"""Parameter and FLOP accounting against hand counts and torch's FLOP counter; the models learn."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from models.gpt import GPT, GPTConfig
from models.ladder import shape_for_params
from models.moe import MoEConfig, MoEGPT, load_balancing_loss

SMALL = dict(vocab_size=96, n_layer=2, n_head=2, n_embd=32, block_size=16)


def test_param_count_matches_a_hand_count():
    # d = 32, per block: c_attn 32·96 + 96 = 3168, attn proj 32·32 + 32 = 1056, two LayerNorms 4·32 = 128,
    # c_fc 32·128 + 128 = 4224, mlp proj 128·32 + 32 = 4128  → 12,704; two blocks + final LN (64) = 25,472
    hand = 2 * (3168 + 1056 + 128 + 4224 + 4128) + 64
    for tie in (True, False):
        cfg = GPTConfig(**SMALL, tie_embeddings=tie)
        model = GPT(cfg)
        assert cfg.num_params() == model.num_params() == hand
        embeddings = 96 * 32 + 16 * 32 + (0 if tie else 96 * 32)
        assert model.num_params(non_embedding=False) == cfg.num_params(non_embedding=False) == hand + embeddings
        assert sum(p.numel() for p in model.parameters()) == hand + embeddings  # shared head counted once


def test_training_flops_match_torch_flop_counter():
    torch.manual_seed(0)
    cfg = GPTConfig(**SMALL)
    model = GPT(cfg)
    B, T = 3, 16
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    with FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    tokens, d, L, V = B * T, cfg.n_embd, cfg.n_layer, cfg.vocab_size
    weight_matmuls = 6 * tokens * (L * 12 * d * d + d * V)     # 2 FLOPs/MAC forward, 4 backward; + lm head
    attention = 12 * tokens * L * d * T                          # QKᵀ and AV, forward + backward
    counted = counter.get_total_flops()
    # torch counts scaled_dot_product_attention only on some backends; the weight matmuls always
    assert counted - weight_matmuls in (0, pytest.approx(attention, rel=0.01))
    # our accounting: 6N is the weight-matmul part without the head; DeepSeek's M adds attention
    assert model.flops_per_token(kind="6N") == pytest.approx(6 * cfg.num_params())
    assert model.flops_per_token(seq_len=T, kind="deepseek") == 72 * L * d * d + 12 * L * d * T
    assert model.flops_per_token(seq_len=T, kind="deepseek") * tokens == weight_matmuls - 6 * tokens * d * V + attention


def test_moe_counts_active_experts_only():
    cfg = MoEConfig(**SMALL, n_experts=4, top_k=1)
    model = MoEGPT(cfg)
    expert = 32 * 128 + 128 + 128 * 32 + 32
    assert model.num_params() == cfg.num_params() == sum(p.numel() for p in model.parameters()) - 96 * 32 - 16 * 32
    assert model.num_params(active=True) == cfg.num_params(active=True) == model.num_params() - 2 * 3 * expert
    assert model.flops_per_token() == 6 * model.num_params(active=True)


def test_balancing_loss_is_one_when_balanced_and_e_when_collapsed():
    E = 4
    uniform = torch.full((8, E), 1 / E)
    balanced = torch.arange(8).remainder(E)[:, None]          # two tokens to each expert
    assert load_balancing_loss(uniform, balanced).item() == pytest.approx(1.0)
    collapsed_p = torch.zeros(8, E)
    collapsed_p[:, 0] = 1.0
    assert load_balancing_loss(collapsed_p, torch.zeros(8, 1, dtype=torch.long)).item() == pytest.approx(E)


@pytest.mark.parametrize("target", [1e5, 1e6, 1e7, 1e8, 1e9, 1e10])
def test_ladder_lands_near_the_target(target):
    cfg = shape_for_params(target)
    assert abs(math.log(cfg.num_params() / target)) < math.log(1.1)
    assert cfg.n_embd % cfg.n_head == 0 and cfg.n_head >= 2


@pytest.mark.parametrize("make", [lambda: GPT(GPTConfig(**SMALL)), lambda: MoEGPT(MoEConfig(**SMALL, n_experts=4, top_k=2))])
def test_a_few_steps_fit_a_fixed_batch(make):
    torch.manual_seed(0)
    model = make()
    idx = torch.randint(0, 96, (4, 16))
    opt = model.configure_optimizer(lr=3e-3, weight_decay=0.1)
    losses = []
    for _ in range(30):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_same_seed_same_model():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = GPT(GPTConfig(**SMALL))
        outs.append(model(torch.arange(16)[None] % 96)[0])
    assert torch.equal(outs[0], outs[1])
