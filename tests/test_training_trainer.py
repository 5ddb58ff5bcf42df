"""One training run: learns, is reproducible, accumulates exactly, survives divergence."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
from bayes_scaling.errors import InputError  # noqa: E402
from training.data import DataSpec, TokenData, prepare  # noqa: E402
from training.schedule import lr_multiplier  # noqa: E402
from training.trainer import Runtime, TrainConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> TokenData:
    out = tmp_path_factory.mktemp("data")
    prepare(DataSpec(synthetic_docs=600, tokenizer="bpe:300", seq_len=16, val_tokens=1024), out, max_train_tokens=20_000)
    return TokenData(out)


def config(**kw) -> TrainConfig:
    base = dict(n_layer=1, n_head=2, n_embd=32, vocab_size=300, seq_len=16, tokens=6144, batch_tokens=256, lr=2**-6)
    return TrainConfig(**base | kw)


def test_a_few_steps_learn_the_synthetic_language(data, tmp_path):
    result = train(config(), data, tmp_path, run_id="r1")
    assert result["status"] == "ok" and result["steps"] == 24
    assert result["loss"] < math.log(300) - 1.5  # far below a uniform guess (5.7 nats)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["loss"] == result["loss"] and saved["run_id"] == "r1" and saved["D"] == 6144 and saved["B"] == 256
    curve = (tmp_path / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("step,tokens,lr,train_loss,val_loss") and len(curve) == 1 + 24
    assert result["tokens_per_s"] > 0 and 0 < result["mfu"] < 1 and result["N"] > 0


def test_same_seed_same_loss_other_seed_other_loss(data):
    a, b = train(config(tokens=2048), data)["loss"], train(config(tokens=2048), data)["loss"]
    c = train(config(tokens=2048, seed=1), data)["loss"]
    assert a == b and a != c


def test_gradient_accumulation_matches_the_full_batch(data):
    """Micro-batches of 2 sequences x 8 accumulation steps = one batch of 16: same loss."""
    full = train(config(tokens=2048), data, runtime=Runtime(micro_batch_tokens=256))
    accum = train(config(tokens=2048), data, runtime=Runtime(micro_batch_tokens=32))
    assert accum["grad_accum"] == 8 and full["grad_accum"] == 1
    assert accum["loss"] == pytest.approx(full["loss"], abs=1e-4)


def test_absurd_learning_rate_diverges_without_raising(data, tmp_path):
    result = train(config(lr=1e3), data, tmp_path)
    assert result["status"] == "diverged" and math.isnan(result["loss"])
    assert result["diverged_at_step"] < result["steps"]  # stopped early, no compute wasted
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("bad, match", [(dict(lr=-1e-3), "lr"), (dict(batch_tokens=100), "multiple of seq_len"),
                                        (dict(tokens=1000), "multiple of batch_tokens"), (dict(schedule="step"), "schedule"),
                                        (dict(n_embd=30, n_head=4), "divisible"), (dict(n_experts=-1), "n_experts"),
                                        (dict(n_experts=4, top_k=5), "top_k")])
def test_bad_config_is_one_line_input_error(bad, match):
    with pytest.raises(InputError, match=match):
        config(**bad)


def test_an_moe_run_learns_and_counts_its_active_parameters(data):
    """n_experts > 0 trains models/moe.py: the loss falls as the dense model's does, N is the
    active non-embedding count (k of E experts), and the reported loss has no balancing term."""
    from models.moe import MoEConfig, MoEGPT

    moe = train(config(n_experts=4, top_k=1), data)
    dense = train(config(), data)
    assert moe["status"] == "ok" and moe["loss"] < math.log(300) - 1.5
    assert abs(moe["loss"] - dense["loss"]) < 0.5
    cfg = MoEConfig(vocab_size=300, n_layer=1, n_head=2, n_embd=32, block_size=16, n_experts=4, top_k=1)
    d = 32  # hand count: attention 4d²+4d, LayerNorms 4d, router 4d, one active expert 8d²+5d, final LayerNorm 2d
    assert moe["N"] == cfg.num_params(active=True) == 4 * d * d + 4 * d + 4 * d + 4 * d + 8 * d * d + 5 * d + 2 * d
    assert moe["N"] == MoEGPT(cfg).num_params(non_embedding=True, active=True) < MoEGPT(cfg).num_params(non_embedding=True)
    assert moe["N_total"] > dense["N_total"] and moe["n_experts"] == 4 and moe["top_k"] == 1
    assert moe["flops_per_token"] > dense["flops_per_token"] - 1  # same attention/head, router on top


def test_schedules():
    S, W = 100, 10
    m = lambda t, s: lr_multiplier(t, S, schedule=s, warmup_steps=W, min_ratio=0.1)  # noqa: E731
    assert m(0, "cosine") == pytest.approx(0.1) and m(9, "cosine") == 1.0  # linear warmup to the peak
    assert m(10, "cosine") == 1.0 and m(55, "cosine") == pytest.approx(0.55) and m(100, "cosine") == pytest.approx(0.1)
    assert m(50, "wsd") == 1.0 and m(79, "wsd") == 1.0 and m(99, "wsd") == pytest.approx(0.1)  # decay: last 20 %
    assert m(89, "wsd") == pytest.approx(1 - 0.9 * 10 / 20)
    assert m(99, "constant") == 1.0
