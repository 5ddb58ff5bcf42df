"""One training run: a GPT (or its MoE variant) on packed sequences, AdamW, warmup + cosine/WSD, accumulation.

Model. ``n_experts = 0`` trains the dense GPT of ``models/gpt.py``; ``n_experts = E > 0``
the MoE of ``models/moe.py`` (E experts per layer, ``top_k`` active, Switch load-balancing
loss weighted by ``aux_loss_coef`` in the training objective). The result's N is the
*active* non-embedding parameter count (StepLaw's convention for MoE scaling laws), its
``N_total`` every parameter; the loss is always the language-model cross-entropy alone.

Batch arithmetic. A run trains D tokens in S = D / B optimizer steps of B tokens,
i.e. B / T sequences of T = seq_len tokens. B need not fit in memory: each step is
split into A = (B / T) / m micro-batches of m sequences, and micro-batch k's mean
loss is scaled by 1/A before ``backward``, so the accumulated gradient is

    g = sum_k (1/A) * grad mean_{m*T targets of k} CE  =  grad mean_{B targets} CE,

the gradient of the full batch (every micro-batch has the same number of targets).
The sequences of a step depend only on the seed (``SequenceSampler``), never on m.
On CUDA, m starts at the whole batch (or ``micro_batch_tokens``) and halves on an
out-of-memory error in the first step.

Divergence. Let L_max = ``diverge_factor * ln V`` (ln V is the loss of a uniform guess
over the vocabulary, where every run starts). A NaN/inf train loss, a train loss above
L_max for more than ``max(5, S/20)`` consecutive steps (a spike that recovers is not a
divergence), or a final validation loss that is not finite or above L_max stops the run
with status "diverged" and loss NaN; it is a result, not a crash.

Throughput. tokens/s counts training steps only (not evaluation); MFU is achieved
FLOP/s (``matmul_flops_per_token`` x tokens/s) over the device peak: a table of dense bf16
peaks for CUDA GPUs, and on CPU a measured fp32 matmul throughput on the same threads.

Outputs. ``curve.csv`` first, then ``result.json`` last (both atomic writes); each is read
back after writing, and one that does not read back whole (a short write, a full disk) is
an OSError, so the worker records the run as failed instead of finished.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bayes_scaling.errors import InputError
from bayes_scaling.io import write_csv, write_json
from models import flops
from training.artifacts import read_result
from training.data import SequenceSampler, TokenData
from training.schedule import SCHEDULES, lr_multiplier

#: Tokens per micro-batch on CPU (small activations stay in cache; larger batches accumulate).
CPU_MICRO_BATCH_TOKENS = 4096

#: Columns of curve.csv, one row per logged step.
CURVE_COLUMNS = ("step", "tokens", "lr", "train_loss", "val_loss", "tokens_per_s", "elapsed_s")

#: Dense bf16 tensor-core peaks (FLOP/s) by device-name substring, first match wins.
GPU_PEAK_FLOPS = (("H200", 989e12), ("H100", 989e12), ("GH200", 989e12), ("A100", 312e12), ("A10G", 70e12),
                  ("A10", 125e12), ("L40", 181e12), ("L4", 121e12), ("4090", 165e12), ("3090", 71e12), ("V100", 125e12))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run's result (the sweep hashes it into the run id)."""

    n_layer: int
    n_head: int
    n_embd: int
    tokens: int  # D: tokens trained
    batch_tokens: int  # B: tokens per optimizer step (a multiple of seq_len)
    lr: float  # peak learning rate
    vocab_size: int = 512
    seq_len: int = 64
    schedule: str = "cosine"
    warmup_frac: float = 0.1  # warmup steps = round(warmup_frac * S)
    min_lr_ratio: float = 0.1
    decay_frac: float = 0.2  # wsd only
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    seed: int = 0
    diverge_factor: float = 1.5
    n_experts: int = 0  # 0: dense GPT; E > 0: MoE with E experts per layer
    top_k: int = 2  # MoE only: experts per token
    aux_loss_coef: float = 0.01  # MoE only: weight of the load-balancing loss

    def __post_init__(self) -> None:
        check_config(self)

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_tokens

    @property
    def batch_rows(self) -> int:
        return self.batch_tokens // self.seq_len


