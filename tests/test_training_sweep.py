"""Sweep plan / run / worker / collect: stable ids, resume after kill -9, disjoint workers, run table,
unreadable results, dead workers, failed runs, one-format atomic collect, bad input."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
from bayes_scaling.inputs.datasets import load_runs  # noqa: E402
from bayes_scaling.inputs.runtable import best_runs  # noqa: E402
import training.trainer  # noqa: E402
import training.worker  # noqa: E402
from training import pool  # noqa: E402
from training import sweep  # noqa: E402
from training.claims import is_stale, release, try_claim  # noqa: E402
from training.events import log_event  # noqa: E402
from training.plan import build_plan, load_spec, read_plan  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
[data]
synthetic_docs = 300
tokenizer = "bpe:300"
seq_len = 16
val_tokens = 256

[model]
shapes = [[1, 2, 16], [1, 2, 32]]

[grid]
tokens = [1024]
batch_tokens = [128, 256]
lr = "2^-7:2^-5:2"
seeds = [0]

[runtime]
threads = 1
"""


#: SPEC with two token budgets per size: a table best_runs (and the fit) can use (c_D needs >= 2 D per N).
SPEC_2D = SPEC.replace("tokens = [1024]", "tokens = [512, 1024]")
#: SPEC with runs long enough (a couple of seconds each) to kill a worker in the middle of one, and to
#: interrupt a sweep between its first finished run and its last, even on a loaded machine (at 16,384
#: tokens a whole sweep once finished before a CI run under load saw its first result).
SPEC_SLOW = SPEC.replace("tokens = [1024]", "tokens = [65536]")


