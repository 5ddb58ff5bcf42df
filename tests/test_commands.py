"""The one command contract: shared options, output checked before any work, files that honour
the umask, a manifest on every command, one-line errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_manifest

from bayes_scaling import catalog
from bayes_scaling.cli import backtest, common, fit, plan
from bayes_scaling.cli.fit import _methods
from bayes_scaling.inference.config import SamplerConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
FAST_FIT = ["--models", "ols", "--no-plots"]          # imports, data and OLS: no sampling


def run(module: str, *args: str, umask: int | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"bayes_scaling.{module}", *args], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.mark.parametrize("module", [fit, plan, backtest])
def test_every_command_shares_the_option_groups(module):
    """The same flag for the same thing: data, sampler and output options on every command, with
    the library's sampler defaults."""
    p = module.build_parser()
    flags = {s for a in p._actions for s in a.option_strings}
    assert {"--data", "--sampler", "--draws", "--tune", "--chains", "--seed", "--target-accept", "--out",
            "--no-plots", "--strict", "--ci-prob"} <= flags
    defaults = p.parse_args(["--compute", "1e21"] if module is plan else [])
    assert SamplerConfig.from_args(defaults) == SamplerConfig()


def test_fit_and_backtest_share_the_model_options():
    for module in (fit, backtest):
        flags = {s for a in module.build_parser()._actions for s in a.option_strings}
        assert {"--models", "--slopes", "--per-n-intercepts", "--approx"} <= flags
    assert "--max-refits" in {s for a in fit.build_parser()._actions for s in a.option_strings}


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_honour_the_umask(tmp_path, umask, file_mode, dir_mode):
    out = tmp_path / "fit"
    proc = run("fit", *FAST_FIT, "--out", str(out), umask=umask)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == dir_mode
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == file_mode for p in files)
    assert_manifest(out, "fit")


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine\n")
    line = one_line_error(run("fit", *FAST_FIT, "--out", str(target)), "--out", "not a directory")
    assert "bayes-scaling:" not in line
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]          # no .partial-* left


def test_out_below_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = run("plan", "--compute", "1e21", "--out", str(tmp_path / "file" / "plan"))
    one_line_error(proc, "--out", "is a file")
    assert proc.stdout == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_in_a_read_only_place_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        one_line_error(run("backtest", "--out", str(locked / "bt")), "--out", "cannot write")
    finally:
        locked.chmod(0o755)


def test_negative_target_gets_the_usual_one_line_error(tmp_path):
    one_line_error(run("fit", "--target", "-4e9,1e11", "--out", str(tmp_path / "o")), "--target", "positive")
    assert not (tmp_path / "o").exists()


