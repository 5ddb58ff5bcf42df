"""Sweep plan / run / worker / collect: stable ids, resume after kill -9, disjoint workers, run table."""

from __future__ import annotations

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
from training import sweep  # noqa: E402
from training.claims import is_stale, release, try_claim  # noqa: E402
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
    assert sweep.main(["plan", str(write_spec(tmp_path)), "--out", str(plan_dir)]) == 0
    assert sweep.main(["worker", str(plan_dir)]) == 0
    assert sweep.main(["collect", str(plan_dir), "--out", str(tmp_path / "runs.csv")]) == 0
    loaded = load_runs(str(tmp_path / "runs.csv"))
    assert len(loaded.runs) == 8 and set(loaded.runs["status"]) <= {"ok", "diverged"}
    best = best_runs(loaded.runs, source=loaded.source)  # a full sweep carries its own grid
    assert len(best.frame) == 2 and (best.frame["n_runs"] == 4).all()
    assert {"seed", "seq_len", "n_layer", "flops", "tokens_per_s", "mfu", "wall_s", "schedule"} <= set(loaded.runs)
    assert load_runs(str(tmp_path / "runs.parquet")).runs["run_id"].tolist() == loaded.runs["run_id"].tolist()
    assert sweep.main(["worker", str(plan_dir)]) == 0  # nothing left: no run trains twice
    assert sorted(e for e, _ in events(plan_dir)).count("start") == 8


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