def check_config(c: TrainConfig) -> None:
    """Reject a config that cannot train, naming the key."""
    for key in ("n_layer", "n_head", "n_embd", "tokens", "batch_tokens", "vocab_size", "seq_len"):
        v = getattr(c, key)
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise InputError(f"{key}: must be a positive integer, got {v!r}")
    for key in ("lr", "diverge_factor"):
        v = getattr(c, key)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InputError(f"{key}: must be a positive finite number, got {v!r}")
    if not isinstance(c.n_experts, (int, np.integer)) or isinstance(c.n_experts, bool) or c.n_experts < 0:
        raise InputError(f"n_experts: must be an integer >= 0 (0: dense), got {c.n_experts!r}")
    if c.n_experts and not (isinstance(c.top_k, (int, np.integer)) and 1 <= c.top_k <= c.n_experts):
        raise InputError(f"top_k: must be an integer in [1, n_experts = {c.n_experts}], got {c.top_k!r}")
    for key in ("weight_decay", "grad_clip", "aux_loss_coef"):
        if not getattr(c, key) >= 0:
            raise InputError(f"{key}: must be >= 0, got {getattr(c, key)!r}")
    for key in ("warmup_frac", "min_lr_ratio", "decay_frac", "beta1", "beta2"):
        if not 0 <= getattr(c, key) <= 1:
            raise InputError(f"{key}: must be in [0, 1], got {getattr(c, key)!r}")
    if c.schedule not in SCHEDULES:
        raise InputError(f"schedule: {c.schedule!r} is not one of {', '.join(SCHEDULES)}")
    if c.n_embd % c.n_head:
        raise InputError(f"n_embd {c.n_embd} is not divisible by n_head {c.n_head}")
    if c.batch_tokens % c.seq_len:
        raise InputError(f"batch_tokens {c.batch_tokens} is not a multiple of seq_len {c.seq_len}")
    if c.tokens % c.batch_tokens:
        raise InputError(f"tokens {c.tokens} is not a multiple of batch_tokens {c.batch_tokens}")


