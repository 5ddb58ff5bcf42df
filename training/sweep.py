"""``python -m training.sweep`` -- plan, run and collect a learning-rate x batch-size sweep.

    plan SPEC --out DIR          expand a TOML/YAML spec into runs with stable ids and
                                 prepare the data once (tokenizer, packed sequences)
    run DIR                      train every pending run: a local process pool
                                 (--executor local --workers K) or Slurm jobs via
                                 submitit (--executor slurm); resumable at any time
    worker DIR                   drain the plan in this process; start one per machine
                                 or GPU on a shared file system, lock files keep them apart
    status DIR                   how many runs are finished, running, failed, pending
    collect DIR --out runs.csv   the run table (CSV + Parquet) for bayes_scaling.fit
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from bayes_scaling.errors import ArgumentParser, InputError, guarded
from bayes_scaling.io import write_csv, write_parquet
from training.claims import DEFAULT_STALE_AFTER_S, is_stale
from training.plan import Plan, build_plan, load_spec, read_plan, write_plan
from training.worker import drain, is_finished, run_dir

EPILOG = """\
a spec (TOML or YAML; see examples/ci_tiny.toml, examples/cpu_demo.toml):
  [data]     source = "synthetic" | "files" | "hf", files = [...], tokenizer = "bpe:512" | "gpt2",
             seq_len, val_tokens, seed
  [model]    shapes = [[n_layer, n_head, n_embd], ...]  or  params = [2e4, 1e5] (via models.ladder)
  [grid]     one of tokens | tokens_per_param | flops = [...]   (D)
             batch_tokens = [1024, 2048]   lr = "2^-10:2^-6:0.5"   seeds = [0]
  [train]    schedule = "cosine" | "wsd" | "constant", warmup_frac, weight_decay, grad_clip, ...
  [runtime]  device, threads, compile, micro_batch_tokens, eval_every, ...

a typical session:
  python -m training.sweep plan examples/ci_tiny.toml --out runs/tiny --dry-run
  python -m training.sweep plan examples/ci_tiny.toml --out runs/tiny
  python -m training.sweep run runs/tiny --workers 2          # Ctrl-C / kill: rerun to resume
  python -m training.sweep collect runs/tiny --out runs/tiny/runs.csv
  python -m bayes_scaling.fit --data runs/tiny/runs.csv --no-plots

several machines on a shared file system: `plan` once, then on each machine
  python -m training.sweep worker runs/big --device cuda:0