def write_spec(tmp_path: Path, text: str = SPEC, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m training.sweep ARGS`` in a subprocess (run from ``cwd``: the package is installed)."""
    return subprocess.run([sys.executable, "-m", "training.sweep", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=os.environ | {"PYTHONUNBUFFERED": "1"})


def events(plan_dir: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()[1:3]) for line in (plan_dir / "events.log").read_text().splitlines()]


def events_by_pid(plan_dir: Path) -> list[tuple[str, str, int]]:
    """(event, run_id, pid) of every events.log line."""
    rows = [line.split() for line in (plan_dir / "events.log").read_text().splitlines()]
    return [(r[1], r[2], int(r[4])) for r in rows]


def planned(tmp_path: Path, text: str = SPEC) -> Path:
    """A fresh plan directory of ``text`` (no run trained)."""
    plan_dir = tmp_path / "plan"
    assert sweep.main(["plan", str(write_spec(tmp_path, text)), "--out", str(plan_dir)]) == 0
    return plan_dir


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: (size, mtime in ns), to tell that a command wrote nothing."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_run_ids_are_stable_and_change_with_the_run(tmp_path):
    a = build_plan(load_spec(write_spec(tmp_path)))
    b = build_plan(load_spec(write_spec(tmp_path, SPEC.replace("threads = 1", "threads = 2"), "b.toml")))
    c = build_plan(load_spec(write_spec(tmp_path, SPEC.replace('"2^-7:2^-5:2"', '"2^-7:2^-5:1"'), "c.toml")))
    ids = [r.run_id for r in a.runs]
    assert len(ids) == 2 * 2 * 2 == len(set(ids))
    assert ids == [r.run_id for r in b.runs]  # runtime settings are not part of a run
    by_lr = {(r.N, r.config.batch_tokens, r.config.lr): r.run_id for r in c.runs}
    for r in a.runs:  # 2^-7 and 2^-5 keep their ids; the new 2^-6 runs get new ones
        assert by_lr[(r.N, r.config.batch_tokens, r.config.lr)] == r.run_id
    assert len(set(by_lr.values()) - set(ids)) == 4
    yaml_spec = tmp_path / "spec.yaml"
    import yaml

    yaml_spec.write_text(yaml.safe_dump(load_spec(tmp_path / "spec.toml")))
    assert [r.run_id for r in build_plan(load_spec(yaml_spec)).runs] == ids


def test_moe_runs_get_their_own_ids_and_active_n(tmp_path):
    """[train] n_experts = E plans MoE runs: new ids (the dense ids do not move) and N the active count."""
    dense = build_plan(load_spec(write_spec(tmp_path)))
    moe = build_plan(load_spec(write_spec(tmp_path, SPEC + "\n[train]\nn_experts = 4\ntop_k = 1\n", "moe.toml")))
    explicit_dense = build_plan(load_spec(write_spec(tmp_path, SPEC + "\n[train]\nn_experts = 0\n", "d.toml")))
    assert [r.run_id for r in explicit_dense.runs] == [r.run_id for r in dense.runs]
    assert not {r.run_id for r in moe.runs} & {r.run_id for r in dense.runs}
    by_shape = {(r.config.n_embd, r.config.lr, r.config.batch_tokens): r for r in dense.runs}
    for r in moe.runs:
        d = r.config.n_embd
        assert r.config.n_experts == 4 and r.N == by_shape[(d, r.config.lr, r.config.batch_tokens)].N + 4 * d  # + router
        

def test_d_is_rounded_so_every_batch_size_sees_the_same_tokens(tmp_path):
    spec = SPEC.replace("tokens = [1024]", "tokens_per_param = [2.0]").replace("[128, 256]", "[128, 384]")
    plan = build_plan(load_spec(write_spec(tmp_path, spec)))
    for r in plan.runs:
        assert r.config.tokens % 384 == 0 and r.config.tokens % 128 == 0
        assert abs(r.config.tokens - 2.0 * r.N) <= 384 / 2 + 1e-9


@pytest.mark.parametrize("edit, message", [
    (("lr = \"2^-7:2^-5:2\"", "lr = [-0.001]"), "lr: expected positive numbers"),
    (("seeds = [0]", "seeds = [0]\nepochs = 3"), "[grid]: unknown key(s) epochs"),
    (("[runtime]", "[optimiser]"), "unknown section(s) optimiser"),
    (("batch_tokens = [128, 256]", "batch_tokens = [100]"), "not a multiple of data.seq_len"),
    (("[data]", "[data]\nweight_decay = 0.1"), "[data]: unknown key(s) weight_decay"),
])
def test_bad_spec_is_one_error_line_exit_2(tmp_path, capsys, edit, message):
    spec = write_spec(tmp_path, SPEC.replace(*edit))
    assert sweep.main(["plan", str(spec), "--out", str(tmp_path / "plan")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {spec}: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "plan").exists()


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    out = cli("plan", str(write_spec(tmp_path, SPEC.replace("lr = \"2^-7:2^-5:2\"", "lr = [-0.001]"))),
              "--out", str(tmp_path / "plan"), cwd=tmp_path)
    assert out.returncode == 2 and out.stderr == f"error: {tmp_path / 'spec.toml'}: [grid] lr: expected positive numbers, got [-0.001]\n"
    out = cli("run", str(tmp_path / "nowhere"), "--workers", "0", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: --workers 0") and "Traceback" not in out.stderr


def test_dry_run_lists_runs_flops_and_time(tmp_path, capsys):
    assert sweep.main(["plan", str(write_spec(tmp_path)), "--out", str(tmp_path / "p"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "8 runs in 2 (N, D) cells" in text and "FLOPs" in text and "estimated" in text
    assert not (tmp_path / "p").exists()
    for example in ("ci_tiny.toml", "cpu_demo.toml"):  # the shipped specs stay valid
        assert sweep.main(["plan", str(ROOT / "examples" / example), "--out", str(tmp_path / "x"), "--dry-run"]) == 0


def test_plan_run_collect_gives_a_table_the_fit_reads(tmp_path):
    plan_dir = tmp_path / "plan"
    assert sweep.main(["plan", str(write_spec(tmp_path, SPEC_2D)), "--out", str(plan_dir)]) == 0
    assert sweep.main(["worker", str(plan_dir)]) == 0
    stale = tmp_path / ".runs.csv.k3x9_q2a.tmp"  # what a collect killed mid-write leaves
    stale.write_text("run_id,N\nabc,")
    other = tmp_path / ".notes.txt.k3x9_q2a.tmp"  # another file's temp: not collect's to remove
    other.write_text("x")
    assert sweep.main(["collect", str(plan_dir), "--out", str(tmp_path / "runs.csv")]) == 0
    assert not stale.exists() and other.exists()
    assert not (tmp_path / "runs.parquet").exists()  # one format: the one --out names
    loaded = load_runs(str(tmp_path / "runs.csv"))
    assert len(loaded.runs) == 16 and set(loaded.runs["status"]) <= {"ok", "diverged"}
    best = best_runs(loaded.runs, source=loaded.source)  # a full sweep carries its own grid
    assert len(best.frame) == 4 and (best.frame["n_runs"] == 4).all()
    assert best.frame.groupby("N")["D"].nunique().min() == 2  # two token budgets per size: c_D is identifiable
    assert {"seed", "seq_len", "n_layer", "flops", "tokens_per_s", "mfu", "wall_s", "schedule"} <= set(loaded.runs)
    csv_mtime = (tmp_path / "runs.csv").stat().st_mtime_ns
    assert sweep.main(["collect", str(plan_dir), "--out", str(tmp_path / "runs.parquet")]) == 0
    assert (tmp_path / "runs.csv").stat().st_mtime_ns == csv_mtime  # the other format is left alone
    assert load_runs(str(tmp_path / "runs.parquet")).runs["run_id"].tolist() == loaded.runs["run_id"].tolist()
    assert not list(tmp_path.glob(".runs.*.tmp"))
    assert sweep.main(["worker", str(plan_dir)]) == 0  # nothing left: no run trains twice
    assert sorted(e for e, _ in events(plan_dir)).count("start") == 16


def test_resume_after_kill_9_loses_and_repeats_nothing(tmp_path):
    plan_dir = tmp_path / "plan"
    spec = SPEC.replace("tokens = [1024]", "tokens = [2048]")
    assert cli("plan", str(write_spec(tmp_path, spec)), "--out", str(plan_dir), cwd=tmp_path).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "training.sweep", "run", str(plan_dir), "--workers", "2"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300  # generous: CI runs this beside other heavy tests
    while time.time() < deadline and not list((plan_dir / "runs").glob("*/result.json")):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its pool workers, mid-run
    proc.wait()
    finished_before = {p.parent.name for p in (plan_dir / "runs").glob("*/result.json")}
    assert 1 <= len(finished_before) < 8
    out = cli("run", str(plan_dir), "--workers", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    ids = {r.run_id for r in read_plan(plan_dir).runs}
    assert {p.parent.name for p in (plan_dir / "runs").glob("*/result.json")} == ids  # nothing lost
    log = events(plan_dir)
    done = [rid for e, rid in log if e.startswith("done")]
    assert len(done) == len(set(done)) and set(done) >= ids - finished_before  # each finished once
    for rid in finished_before:  # finished runs were not started again
        assert log.count(("start", rid)) == 1
    assert not list((plan_dir / "locks").glob("*.lock"))


def test_two_workers_never_train_the_same_run(tmp_path):
    plan_dir = tmp_path / "plan"
    assert sweep.main(["plan", str(write_spec(tmp_path)), "--out", str(plan_dir)]) == 0
    cmd = [sys.executable, "-m", "training.sweep", "worker", str(plan_dir)]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    starts = [rid for e, rid in events(plan_dir) if e == "start"]
    assert len(starts) == len(set(starts)) == 8
    pids = {line.split()[4] for line in (plan_dir / "events.log").read_text().splitlines()}
    assert len(pids) == 2  # both took part


def test_stale_locks_are_reclaimed_live_ones_respected(tmp_path):
    lock = tmp_path / "locks" / "abc.lock"
    held = try_claim(lock)
    assert held is not None and try_claim(lock) is None  # our own live process holds it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(lock.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {int(dead.stdout)}'))
    assert is_stale(lock)
    taken = try_claim(lock)
    assert taken is not None and taken.token != held.token
    release(held)  # not ours any more: must not remove the new owner's lock
    assert lock.exists()
    release(taken)
    assert not lock.exists()
    other = try_claim(lock)  # a silent owner on another machine: only the heartbeat's age tells
    lock.write_text(lock.read_text().replace('"host": "', '"host": "elsewhere-'))
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    assert other is not None and is_stale(lock, stale_after=600) and not is_stale(lock, stale_after=7200)


def test_slurm_path_with_submitit_debug_executor(tmp_path, capsys):
    plan_dir = tmp_path / "plan"
    assert sweep.main(["plan", str(write_spec(tmp_path)), "--out", str(plan_dir)]) == 0
    code = sweep.main(["run", str(plan_dir), "--executor", "slurm", "--cluster", "debug", "--workers", "1",
                       "--slurm-partition", "gpu"])
    assert code == 0, capsys.readouterr().err
    assert "8 finished" in capsys.readouterr().out
    table = sweep.collect(plan_dir)
    assert len(table) == 8 and np.isfinite(table.loc[table["status"] == "ok", "loss"]).all()


def test_plan_reads_local_files_given_on_the_command_line(tmp_path):
    from training.synthetic import synthetic_corpus

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(synthetic_corpus(300, seed=5)))
    plan_dir = tmp_path / "plan"
    assert sweep.main(["plan", str(write_spec(tmp_path)), "--out", str(plan_dir), "--data-files", str(corpus)]) == 0
    plan = read_plan(plan_dir)
    assert plan.data.source == "files" and plan.data.describe()["files"] == ["corpus.txt"]
    synthetic_ids = {r.run_id for r in build_plan(load_spec(tmp_path / "spec.toml")).runs}
    assert not synthetic_ids & {r.run_id for r in plan.runs}  # other data, other runs


# -- unreadable results, dead workers, Ctrl-C --------------------------------------------------------------------

def test_unreadable_results_are_named_not_counted_and_retrained(tmp_path, capsys):
    plan_dir = planned(tmp_path)
    assert sweep.main(["worker", str(plan_dir)]) == 0
    ids = [r.run_id for r in read_plan(plan_dir).runs]
    truncated, empty, braces = (plan_dir / "runs" / rid / "result.json" for rid in ids[:3])
    truncated.write_text(truncated.read_text()[:40])  # a copy cut short
    empty.write_text("")
    braces.write_text("{}")
    capsys.readouterr()

    assert sweep.main(["status", str(plan_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "5 finished, 0 running, 0 failed, 3 unreadable, 0 pending"
    assert {line.split()[1] for line in out[1:]} == {str(p) for p in (truncated, empty, braces)}

    assert sweep.main(["collect", str(plan_dir), "--out", str(tmp_path / "runs.csv")]) == 0
    err = capsys.readouterr().err.splitlines()
    for path, why in ((truncated, "truncated"), (empty, "empty file"), (braces, "empty JSON object")):
        [line] = [e for e in err if str(path) in e]
        assert line.startswith(f"note: {path}: unreadable (") and why in line and "`run` retrains it" in line
    assert not any("Traceback" in e for e in err)
    table = load_runs(str(tmp_path / "runs.csv")).runs
    assert sorted(table["run_id"]) == sorted(ids[3:]) and table["loss"].notna().all()  # no all-NaN row for {}

    assert sweep.main(["worker", str(plan_dir)]) == 0  # retrains exactly the three, overwriting them
    starts = [rid for e, rid in events(plan_dir) if e == "start"]
    assert sorted(starts) == sorted(ids + ids[:3])
    assert sweep.collect(plan_dir)["run_id"].tolist() == ids


def test_a_dead_workers_run_is_named_after_a_live_worker_broke_its_lock(tmp_path, monkeypatch):
    """The race CI met: the dead worker's stale lock is broken and re-claimed before the supervisor looks."""
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    monkeypatch.setattr(os, "getpid", lambda: dead)  # log_event and try_claim record the dead pid
    log_event(tmp_path, "start", "r0")
    log_event(tmp_path, "done:ok", "r0")
    log_event(tmp_path, "start", "r1")
    assert try_claim(tmp_path / "locks" / "r1.lock") is not None
    monkeypatch.undo()
    log_event(tmp_path, "start", "r2")  # another (live) worker's run
    assert pool._requeue(tmp_path, dead, 600) == "r1"  # its lock, still there, is broken
    assert not (tmp_path / "locks" / "r1.lock").exists()
    taken = try_claim(tmp_path / "locks" / "r1.lock")  # the live worker takes it: only events.log tells now
    assert taken is not None and pool._requeue(tmp_path, dead, 600) == "r1"
    release(taken)
    monkeypatch.setattr(os, "getpid", lambda: dead)
    log_event(tmp_path, "failed", "r1")
    assert pool._requeue(tmp_path, dead, 600) is None  # its last run ended: it held none


def test_a_killed_worker_is_replaced_and_its_run_requeued(tmp_path):
    """kill -9 of one worker of `run --workers 2`: the sweep still trains every run, the killed one twice."""
    plan_dir = planned(tmp_path, SPEC_SLOW)
    proc = subprocess.Popen([sys.executable, "-m", "training.sweep", "run", str(plan_dir), "--workers", "2"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline, victim = time.time() + 300, None
    while victim is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        log = events_by_pid(plan_dir) if (plan_dir / "events.log").exists() else []
        victim = next(((rid, pid) for e, rid, pid in log if e == "start"), None)
    assert victim is not None, "no run started"
    rid, pid = victim
    os.kill(pid, signal.SIGKILL)  # the worker that started first, in the middle of its first run
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err  # documented: 0 iff every planned run is finished
    assert f"1 worker died (signal 9); its run was requeued ({rid})" in out
    assert f"worker pid {pid} died (signal 9) while training run {rid}" in err and "Traceback" not in err
    log = events_by_pid(plan_dir)
    ids = {r.run_id for r in read_plan(plan_dir).runs}
    done = [r for e, r, _ in log if e.startswith("done")]
    assert sorted(done) == sorted(ids)  # every run finished exactly once
    assert [(e, p) for e, r, p in log if r == rid and e == "start"][0] == ("start", pid)
    assert sum(1 for e, r, _ in log if r == rid and e == "start") == 2  # the killed run started twice
    assert not [r for e, r, p in log if p == pid and e.startswith("done")]
    assert {p.parent.name for p in (plan_dir / "runs").glob("*/result.json")} == ids
    assert not list((plan_dir / "locks").glob("*")) and not list(plan_dir.rglob("*.tmp"))


def test_ctrl_c_stops_run_in_one_line_and_keeps_finished_runs(tmp_path):
    plan_dir = planned(tmp_path, SPEC_SLOW)
    proc = subprocess.Popen([sys.executable, "-m", "training.sweep", "run", str(plan_dir), "--workers", "2"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list((plan_dir / "runs").glob("*/result.json")):
        time.sleep(0.05)
    finished = {p.parent.name for p in (plan_dir / "runs").glob("*/result.json")}
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert [line for line in err.replace("\r", "\n").splitlines() if line and not line.startswith("sweep")] == [
        "interrupted; finished runs are kept; rerun to resume"]
    assert 1 <= len(finished) < 8 and finished <= {p.parent.name for p in (plan_dir / "runs").glob("*/result.json")}
    assert not list((plan_dir / "locks").glob("*.lock"))  # the interrupted runs are pending again
    pids = {p for _, _, p in events_by_pid(plan_dir)}
    for pid in pids:  # no worker outlives the supervisor
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


# -- failed runs ---------------------------------------------------------------------------------------------------

def _fail_one(monkeypatch, mode: str, victim: str) -> str:
    """Make run ``victim`` fail the way ``mode`` says; return the text its error.json must hold."""
    if mode == "raises":
        real_train = training.worker.train

        def train(*args, run_id: str = "", **kwargs):
            if run_id == victim:
                raise RuntimeError("injected crash")
            return real_train(*args, run_id=run_id, **kwargs)

        monkeypatch.setattr(training.worker, "train", train)
        return "RuntimeError: injected crash"
    real_write = training.trainer.write_csv

    def write_csv(path, frame):
        if Path(path).parent.name != victim:
            return real_write(path, frame)
        if mode == "disk full":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, frame)
        lines = Path(path).read_text().splitlines()
        Path(path).write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # a short write nobody noticed

    monkeypatch.setattr(training.trainer, "write_csv", write_csv)
    return "No space left on device" if mode == "disk full" else "curve.csv: reads back"


@pytest.mark.parametrize("mode", ["raises", "disk full", "partial curve"])
def test_a_failed_run_is_recorded_reported_and_retried_only_on_request(tmp_path, capsys, monkeypatch, mode):
    plan_dir = planned(tmp_path)
    ids = [r.run_id for r in read_plan(plan_dir).runs]
    victim = ids[2]
    text = _fail_one(monkeypatch, mode, victim)
    assert sweep.main(["worker", str(plan_dir)]) == 1  # documented: 1 when a run failed
    error = json.loads((plan_dir / "runs" / victim / "error.json").read_text())
    assert text in error["error"] and "Traceback" in error["traceback"]
    assert not (plan_dir / "runs" / victim / "result.json").exists()
    assert ("failed", victim) in events(plan_dir)
    assert sorted(rid for e, rid in events(plan_dir) if e.startswith("done")) == sorted(set(ids) - {victim})  # went on
    assert not list((plan_dir / "runs").rglob("*.tmp"))
    capsys.readouterr()

    assert sweep.main(["status", str(plan_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "7 finished, 0 running, 1 failed, 0 unreadable, 0 pending"
    assert out[1].startswith(f"failed: {plan_dir / 'runs' / victim / 'error.json'}: ") and text in out[1]
    assert sweep.main(["collect", str(plan_dir), "--out", str(tmp_path / "runs.csv")]) == 0
    err = capsys.readouterr().err
    assert f"note: {plan_dir / 'runs' / victim / 'error.json'}: failed (" in err and text in err
    assert victim not in load_runs(str(tmp_path / "runs.csv")).runs["run_id"].tolist()

    monkeypatch.undo()  # the cause is fixed ...
    assert sweep.main(["worker", str(plan_dir)]) == 0  # ... but a plain worker leaves the failed run alone
    assert "1 failed run(s) left alone; `worker --retry-failed` retries them" in capsys.readouterr().err
    assert [rid for e, rid in events(plan_dir) if e == "start"].count(victim) == 1
    if mode == "raises":  # the same through `run`, whose spawned workers see no injected fault
        assert sweep.main(["run", str(plan_dir)]) == 1
        assert f"1 run(s) failed ({victim})" in capsys.readouterr().err
        assert [rid for e, rid in events(plan_dir) if e == "start"].count(victim) == 1
        assert sweep.main(["run", str(plan_dir), "--retry-failed"]) == 0
    else:
        assert sweep.main(["worker", str(plan_dir), "--retry-failed"]) == 0
    assert [rid for e, rid in events(plan_dir) if e == "start"].count(victim) == 2
    assert not (plan_dir / "runs" / victim / "error.json").exists()
    assert sweep.collect(plan_dir)["run_id"].tolist() == ids


def test_a_run_that_fails_again_on_retry_is_tried_once_per_command(tmp_path, monkeypatch):
    plan_dir = planned(tmp_path)
    victim = read_plan(plan_dir).runs[0].run_id
    _fail_one(monkeypatch, "raises", victim)
    assert sweep.main(["worker", str(plan_dir)]) == 1
    assert sweep.main(["worker", str(plan_dir), "--retry-failed"]) == 1
    assert [rid for e, rid in events(plan_dir) if e == "start"].count(victim) == 2
    assert (plan_dir / "runs" / victim / "error.json").exists()


# -- bad input -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_plan(tmp_path_factory) -> Path:
    """A planned (untrained) directory for commands that must refuse bad input without writing."""
    root = tmp_path_factory.mktemp("shared")
    return planned(root)


BAD_INPUT = [  # (argv with {plan} / {tmp}, what the one error line says)
    (["plan", "{tmp}/missing.toml", "--out", "{tmp}/p"], "no such spec file"),
    (["plan", "{tmp}/broken.toml", "--out", "{tmp}/p"], "not valid TOML"),
    (["plan", "{tmp}/section.toml", "--out", "{tmp}/p"], "unknown section(s) optimiser"),
    (["plan", "{tmp}/grid.toml", "--out", "{tmp}/p"], "[grid] lr"),
    (["plan", "{tmp}/spec.toml", "--out", "{tmp}/afile"], "exists and is not a directory"),
    (["collect", "{plan}", "--out", "{tmp}/runs.txt"], "expected a .csv or .parquet file"),
    (["collect", "{plan}", "--out", "{tmp}/adir.csv"], "is a directory"),
    (["collect", "{plan}", "--out", "{tmp}/afile/runs.csv"], "exists and is not a directory"),
    (["collect", "{plan}", "--out", "{tmp}/runs.csv"], "no finished runs to collect"),
    (["collect", "{tmp}", "--out", "{tmp}/runs.csv"], "not a plan directory"),
    (["run", "{tmp}"], "not a plan directory"),
    (["run", "{plan}", "--workers", "0"], "--workers 0: must be at least 1"),
    (["run", "{plan}", "--max-restarts", "-1"], "--max-restarts -1"),
    (["run", "{plan}", "--threads", "0"], "--threads 0"),
    (["run", "{tmp}/nodata"], "no prepared data"),
    (["run", "{plan}", "--workers", "two"], "invalid int value"),
    (["run", "{plan}", "--wrokers", "2"], "unrecognized arguments"),
    (["worker", "{tmp}"], "not a plan directory"),
    (["worker", "{plan}", "--max-runs", "0"], "--max-runs 0"),
    (["status", "{tmp}"], "not a plan directory"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT, ids=[" ".join(a[:1] + a[2:]) for a, _ in BAD_INPUT])
def test_sweep_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, shared_plan, argv, message):
    write_spec(tmp_path, "[data\nseq_len = ", "broken.toml")
    write_spec(tmp_path, SPEC.replace("[runtime]", "[optimiser]"), "section.toml")
    write_spec(tmp_path, SPEC.replace('"2^-7:2^-5:2"', '"2^-5:x"'), "grid.toml")
    write_spec(tmp_path)
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "adir.csv").mkdir()
    (tmp_path / "nodata").mkdir()
    (tmp_path / "nodata" / "plan.json").write_text((shared_plan / "plan.json").read_text())
    before, plan_before = snapshot(tmp_path), snapshot(shared_plan)
    try:
        code = sweep.main([a.format(plan=shared_plan, tmp=tmp_path) for a in argv])
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert snapshot(tmp_path) == before and snapshot(shared_plan) == plan_before
    assert not (tmp_path / "p").exists()