def test_default_output_directory_is_command_data_and_utc_time(tmp_path):
    proc = run("fit", *FAST_FIT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (made,) = (tmp_path / "runs").iterdir()
    assert made.name.startswith("fit-blog-partII-") and made.name.endswith("Z")
    assert_manifest(made, "fit")


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    import signal

    # as a shell starts it: Ctrl-C at its default (a pytest-xdist worker ignores SIGINT, and a child
    # would inherit that and never see the interrupt)
    proc = subprocess.Popen([sys.executable, "-m", "bayes_scaling.fit", "--models", "quantized", "--no-plots",
                             "--out", str(tmp_path / "o")], env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().startswith("bayes-scaling:")      # past validation, into the work
    line = ""
    while "fitted quantized" not in line:                           # one fit done: the next is sampling
        line = proc.stderr.readline()
        assert line, "the fit ended before its first progress line"
    proc.send_signal(2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted; nothing written" and "Traceback" not in err
    assert not (tmp_path / "o").exists() and not list(tmp_path.iterdir())


def test_the_header_names_no_nuts_settings_for_an_approximation():
    kinds = catalog.kinds()
    config = SamplerConfig()
    assert _methods(["surface"], kinds, config, "advi") == "surface: ADVI (approximate)"
    assert "4x1000" in _methods(["surface"], kinds, config, None)
    both = _methods(["quantized", "surface"], kinds, config, "advi")
    assert "sampler nutpie (4x1000 draws)" in both and "ADVI (approximate)" in both
    assert _methods(["ols"], kinds, config, None) == "least squares only"


def test_target_parsing_and_data_labels():
    assert common.parse_targets(None, "4e9,1e11") == [(4e9, 1e11)]
    assert common.parse_targets(["1e9,2e10", "3e9,4e10"], "x") == [(1e9, 2e10), (3e9, 4e10)]
    assert common.data_label("porian:dataset=owt2") == "porian"
    assert common.data_label("/some/where/runs.csv") == "runs"


def test_a_ctrl_c_that_nutpie_swallows_still_interrupts(monkeypatch):
    """nutpie answers Ctrl-C by returning the draws made so far; ``sample`` turns that short trace
    back into KeyboardInterrupt (so the command exits 130 and writes nothing) and lets a full one through."""
    import numpy as np
    import nutpie
    import pymc as pm
    import xarray as xr

    from bayes_scaling.inference.sampling import sample

    def fake(draws):
        tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"a": (("chain", "draw"), np.zeros((2, draws)))})})
        return lambda *args, **kwargs: tree

    with pm.Model() as model:
        pm.Normal("a")
    config = SamplerConfig(draws=10, chains=2)
    monkeypatch.setattr(nutpie, "sample", fake(3))
    with pytest.raises(KeyboardInterrupt):
        sample(model, config, compiled=object(), log_likelihood=False)
    monkeypatch.setattr(nutpie, "sample", fake(10))
    assert sample(model, config, compiled=object(), log_likelihood=False)["posterior"].sizes["draw"] == 10


def test_one_long_nuts_run_reports_each_tenth_of_its_draws(capsys, monkeypatch):
    """``sample(..., progress=label)`` prints a line at every tenth of the run's draws (with its phase
    and divergences) and ends at 100 %; ``--quiet`` silences it; without a label it says nothing."""
    import re

    import pymc as pm

    from bayes_scaling import progress
    from bayes_scaling.inference import sampling
    from bayes_scaling.inference.sampling import sample

    monkeypatch.setattr(sampling, "PROGRESS_RATE_MS", 20)         # a short run, reported often
    with pm.Model() as model:
        pm.Normal("a", shape=400)
    config = SamplerConfig(draws=6000, tune=300, chains=2, cores=1)
    sample(model, config, log_likelihood=False, progress="probe NUTS")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("probe NUTS")]
    percents = [int(re.match(r"probe NUTS (\d+)%", ln)[1]) for ln in lines]
    assert len(lines) >= 2 and percents == sorted(percents) and percents[-1] == 100
    assert all(re.search(r"\((elapsed \d+ s, ETA \d+ s)\): (tuning|sampling), \d+ divergences$", ln) for ln in lines)
    sample(model, config, log_likelihood=False)
    assert "probe NUTS" not in capsys.readouterr().err
    progress.set_quiet(True)
    try:
        sample(model, config, log_likelihood=False, progress="probe NUTS")
    finally:
        progress.set_quiet(False)
    assert "probe NUTS" not in capsys.readouterr().err


def test_muted_silences_a_block_and_restores_what_was_before(capsys):
    from bayes_scaling import progress

    with progress.muted():
        with progress.steps(3, "inner refits") as tick:
            tick("one")
        progress.note("inner note")
    with progress.steps(1, "outer units") as tick:
        tick("done")
    err = capsys.readouterr().err
    assert "inner" not in err and "outer units 1/1" in err and not progress.quiet()
    with pytest.raises(RuntimeError):
        with progress.muted():
            raise RuntimeError("a refit failed")
    assert not progress.quiet()                      # an error inside does not leave progress off
    progress.set_quiet(True)
    try:
        with progress.muted():
            pass
        assert progress.quiet()                      # a caller's --quiet outlives the block
    finally:
        progress.set_quiet(False)
