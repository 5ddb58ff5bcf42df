"""``python -m training.sweep`` -- plan, run and collect a learning-rate x batch-size sweep.

    plan SPEC --out DIR          expand a TOML/YAML spec into runs with stable ids and
                                 prepare the data once (tokenizer, packed sequences)
    run DIR                      train every pending run: supervised local worker processes
                                 (--executor local --workers K; a dead worker is replaced and
                                 its run requeued) or Slurm jobs via submitit (--executor
                                 slurm); resumable at any time; --retry-failed retrains failed runs
    worker DIR                   drain the plan in this process; start one per machine
                                 or GPU on a shared file system, lock files keep them apart
    status DIR                   how many runs are finished, running, failed, unreadable, pending
                                 (and which failed or have an unreadable result.json)
    collect DIR --out FILE       the run table for bayes_scaling.fit, in the one format FILE's
                                 suffix names (.csv or .parquet), written atomically

Run states are ``training.worker``'s: a run is finished only when its result.json reads back
as a result; an unreadable one (truncated, empty, ``{}``) is retrained by ``run``; a failed
one (error.json) waits for ``--retry-failed``. Exit codes: 0 (``run``: every planned run
finished; ``worker``: none failed), 1 otherwise, 2 bad input (one ``error:`` line, nothing
written), 130 Ctrl-C (finished runs kept).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bayes_scaling.errors import ArgumentParser, InputError, guarded
from bayes_scaling.io import check_out_dir, write_csv, write_parquet
from training.artifacts import read_result, stale_temps
from training.claims import DEFAULT_STALE_AFTER_S
from training.data import TokenData
from training.plan import Plan, build_plan, load_spec, read_plan, write_plan
from training.pool import PoolReport, run_pool
from training.worker import ERROR_FILE, RESULT_FILE, STATES, drain, is_finished, run_dir, run_state, stays_failed

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
  python -m training.sweep status runs/tiny                   # failed runs: run --retry-failed
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

    def add_retry(s: argparse.ArgumentParser) -> None:
        s.add_argument("--retry-failed", action="store_true",
                       help="also retrain the failed runs (error.json), once each; a success removes the error.json")

    s = sub.add_parser("run", help="train every pending run (supervised local workers or Slurm)",
                       description="Train every pending run; finished runs are never re-run, so rerun after any crash. "
                                   "Failed runs are retrained only with --retry-failed. Exit code 0 iff every planned "
                                   "run is finished at the end.")
    s.add_argument("plan_dir", type=Path, metavar="DIR")
    s.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: worker processes on this machine; slurm: --workers jobs submitted with submitit")
    s.add_argument("--workers", type=int, default=1,
                   help="parallel workers (processes or Slurm jobs; default 1); local: never more than runs left to train")
    s.add_argument("--max-restarts", type=int, default=3, metavar="N",
                   help="local: replace at most N dead worker processes in all (default 3); a dead worker's run "
                        "is requeued either way")
    add_retry(s)
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
    add_retry(s)
    add_runtime(s)

    s = sub.add_parser("status", help="count finished, running, failed, unreadable and pending runs",
                       description="Count the plan's runs by state; list the failed ones (error.json) and those whose "
                                   "result.json does not read back (`run` retrains them).")
    s.add_argument("plan_dir", type=Path, metavar="DIR")

    s = sub.add_parser("collect", help="write the run table (.csv or .parquet)",
                       description="Gather every finished run into the run table bayes_scaling.fit reads; name the "
                                   "runs left out (failed, unreadable result.json, not finished) on stderr.")
    s.add_argument("plan_dir", type=Path, metavar="DIR")
    s.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="runs.csv or runs.parquet: the suffix picks the one format written (atomically; temp files "
                        "of an earlier interrupted collect are removed)")
    return p


# -- plan ---------------------------------------------------------------------------------------------------------

def cmd_plan(args: argparse.Namespace) -> int:
    plan = build_plan(load_spec(args.spec), source=str(args.spec), data_files=args.data_files)
    if args.dry_run:
        print(describe_plan(plan, args.assume_mfu))
        return 0
    check_out_dir(args.out)
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


def run_states(plan_dir: Path, plan: Plan, stale_after: float = DEFAULT_STALE_AFTER_S) -> dict[str, list[tuple[str, str]]]:
    """``state -> [(run_id, detail), ...]`` in plan order: finished / running (a live lock) / failed (error.json:
    detail is its error) / unreadable (a result.json that does not read back: detail says why; `run` retrains it,
    so it is counted apart from pending) / pending."""
    states: dict[str, list[tuple[str, str]]] = {k: [] for k in STATES}
    for r in plan.runs:
        state, detail = run_state(plan_dir, r.run_id, stale_after)
        states[state].append((r.run_id, detail))
    return states


def _claimable(plan_dir: Path, plan: Plan, stale_after: float, retry_before: float | None) -> int:
    """How many runs a worker started now could train (pending, unreadable, or failed and retried)."""
    n = 0
    for r in plan.runs:
        state, _ = run_state(plan_dir, r.run_id, stale_after)
        n += state in ("pending", "unreadable") or (state == "failed" and not stays_failed(plan_dir, r.run_id, retry_before))
    return n


def cmd_run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be at least 1")
    if args.max_restarts < 0:
        raise InputError(f"--max-restarts {args.max_restarts}: must be at least 0")
    plan = read_plan(args.plan_dir)
    TokenData(args.plan_dir / "data")  # a plan without its data is bad input here, not a crash in every worker
    overrides = _overrides(args)
    retry_before = time.time() if args.retry_failed else None
    kwargs = dict(runtime_overrides=overrides, stale_after=args.stale_after, retry_before=retry_before)
    report = PoolReport()
    if args.executor == "local":
        claimable = lambda: _claimable(args.plan_dir, plan, args.stale_after, retry_before)  # noqa: E731
        with _progress(args.plan_dir, plan) as (tick, say):  # no more workers than runs to train: each imports torch
            report = run_pool(args.plan_dir, min(args.workers, claimable()), kwargs, max_restarts=args.max_restarts,
                              tick=tick, say=say, runs_left=lambda: claimable() > 0)
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
            with _progress(args.plan_dir, plan) as (tick, _):
                while not all(j.done() for j in jobs):
                    time.sleep(0.5)
                    tick()
            for job in jobs:
                job.result()
    states = run_states(args.plan_dir, plan, args.stale_after)
    print("runs: " + ", ".join(f"{len(v)} {k}" for k, v in states.items()))
    if report.deaths:
        print(report.summary())
    if states["failed"]:
        ids = [rid for rid, _ in states["failed"]]
        print(f"{len(ids)} run(s) failed ({_listing(ids)}): see {args.plan_dir}/runs/<id>/{ERROR_FILE}; "
              f"`run --retry-failed` retries them", file=sys.stderr)
    return 0 if len(states["finished"]) == len(plan.runs) else 1


def _listing(ids: list[str], most: int = 8) -> str:
    """Run ids joined by commas, the first ``most`` and a count of the rest."""
    return ", ".join(ids[:most]) + (f", … {len(ids) - most} more" if len(ids) > most else "")


@contextmanager
def _progress(plan_dir: Path, plan: Plan) -> Iterator[tuple[Callable[[], None], Callable[[str], None]]]:
    """A tqdm bar of finished runs: yields ``(tick, say)``; ``tick()`` updates the bar, ``say(line)`` prints above it."""
    from tqdm import tqdm

    done: set[str] = set()

    def finished() -> int:  # a finished run stays finished: only the others are read again
        done.update(r.run_id for r in plan.runs if r.run_id not in done and is_finished(plan_dir, r.run_id))
        return len(done)

    with tqdm(total=len(plan.runs), initial=finished(), unit="run", desc="sweep", dynamic_ncols=True) as bar:
        def tick() -> None:
            if (n := finished()) != bar.n:
                bar.update(n - bar.n)

        yield tick, lambda line: bar.write(line, file=sys.stderr)
        tick()


def cmd_worker(args: argparse.Namespace) -> int:
    if args.max_runs is not None and args.max_runs < 1:
        raise InputError(f"--max-runs {args.max_runs}: must be at least 1")
    counts = drain(args.plan_dir, runtime_overrides=_overrides(args), stale_after=args.stale_after,
                   max_runs=args.max_runs, retry_before=time.time() if args.retry_failed else None)
    print(f"worker: {counts['finished']} run(s) trained, {counts['failed']} failed")
    if counts["not_retried"]:
        print(f"note: {counts['not_retried']} failed run(s) left alone; `worker --retry-failed` retries them",
              file=sys.stderr)
    return 0 if counts["failed"] == 0 else 1


def cmd_status(args: argparse.Namespace) -> int:
    states = run_states(args.plan_dir, read_plan(args.plan_dir))
    print(", ".join(f"{len(v)} {k}" for k, v in states.items()))
    for rid, error in states["failed"]:
        print(f"failed: {run_dir(args.plan_dir, rid) / ERROR_FILE}: {error}")
    for rid, why in states["unreadable"]:
        print(f"unreadable: {run_dir(args.plan_dir, rid) / RESULT_FILE} ({why}); `run` retrains it")
    return 0


# -- collect ------------------------------------------------------------------------------------------------------

def collect(plan_dir: str | Path, note: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> pd.DataFrame:
    """The run table of every finished run of the plan (plan order); ``note`` gets one line per run left out
    because it failed or its result.json does not read back, and one for the runs not finished yet (no line
    when there is no finished run at all: that is an InputError)."""
    plan_dir = Path(plan_dir)
    plan = read_plan(plan_dir)
    rows, notes, unfinished = [], [], 0
    for r in plan.runs:
        result, _ = read_result(run_dir(plan_dir, r.run_id) / RESULT_FILE)
        if result is not None:
            rows.append({k: result.get(k) for k in TABLE_COLUMNS})
            continue
        state, detail = run_state(plan_dir, r.run_id)
        if state == "failed":
            notes.append(f"note: {run_dir(plan_dir, r.run_id) / ERROR_FILE}: failed ({detail}); not collected — "
                         "`run --retry-failed` retrains it")
        elif state == "unreadable":
            notes.append(f"note: {run_dir(plan_dir, r.run_id) / RESULT_FILE}: unreadable ({detail}); not collected — "
                         "`run` retrains it")
        else:
            unfinished += 1
    if not rows:
        raise InputError(f"{plan_dir}: no finished runs to collect; run `python -m training.sweep run {plan_dir}`")
    if unfinished:
        notes.append(f"note: {unfinished} run(s) not finished; `run {plan_dir}` trains them")
    for line in notes:
        note(line)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table["loss"] = table["loss"].astype(float)  # JSON NaN of a diverged run stays NaN
    return table


#: The formats ``collect --out`` writes, by suffix.
WRITERS = {".csv": write_csv, ".parquet": write_parquet}


def _check_out_file(out: Path) -> None:
    """``--out`` must name a .csv or .parquet file that can be created (no directory in the way)."""
    if out.suffix.lower() not in WRITERS:
        raise InputError(f"--out {out}: expected a .csv or .parquet file (the suffix picks the one format written)")
    if out.is_dir():
        raise InputError(f"--out {out}: is a directory, expected a .csv or .parquet file")
    check_out_dir(out.parent, flag="--out")  # names the directory part of --out


@contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` while the block runs, so two collects into one directory take
    turns (and a temp file found while holding it is stale); where the file system has no flock, no lock."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock


def cmd_collect(args: argparse.Namespace) -> int:
    out: Path = args.out
    _check_out_file(out)
    plan = read_plan(args.plan_dir)
    table = collect(args.plan_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _directory_lock(out.parent):
        stale = stale_temps(out)
        for tmp in stale:  # left by a collect killed mid-write
            tmp.unlink(missing_ok=True)
        WRITERS[out.suffix.lower()](out, table)
    if stale:
        print(f"note: removed {len(stale)} temp file(s) of an interrupted collect: {', '.join(p.name for p in stale)}",
              file=sys.stderr)
    diverged = int((table["status"] == "diverged").sum())
    print(f"collected {len(table)} of {len(plan.runs)} runs ({diverged} diverged) -> {out}")
    from bayes_scaling.inputs.runtable import validate_runs

    try:
        validate_runs(table, source=str(out))
    except InputError as err:
        print(f"note: bayes_scaling.fit will refuse this table yet: {err}", file=sys.stderr)
    return 0


COMMANDS = {"plan": cmd_plan, "run": cmd_run, "worker": cmd_worker, "status": cmd_status, "collect": cmd_collect}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(lambda: COMMANDS[args.command](args), interrupted="interrupted; finished runs are kept; rerun to resume")


if __name__ == "__main__":
    sys.exit(main())