Slurm: python -m training.sweep run runs/big --executor slurm --workers 16 --slurm-partition gpu --gpus 1
"""

#: Run-table columns, in order: the contract first, then the extras.
TABLE_COLUMNS = ("run_id", "N", "D", "B", "lr", "loss", "status", "seed", "seq_len", "n_layer", "n_head", "n_embd",
                 "vocab_size", "schedule", "steps", "flops", "tokens_per_s", "mfu", "wall_s", "train_loss",
                 "N_total", "n_experts", "top_k", "epochs", "device")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m training.sweep", description=__doc__.split("\n\n")[0].split("--", 1)[1].strip(),
                      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser, metavar="COMMAND")

    s = sub.add_parser("plan", help="expand a spec into a plan directory (runs + prepared data)",
                       description="Expand SPEC into runs with stable ids; prepare the data once into DIR/data.")
    s.add_argument("spec", type=Path, metavar="SPEC", help="sweep spec, .toml or .yaml")
    s.add_argument("--out", type=Path, required=True, metavar="DIR", help="plan directory (created, or extended)")
    s.add_argument("--data-files", nargs="+", metavar="FILE",
                   help="local .txt/.jsonl/.parquet documents (overrides [data]; source becomes 'files')")
    s.add_argument("--dry-run", action="store_true", help="print the runs, total FLOPs and estimated time; write nothing")
    s.add_argument("--assume-mfu", type=float, default=None,
                   help="MFU for the time estimate (default 0.4 on GPU, 0.1 on CPU where tiny models are overhead-bound)")

    def add_runtime(s: argparse.ArgumentParser) -> None:
        g = s.add_argument_group("runtime (override the plan's [runtime])")
        g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the plan's, else cuda if available)")
        g.add_argument("--threads", type=int, help="CPU threads per worker process (default 1)")
        g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model")
        g.add_argument("--stale-after", type=float, default=DEFAULT_STALE_AFTER_S, metavar="S",
                       help=f"break a lock whose heartbeat is older than S seconds (default {DEFAULT_STALE_AFTER_S:g}); "
                            "a lock of a dead process on this host is broken at once")

    s = sub.add_parser("run", help="train every pending run (local process pool or Slurm)",
                       description="Train every pending run; finished runs are never re-run, so rerun after any crash.")
    s.add_argument("plan_dir", type=Path, metavar="DIR")
    s.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: a process pool on this machine; slurm: --workers jobs submitted with submitit")
    s.add_argument("--workers", type=int, default=1, help="parallel workers (processes or Slurm jobs; default 1)")
    add_runtime(s)
    g = s.add_argument_group("slurm (--executor slurm)")
    g.add_argument("--cluster", choices=("slurm", "local", "debug"), default="slurm",
                   help="submitit backend: slurm, or local/debug to try the path without a cluster")
    g.add_argument("--slurm-partition", help="partition to submit to")
    g.add_argument("--timeout-min", type=int, default=240, help="job time limit in minutes (default 240)")
    g.add_argument("--gpus", type=int, default=0, help="GPUs per job (default 0)")
    g.add_argument("--cpus", type=int, default=2, help="CPUs per job (default 2)")
    g.add_argument("--no-wait", dest="wait", action="store_false", help="submit and return without waiting")

    s = sub.add_parser("worker", help="drain the plan in this process (one per machine/GPU)",
                       description="Claim pending runs one at a time (lock files) and train them until none is left.")
    s.add_argument("plan_dir", type=Path, metavar="DIR")
    s.add_argument("--max-runs", type=int, help="stop after this many runs")
    add_runtime(s)

    s = sub.add_parser("status", help="count finished, running, failed and pending runs",
                       description="Count the plan's runs by state.")
    s.add_argument("plan_dir", type=Path, metavar="DIR")

    s = sub.add_parser("collect", help="write the run table (CSV + Parquet)",
                       description="Gather every finished run into the run table bayes_scaling.fit reads.")
    s.add_argument("plan_dir", type=Path, metavar="DIR")
    s.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="runs.csv (a .parquet twin is written beside it) or runs.parquet (and a .csv twin)")
    return p


# -- plan ---------------------------------------------------------------------------------------------------------

def cmd_plan(args: argparse.Namespace) -> int:
    plan = build_plan(load_spec(args.spec), source=str(args.spec), data_files=args.data_files)
    if args.dry_run:
        print(describe_plan(plan, args.assume_mfu))
        return 0
    t0 = time.perf_counter()
    data = write_plan(plan, args.out)
    total = len(read_plan(args.out).runs)
    print(f"planned {len(plan.runs)} runs ({total} in {args.out}); data: {data.meta['train_tokens']:,} train / "
          f"{data.meta['val_tokens']:,} val tokens, vocab {data.vocab_size} ({time.perf_counter() - t0:.1f} s)")
    most = plan.max_tokens / data.train_tokens
    if most > 1:
        print(f"note: the largest D is {most:.1f} epochs of the training data (runs repeat data)")
    return 0


def describe_plan(plan: Plan, assume_mfu: float | None = None) -> str:
    """One line per run, then totals and an estimated time on this machine's device."""
    import torch

    from training.trainer import device_peak_flops, matmul_flops_per_token

    lines = [f"{'run_id':<12} {'n_layer':>7} {'n_embd':>6} {'N':>10} {'D':>12} {'B':>7} {'lr':>10} {'seed':>4} {'FLOPs':>9}"]
    for r in plan.runs:
        c = r.config
        lines.append(f"{r.run_id:<12} {c.n_layer:>7} {c.n_embd:>6} {r.N:>10,} {c.tokens:>12,} {c.batch_tokens:>7} "
                     f"{c.lr:>10.3g} {c.seed:>4} {r.flops:>9.2e}")
    device = torch.device(plan.runtime.device if plan.runtime.device != "auto"
                          else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(plan.runtime.threads)
    peak = plan.runtime.peak_flops or device_peak_flops(device)
    mfu = assume_mfu or (0.4 if device.type == "cuda" else 0.1)
    work = sum(r.config.tokens * matmul_flops_per_token(r.config) for r in plan.runs)
    n_ids = len({(r.N, r.config.tokens) for r in plan.runs})
    lines.append(f"{len(plan.runs)} runs in {n_ids} (N, D) cells; 6ND total {sum(r.flops for r in plan.runs):.3g} FLOPs, "
                 f"{work:.3g} with attention and the output layer")
    if peak:
        hours = work / (peak * mfu) / 3600
        lines.append(f"estimated {hours * 60:.1f} min on one {device.type} worker ({peak:.3g} FLOP/s peak x MFU {mfu:g});"
                     " divide by the number of workers")
    return "\n".join(lines)


# -- run / worker / status ----------------------------------------------------------------------------------------

def _overrides(args: argparse.Namespace) -> dict:
    out = {k: getattr(args, k) for k in ("device", "threads", "compile") if getattr(args, k) is not None}
    if out.get("threads", 1) < 1:
        raise InputError(f"--threads {out['threads']}: must be at least 1")
    return out


def count_states(plan_dir: Path, plan: Plan, stale_after: float = DEFAULT_STALE_AFTER_S) -> dict[str, int]:
    """finished / running (a live lock) / failed (error.json, no result) / pending."""
    counts = {"finished": 0, "running": 0, "failed": 0, "pending": 0}
    for r in plan.runs:
        lock = plan_dir / "locks" / f"{r.run_id}.lock"
        if is_finished(plan_dir, r.run_id):
            counts["finished"] += 1
        elif lock.exists() and not is_stale(lock, stale_after):
            counts["running"] += 1
        elif (run_dir(plan_dir, r.run_id) / "error.json").exists():
            counts["failed"] += 1
        else:
            counts["pending"] += 1
    return counts


def cmd_run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be at least 1")
    plan = read_plan(args.plan_dir)
    overrides = _overrides(args)
    kwargs = dict(runtime_overrides=overrides, stale_after=args.stale_after)
    if args.executor == "local":
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
            futures = [pool.submit(drain, str(args.plan_dir), **kwargs) for _ in range(args.workers)]
            _follow(args.plan_dir, plan, lambda: all(f.done() for f in futures))
            for f in futures:
                f.result()
    else:
        import submitit

        executor = submitit.AutoExecutor(folder=args.plan_dir / "submitit", cluster=args.cluster)
        executor.update_parameters(timeout_min=args.timeout_min, gpus_per_node=args.gpus, cpus_per_task=args.cpus,
                                   name="training.sweep", slurm_partition=args.slurm_partition)
        jobs = [executor.submit(drain, str(args.plan_dir), **kwargs) for _ in range(args.workers)]
        print(f"submitted {len(jobs)} {args.cluster} job(s): {', '.join(str(j.job_id) for j in jobs)}; "
              f"logs in {args.plan_dir / 'submitit'}")
        if not args.wait:
            return 0
        if args.cluster == "debug":  # debug jobs run in this process when their result is asked for
            for job in jobs:
                job.result()
        else:
            _follow(args.plan_dir, plan, lambda: all(j.done() for j in jobs))
            for job in jobs:
                job.result()
    counts = count_states(args.plan_dir, plan, args.stale_after)
    print("runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if counts["failed"]:
        print(f"some runs failed: see {args.plan_dir}/runs/<id>/error.json; `run` again retries them", file=sys.stderr)
    return 0 if counts["finished"] == len(plan.runs) else 1


def _follow(plan_dir: Path, plan: Plan, all_done) -> None:
    """A tqdm bar of finished runs, polled until ``all_done()``."""
    from tqdm import tqdm

    total = len(plan.runs)
    finished = lambda: sum(is_finished(plan_dir, r.run_id) for r in plan.runs)  # noqa: E731
    with tqdm(total=total, initial=finished(), unit="run", desc="sweep", dynamic_ncols=True) as bar:
        while not all_done():
            time.sleep(0.5)
            if (n := finished()) != bar.n:
                bar.update(n - bar.n)
        bar.update(finished() - bar.n)


def cmd_worker(args: argparse.Namespace) -> int:
    counts = drain(args.plan_dir, runtime_overrides=_overrides(args), stale_after=args.stale_after,
                   max_runs=args.max_runs)
    print(f"worker: {counts['finished']} run(s) trained, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


def cmd_status(args: argparse.Namespace) -> int:
    counts = count_states(args.plan_dir, read_plan(args.plan_dir))
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


# -- collect ------------------------------------------------------------------------------------------------------

def collect(plan_dir: str | Path) -> pd.DataFrame:
    """The run table of every finished run of the plan (plan order)."""
    plan_dir = Path(plan_dir)
    plan = read_plan(plan_dir)
    rows = []
    for r in plan.runs:
        path = run_dir(plan_dir, r.run_id) / "result.json"
        if path.exists():
            result = json.loads(path.read_text())
            rows.append({k: result.get(k) for k in TABLE_COLUMNS})
    if not rows:
        raise InputError(f"{plan_dir}: no finished runs to collect; run `python -m training.sweep run {plan_dir}`")
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table["loss"] = table["loss"].astype(float)  # JSON NaN of a diverged run stays NaN
    return table


def cmd_collect(args: argparse.Namespace) -> int:
    table = collect(args.plan_dir)
    plan = read_plan(args.plan_dir)
    out = args.out
    csv_path, parquet_path = (out.with_suffix(".csv"), out) if out.suffix == ".parquet" else (out, out.with_suffix(".parquet"))
    write_csv(csv_path, table)
    write_parquet(parquet_path, table)
    diverged = int((table["status"] == "diverged").sum())
    print(f"collected {len(table)} of {len(plan.runs)} runs ({diverged} diverged) -> {csv_path}, {parquet_path}")
    if len(table) < len(plan.runs):
        print(f"note: {len(plan.runs) - len(table)} run(s) not finished; `run {args.plan_dir}` trains them", file=sys.stderr)
    from bayes_scaling.inputs.runtable import validate_runs

    try:
        validate_runs(table, source=str(csv_path))
    except InputError as err:
        print(f"note: bayes_scaling.fit will refuse this table yet: {err}", file=sys.stderr)
    return 0


COMMANDS = {"plan": cmd_plan, "run": cmd_run, "worker": cmd_worker, "status": cmd_status, "collect": cmd_collect}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(lambda: COMMANDS[args.command](args), interrupted="interrupted; finished runs are kept; rerun to resume")


if __name__ == "__main__":
    sys.exit(main())
