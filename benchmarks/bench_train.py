"""Training throughput of the GPT and the fraction of the machine's matmul peak it reaches.

    python benchmarks/bench_train.py [--steps 6] [--json out.json]
    python benchmarks/bench_train.py --device cuda --dtype bf16 --compile --sizes 124M   # on a GPU

Part 1 measures the peak: the best of several large square fp32 matmuls on one thread
(or in the given dtype on the GPU). Part 2 times full training steps (forward, backward,
AdamW) of three model sizes and reports tokens/s and model FLOP utilisation,

    MFU = tokens/s × (6·N + 6·d·V + 12·L·d·T) / peak

i.e. the weight matmuls (6N), the vocabulary projection and causal-free attention
(PaLM's accounting), against the peak measured in the same run. This task's machine has
no GPU: the GPU MFU of a ~124M model (bf16, torch.compile) needs one.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from models.gpt import GPT, GPTConfig

SIZES = {  # name: (n_layer, n_embd, n_head, seq_len, micro_batch)
    "tiny": (2, 256, 4, 256, 8),
    "small": (4, 512, 8, 256, 8),
    "medium": (6, 768, 12, 512, 4),
    "124M": (12, 768, 12, 1024, 16),
}
VOCAB = 8192


def matmul_peak(device: str, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step_throughput(name: str, device: str, dtype: torch.dtype, steps: int, compile_: bool) -> dict:
    L, d, h, T, mb = SIZES[name]
    cfg = GPTConfig(vocab_size=VOCAB, n_layer=L, n_head=h, n_embd=d, block_size=T)
    model = GPT(cfg).to(device)
    opt = model.configure_optimizer(lr=1e-3, weight_decay=0.1)
    fwd = torch.compile(model) if compile_ else model
    idx = torch.randint(0, VOCAB, (mb, T + 1), device=device)
    autocast = torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32)
    times = []
    for i in range(steps + 2):  # two warm-up steps
        _sync(device)
        t0 = time.perf_counter()
        with autocast:
            _, loss = fwd(idx[:, :-1], idx[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    tokens = mb * T
    flops_per_token = 6 * cfg.num_params() + 6 * d * VOCAB + 12 * L * d * T
    tok_s = tokens / (sum(times) / len(times))
    return {"size": name, "params": cfg.num_params(), "seq_len": T, "tokens_per_step": tokens,
            "tokens_per_s": tok_s, "flops_per_token": flops_per_token, "achieved_flops": tok_s * flops_per_token}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--sizes", default="tiny,small,medium", help=f"comma list of {','.join(SIZES)}")
    p.add_argument("--steps", type=int, default=6, help="timed steps per size")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(1)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    peak = matmul_peak(args.device, dtype)
    print(f"measured {args.dtype} matmul peak ({args.device}, {torch.get_num_threads()} thread(s)): {peak / 1e9:.1f} GFLOP/s")
    rows = []
    for name in args.sizes.split(","):
        r = step_throughput(name, args.device, dtype, args.steps, args.compile)
        r["mfu"] = r["achieved_flops"] / peak
        rows.append(r)
        print(f"  {name:<7} N={r['params'] / 1e6:6.2f}M  T={r['seq_len']:4d}  {r['tokens_per_s']:9.0f} tokens/s  "
              f"{r['achieved_flops'] / 1e9:6.1f} GFLOP/s  = {r['mfu']:.0%} of peak")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_flops": peak, "device": args.device, "dtype": args.dtype, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