@dataclass(frozen=True)
class Runtime:
    """How a run executes: none of it changes the result (so none of it is in the run id)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    threads: int = 1  # CPU threads per process
    compile: bool = False
    micro_batch_tokens: int = 0  # 0: the whole batch on CUDA (halved on OOM), CPU_MICRO_BATCH_TOKENS on CPU
    eval_every: int = 0  # 0: about 10 evaluations per run
    eval_rows: int = 0  # validation rows for intermediate evaluations; 0: a quarter of them
    log_every: int = 0  # 0: about 200 curve points per run
    peak_flops: float = 0.0  # 0: look up (GPU) or measure (CPU)


def model_config(c: TrainConfig):
    """The GPTConfig (dense) or MoEConfig (``n_experts > 0``) of a run: head tied to the token
    embedding, no dropout."""
    from models.gpt import GPTConfig
    from models.moe import MoEConfig

    shape = dict(vocab_size=c.vocab_size, n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd,
                 block_size=c.seq_len, tie_embeddings=True, dropout=0.0)
    if c.n_experts:
        return MoEConfig(**shape, n_experts=c.n_experts, top_k=c.top_k, aux_loss_coef=c.aux_loss_coef)
    return GPTConfig(**shape)


def build_model(c: TrainConfig) -> torch.nn.Module:
    """The GPT (or MoE GPT) of a config."""
    from models.gpt import GPT
    from models.moe import MoEGPT

    cfg = model_config(c)
    return MoEGPT(cfg) if c.n_experts else GPT(cfg)


def counted_params(c: TrainConfig) -> int:
    """N of a run: non-embedding parameters, active ones for an MoE (from the config's formula)."""
    return model_config(c).num_params(non_embedding=True, active=True)


def train(config: TrainConfig, data: TokenData, out_dir: str | Path | None = None, *, runtime: Runtime = Runtime(),
          run_id: str = "") -> dict:
    """Train one run; return its result (and write curve.csv, then result.json, to ``out_dir``, each
    checked to read back; OSError if not)."""
    c = config
    if data.seq_len != c.seq_len or data.vocab_size > c.vocab_size:
        raise InputError(f"run {run_id or '?'}: config wants seq_len={c.seq_len}, vocab={c.vocab_size} but the data has "
                         f"seq_len={data.seq_len}, vocab={data.vocab_size}")
    t_start = time.perf_counter()
    device = torch.device(runtime.device if runtime.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(runtime.threads)
    torch.manual_seed(c.seed)
    model = build_model(c).to(device)
    n_params = model.num_params(non_embedding=True, active=True)
    n_total = model.num_params(non_embedding=False)
    flops_per_token = matmul_flops_per_token(c)
    optimizer = model.configure_optimizer(c.lr, c.weight_decay, betas=(c.beta1, c.beta2))
    step_model = torch.compile(model) if runtime.compile else model
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and torch.cuda.is_bf16_supported()
                else contextlib.nullcontext())

    S, rows = c.steps, c.batch_rows
    warmup = round(c.warmup_frac * S)
    micro_tokens = runtime.micro_batch_tokens or (c.batch_tokens if device.type == "cuda" else CPU_MICRO_BATCH_TOKENS)
    micro = _divisor_at_most(rows, micro_tokens // c.seq_len)
    eval_every = runtime.eval_every or max(1, S // 10)
    log_every = runtime.log_every or max(1, S // 200)
    eval_rows = runtime.eval_rows or max(1, len(data.val) // 4)
    diverge_at = c.diverge_factor * math.log(c.vocab_size)
    patience, above = max(5, S // 20), 0

    def evaluate(n_rows: int | None = None) -> float:
        val = data.val[:n_rows]
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad(), autocast:
            for i in range(0, len(val), micro):
                batch = torch.from_numpy(val[i:i + micro].astype(np.int64)).to(device)
                inputs, targets = _inputs_targets(batch)
                logits, _ = step_model(inputs)  # no targets: the model adds no MoE balancing term
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
                total += float(loss) * batch.shape[0]
                count += batch.shape[0]
        model.train()
        return total / count

    curve: list[dict] = []
    status, diverged_at, train_loss = "ok", None, float("nan")
    train_time = 0.0
    batches = SequenceSampler(len(data.train), c.seed).steps(rows)
    for step in range(S):
        lr = c.lr * lr_multiplier(step, S, schedule=c.schedule, warmup_steps=warmup,
                                  min_ratio=c.min_lr_ratio, decay_frac=c.decay_frac)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = torch.from_numpy(data.train[next(batches)].astype(np.int64))
        t0 = time.perf_counter()
        while True:
            try:
                train_loss = _step(step_model, optimizer, batch, micro, c.grad_clip, device, autocast)
                break
            except torch.OutOfMemoryError:
                if step > 0 or micro == 1:
                    raise
                optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                micro = _divisor_at_most(rows, micro // 2)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
        above = above + 1 if train_loss > diverge_at else 0
        if not math.isfinite(train_loss) or above > patience:
            status, diverged_at = "diverged", step
        last = step == S - 1 or status == "diverged"
        if step % log_every == 0 or step % eval_every == 0 or last:
            done = (step + 1) * c.batch_tokens
            val_loss = evaluate(eval_rows) if (step % eval_every == 0 and not last and status == "ok") else float("nan")
            curve.append({"step": step, "tokens": done, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
                          "tokens_per_s": done / train_time, "elapsed_s": time.perf_counter() - t_start})
        if status == "diverged":
            break

    final = evaluate() if status == "ok" else float("nan")
    curve[-1]["val_loss"] = final
    if not math.isfinite(final) or final > diverge_at:
        status, diverged_at, final = "diverged", step, float("nan")
    tokens_per_s = (step + 1) * c.batch_tokens / train_time
    peak = runtime.peak_flops or device_peak_flops(device)
    result = {
        "run_id": run_id,
        "N": n_params,
        "N_total": n_total,
        "D": c.tokens,
        "B": c.batch_tokens,
        "lr": c.lr,
        "loss": final,
        "status": status,
        "seed": c.seed,
        "seq_len": c.seq_len,
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "n_embd": c.n_embd,
        "vocab_size": c.vocab_size,
        "n_experts": c.n_experts,
        "top_k": c.top_k if c.n_experts else 0,
        "schedule": c.schedule,
        "steps": S,
        "flops": flops.training_flops(n_params, c.tokens),
        "flops_per_token": flops_per_token,
        "tokens_per_s": tokens_per_s,
        "mfu": flops_per_token * tokens_per_s / peak if peak else float("nan"),
        "wall_s": time.perf_counter() - t_start,
        "train_loss": train_loss,
        "diverged_at_step": diverged_at,
        "epochs": c.tokens / data.train_tokens,
        "micro_batch_rows": micro,
        "grad_accum": rows // micro,
        "device": _device_name(device),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "torch": torch.__version__,
        "config": asdict(c),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_csv(out_dir / "curve.csv", pd.DataFrame(curve, columns=list(CURVE_COLUMNS)))
        check_curve(out_dir / "curve.csv", len(curve))
        write_json(out_dir / "result.json", result)  # last: a readable result.json means "finished"
        if read_result(out_dir / "result.json")[0] is None:
            (out_dir / "result.json").unlink(missing_ok=True)
            raise OSError(f"{out_dir / 'result.json'}: does not read back as a result after writing")
    return result


def check_curve(path: Path, rows: int) -> None:
    """Raise OSError unless ``path`` reads back as a CSV of ``rows`` rows with the curve's columns."""
    try:
        back = pd.read_csv(path)
    except (OSError, ValueError) as err:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise OSError(f"{path}: unreadable after writing ({type(err).__name__}: {err})") from None
    if len(back) != rows or list(back.columns) != list(CURVE_COLUMNS):
        raise OSError(f"{path}: reads back {len(back)} of {rows} rows, columns {', '.join(map(str, back.columns))}")


def matmul_flops_per_token(c: TrainConfig) -> float:
    """Training FLOPs per token of every matmul: DeepSeek's M (``models.flops``: blocks and
    attention scores; for an MoE with its k active experts and router) plus 6·d·V for the
    output layer, which dominates tiny models."""
    return model_config(c).flops_per_token(c.seq_len, kind="deepseek") + flops.six_n(c.n_embd * c.vocab_size)


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor, micro: int,
          grad_clip: float, device: torch.device, autocast) -> float:
    """One optimizer step over ``batch`` in micro-batches of ``micro`` rows; returns the batch's mean loss."""
    accum = batch.shape[0] // micro
    total = 0.0
    for k in range(accum):
        part = batch[k * micro:(k + 1) * micro].to(device, non_blocking=True)
        with autocast:
            _, loss = model(*_inputs_targets(part))
        (loss / accum).backward()
        total += loss.item() / accum
    if not math.isfinite(total):
        optimizer.zero_grad(set_to_none=True)
        return total
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def _inputs_targets(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed rows of T + 1 tokens -> inputs rows[:, :-1] and next-token targets rows[:, 1:]."""
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def _divisor_at_most(n: int, cap: int) -> int:
    """Largest divisor of n that is <= cap (at least 1)."""
    return max(d for d in range(1, max(1, min(n, cap)) + 1) if n % d == 0)


def device_peak_flops(device: torch.device) -> float:
    """Peak FLOP/s of ``device``: the GPU table, or measured fp32 matmul throughput on CPU (0 if unknown)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((peak for key, peak in GPU_PEAK_FLOPS if key in name), 0.0)
    return _measured_cpu_flops()


_CPU_FLOPS: dict[int, float] = {}


def _measured_cpu_flops(n: int = 384, repeats: int = 8) -> float:
    """Best-of-``repeats`` fp32 matmul FLOP/s on the current thread count (cached per process)."""
    threads = torch.get_num_threads()
    if threads not in _CPU_FLOPS:
        a, b = torch.randn(n, n), torch.randn(n, n)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        _CPU_FLOPS[threads] = 2 * n**3 / best
    return _CPU_FLOPS[threads]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
