"""``python -m bayes_scaling.fit``: bad input exits 2 with one line and writes nothing;
a real run writes every artifact, consistent with the library and the bundled data."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_manifest

from bayes_scaling import catalog
from bayes_scaling.optimum.fit import OptimumFit
from bayes_scaling.optimum.specs.ols import fit_ols
from bayes_scaling.inputs.datasets import DATASETS, load_runs
from bayes_scaling.fit import main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

HEADER = "run_id,N,D,B,lr,loss\n"
GOOD_ROWS = [
    "a,1e8,1e9,65536,0.003906,3.3",
    "b,1e8,4e9,131072,0.001953,3.1",
    "c,2e8,1e9,262144,0.0009766,3.2",
    "d,2e8,4e9,524288,0.0002441,3.0",
]
GRIDS = ["--lr-grid", "2^-12:2^-8:1", "--batch-grid", "2^16:2^19:1"]


def table(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(r + "\n" for r in rows)).encode()


def with_row(i: int, row: str) -> bytes:
    rows = list(GOOD_ROWS)
    rows[i] = row
    return table(*rows)


# name, file content (None: not created; "dir": a directory), extra args, substrings of the error line
BAD_INPUTS = [
    ("missing-column", table(*[",".join(r.split(",")[:5]) for r in GOOD_ROWS], header="run_id,N,D,B,lr\n"),
     GRIDS, ["missing column(s) 'loss'"]),
    ("misspelled-column", table(*GOOD_ROWS, header="run_id,N,D,B,learning_rate,loss\n"),
     GRIDS, ["missing column(s) 'lr'", "learning_rate"]),
    ("nan-lr", with_row(2, "c,2e8,1e9,262144,,3.2"), GRIDS, ["line 4", "column 'lr'"]),
    ("nan-literal-D", with_row(1, "b,1e8,nan,131072,0.001953,3.1"), GRIDS, ["line 3", "column 'D'"]),
    ("nan-loss", with_row(3, "d,2e8,4e9,524288,0.0002441,"), GRIDS, ["line 5", "column 'loss'"]),
    ("text-in-B", with_row(0, "a,1e8,1e9,lots,0.003906,3.3"), GRIDS, ["line 2", "column 'B'", "'lots'"]),
    ("zero-N", with_row(1, "b,0,4e9,131072,0.001953,3.1"), GRIDS, ["line 3", "column 'N'", "> 0"]),
    ("negative-D", with_row(2, "c,2e8,-1e9,262144,0.0009766,3.2"), GRIDS, ["line 4", "column 'D'", "> 0"]),
    ("zero-B", with_row(3, "d,2e8,4e9,0,0.0002441,3.0"), GRIDS, ["line 5", "column 'B'", "> 0"]),
    ("negative-lr", with_row(0, "a,1e8,1e9,65536,-0.003906,3.3"), GRIDS, ["line 2", "column 'lr'", "> 0"]),
    ("single-N", table(*[r.replace("2e8", "1e8") for r in GOOD_ROWS]), GRIDS, ["column 'N'", "one model size"]),
    ("duplicate-run-id", with_row(3, "b,2e8,4e9,524288,0.0002441,3.0"), GRIDS,
     ["line 5", "column 'run_id'", "duplicate 'b'", "line 3"]),
    ("bad-status", table(*[r + ",ok" for r in GOOD_ROWS[:3]], GOOD_ROWS[3] + ",exploded",
                         header=HEADER.strip() + ",status\n"), GRIDS, ["line 5", "column 'status'"]),
    ("lr-off-grid", with_row(2, "c,2e8,1e9,262144,0.003,3.2"), GRIDS,
     ["line 4", "column 'lr'", "not on the declared grid", "--lr-grid"]),
    ("no-grids-for-best-runs", table(*GOOD_ROWS), [], ["--lr-grid", "--batch-grid"]),
    ("blank-line-shifts-line-number", table(GOOD_ROWS[0], "", GOOD_ROWS[1], "c,2e8,1e9,262144,0,3.2", GOOD_ROWS[3]),
     GRIDS, [":line 5: column 'lr'"]),
    ("quoted-newline-off-grid", table('"a\nfirst",1e8,1e9,65536,0.003906,3.3', *GOOD_ROWS[1:3],
                                      "d,2e8,4e9,524288,0.0003,3.0"), GRIDS, [":line 6: column 'lr'", "--lr-grid"]),
    ("empty-file", b"", GRIDS, ["empty file"]),
    ("header-only", table(), GRIDS, ["no rows"]),
    ("binary-garbage", bytes(range(128, 256)) * 8, GRIDS, ["unreadable"]),
    ("nul-bytes", b"\x00\x01\x02\x03" * 50 + b"\n" + b"\xff" * 20, GRIDS, []),
    ("directory", "dir", GRIDS, ["is a directory"]),
    ("nonexistent", None, GRIDS, ["no such file"]),
]

BAD_OPTIONS = [
    ("target-one-number", ["--target", "4e9"], ["--target", "'4e9'"]),
    ("target-words", ["--target", "big,long"], ["--target"]),
    ("target-negative", ["--target", "4e9,1e11", "--target=-1,1e11"], ["--target", "positive"]),
    ("target-three", ["--target", "4e9,1e11,3"], ["--target"]),
    ("models-unknown", ["--models", "ols,bogus"], ["--models", "bogus", *catalog.kinds()]),
    ("models-empty", ["--models", ","], ["--models", "empty"]),
    ("lr-grid-two-parts", ["--lr-grid", "2^-12:2^-8"], ["--lr-grid", "BASE^LO:BASE^HI:STEP"]),
    ("lr-grid-reversed", ["--lr-grid", "2^-8:2^-12:1"], ["--lr-grid", "LO <= HI"]),
    ("batch-grid-words", ["--batch-grid", "big,small"], ["--batch-grid"]),
    ("batch-grid-garbled-power", ["--batch-grid", "2..^16:2^19:1"], ["--batch-grid", "2^-12"]),
    ("ci-prob", ["--ci-prob", "1.5"], ["--ci-prob"]),
]


def assert_clean_failure(rc: int, err: str, out_dir: Path, expect: list[str], data: Path | None) -> str:
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: ")
    if data is not None:
        assert str(data) in line
    for text in expect:
        assert text in line
    assert not out_dir.exists()
    assert not [p for p in out_dir.parent.iterdir() if ".partial-" in p.name]
    return line


def make_data(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / f"{name}.csv"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(("name", "content", "args", "expect"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_file_exits_2_with_one_line(tmp_path, capsys, name, content, args, expect):
    data = make_data(tmp_path, name, content)
    out_dir = tmp_path / "out"
    rc = main(["--data", str(data), "--out", str(out_dir), "--no-plots", *args])
    captured = capsys.readouterr()
    assert_clean_failure(rc, captured.err, out_dir, expect, data)
    assert captured.out == ""  # nothing was announced: validation precedes all work


@pytest.mark.parametrize(("name", "args", "expect"), BAD_OPTIONS, ids=[c[0] for c in BAD_OPTIONS])
def test_bad_option_exits_2_with_one_line(tmp_path, capsys, name, args, expect):
    out_dir = tmp_path / "out"
    rc = main(["--data", "blog-partII", "--out", str(out_dir), "--no-plots", *args])
    assert_clean_failure(rc, capsys.readouterr().err, out_dir, expect, None)


def test_unknown_dataset_name_exits_2(tmp_path, capsys):
    out_dir = tmp_path / "out"
    rc = main(["--data", "blog-part2", "--out", str(out_dir)])
    assert_clean_failure(rc, capsys.readouterr().err, out_dir, ["blog-part2", *DATASETS], None)


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [("misspelled", table(*GOOD_ROWS, header="run_id,N,D,B,learning_rate,loss\n"), ["missing column(s) 'lr'"]),
     ("empty", b"", ["empty file"])],
)
def test_bad_input_through_the_real_process(tmp_path, name, content, expect):
    data = make_data(tmp_path, name, content)
    out_dir = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bayes_scaling.fit", "--data", str(data), "--out", str(out_dir),
                           "--no-plots", *GRIDS], capture_output=True, text=True, env=ENV, timeout=120)
    assert_clean_failure(proc.returncode, proc.stderr, out_dir, expect, data)


def test_help_lists_models_and_syntax(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for model in catalog.kinds():
        assert model in text
    for syntax in ("--target", "N,D", "--lr-grid", "2^-12:2^-8:1", "--batch-grid", "--models", "--data"):
        assert syntax in text
    for name in DATASETS:
        assert name in text


# --------------------------------------------------------------------- end to end

MODELS = ["ols", "quantized", "hierarchical"]
TARGETS = [(4e9, 1e11), (1e10, 2e11)]
CLI_ARGS = ["--data", "blog-partII", "--models", ",".join(MODELS),
            "--target", "4e9,1e11", "--target", "1e10,2e11",
            "--draws", "100", "--tune", "200", "--chains", "2", "--seed", "3", "--no-plots", "--max-refits", "0",
            "--cv", "none"]
QUANTITIES = ["lr", "batch_size"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One real fit of the bundled blog table, shared by the end-to-end tests."""
    out = tmp_path_factory.mktemp("cli") / "out"
    proc = subprocess.run([sys.executable, "-m", "bayes_scaling.fit", *CLI_ARGS, "--out", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_cli_writes_every_artifact(cli_run):
    out, proc = cli_run
    assert "Traceback" not in proc.stderr
    for name in ("predictions.csv", "exponents.csv", "compare.csv", "best_runs.csv", "manifest.json"):
        assert (out / name).is_file()
    expected_nc = {f"{m}_{q}.nc" for m in MODELS for q in QUANTITIES}      # the baseline's bootstrap draws too
    assert {p.name for p in (out / "posterior").iterdir()} == expected_nc
    assert not (out / "plots").exists()
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]
    assert not [p for p in out.rglob("*.tmp")]


def test_predictions_csv(cli_run):
    out, _ = cli_run
    everything = pd.read_csv(out / "predictions.csv")
    assert list(everything.columns) == ["model", "quantity", "N", "D", "median", "mean", "lo", "hi", "ci_prob",
                                        "interval", "recommended"]
    assert everything["interval"].str.len().gt(20).all()                # every row says what its interval is
    stacked = everything[everything["model"] == "stacked"]
    assert stacked["interval"].str.contains("LOO weights").all()       # --cv none: stacked on LOO
    assert everything.groupby(["quantity", "N", "D"])["recommended"].sum().eq(1).all()   # one per target
    pred = everything[everything["model"] != "stacked"]
    assert len(pred) == len(MODELS) * len(QUANTITIES) * len(TARGETS)
    keys = set(zip(pred["model"], pred["quantity"], pred["N"], pred["D"]))
    assert keys == {(m, q, n, d) for m in MODELS for q in QUANTITIES for n, d in TARGETS}
    assert (pred["lo"] <= pred["median"]).all() and (pred["median"] <= pred["hi"]).all()
    assert (pred["lo"] > 0).all()
    assert pred["ci_prob"].eq(0.9).all()
    # sanity of scale: lr around 1e-3, batch size around 1e6 tokens
    lr = pred[pred["quantity"] == "lr"]["median"]
    bs = pred[pred["quantity"] == "batch_size"]["median"]
    assert lr.between(1e-5, 1e-1).all() and bs.between(1e4, 1e8).all()


def test_exponents_compare_and_best_runs_csv(cli_run):
    out, _ = cli_run
    exps = pd.read_csv(out / "exponents.csv")
    assert {"model", "quantity", "param", "median", "lo", "hi"} <= set(exps.columns)
    assert set(zip(exps["model"], exps["quantity"])) == {(m, q) for m in MODELS for q in QUANTITIES}
    assert (exps["lo"] <= exps["hi"]).all()
    comp = pd.read_csv(out / "compare.csv")
    assert set(zip(comp["quantity"], comp["model"])) == {(q, m) for q in QUANTITIES for m in MODELS if m != "ols"}
    best = pd.read_csv(out / "best_runs.csv")
    assert len(best) == 30 and best["N"].nunique() == 5
    raw = pd.read_csv(DATASETS["blog-partII"].path)
    assert sorted(best["run_id"].astype(str)) == sorted(raw["run_id"].astype(str))


def test_manifest(cli_run):
    out, _ = cli_run
    manifest = assert_manifest(out, "fit")
    sha = hashlib.sha256(DATASETS["blog-partII"].path.read_bytes()).hexdigest()
    assert manifest["data"]["sha256"] == sha
    assert manifest["data"]["source"] == "blog-partII"
    assert manifest["data"]["runs"] == 30 and manifest["data"]["best_runs"] == 30
    assert manifest["command"].startswith("python -m bayes_scaling.fit")
    assert " ".join(CLI_ARGS) in manifest["command"]
    sampler = manifest["sampler"]
    assert sampler["seed"] == 3 and sampler["sampler"] == "nutpie"
    assert sampler["draws"] == 100 and sampler["tune"] == 200 and sampler["chains"] == 2
    assert manifest["models"] == MODELS
    assert [tuple(t) for t in manifest["targets"]] == TARGETS
    expected = {f"{m}/{q}" for m in MODELS if m != "ols" for q in QUANTITIES}
    assert set(manifest["diagnostics"]) == expected
    for diag in manifest["diagnostics"].values():
        assert {"max_rhat", "min_ess_bulk", "divergences", "ok"} <= set(diag)
        assert diag["chains"] == 2 and diag["draws"] == 100


def test_posteriors_reload_and_reproduce_predictions(cli_run):
    out, _ = cli_run
    pred = pd.read_csv(out / "predictions.csv")
    N = [t[0] for t in TARGETS]
    D = [t[1] for t in TARGETS]
    for m in MODELS:
        for q in QUANTITIES:
            fit = OptimumFit.from_netcdf(out / "posterior" / f"{m}_{q}.nc")
            assert (fit.model, fit.quantity) == (m, q)
            if m == "ols":   # the bootstrap: one chain of 10,000 resamples, the same numbers exactly
                assert fit.posterior.sizes["draw"] == 10_000
                ols_rows = pred[(pred["model"] == "ols") & (pred["quantity"] == q)]
                np.testing.assert_allclose(fit.predict(N, D)["median"], ols_rows["median"], rtol=1e-6)
                continue
            assert fit.posterior.sizes["chain"] == 2 and fit.posterior.sizes["draw"] == 100
            again = fit.predict(N, D, seed=12345)
            log_draws = fit.log_draws(N, D, seed=12345)
            rows = pred[(pred["model"] == m) & (pred["quantity"] == q)].set_index(["N", "D"])
            for k, (n, d) in enumerate(TARGETS):
                # Monte-Carlo SE of a median in log space ≈ 1.25 σ / √S (S = 200 draws, autocorrelated):
                # allow 5 of them, i.e. a generous bound that a wrong centring or N level would still break.
                sd = float(np.std(log_draws[:, k]))
                tol = 5 * 1.25 * sd / math.sqrt(50)
                assert abs(math.log(again["median"].iloc[k]) - math.log(rows.loc[(n, d), "median"])) < tol


def test_ols_point_matches_published_blog_numbers():
    loaded = load_runs("blog-partII")
    best = loaded.best()
    for q, published in (("lr", 7.7325e-4), ("batch_size", 659_862)):
        ols = fit_ols(best.quantity(q), n_boot=10)
        point, _ = ols.predict_log(np.log([4e9]), np.log([1e11]))
        assert math.exp(point[0]) == pytest.approx(published, rel=0.01)


def test_rerun_into_existing_out_replaces_the_artifact_set_and_keeps_other_files(cli_run, tmp_path):
    src, _ = cli_run
    out = tmp_path / "existing"
    shutil.copytree(src, out)
    (out / "notes.txt").write_text("mine\n")
    old_pred = pd.read_csv(out / "predictions.csv")
    assert (out / "compare.csv").exists() and (out / "posterior").is_dir()
    proc = subprocess.run([sys.executable, "-m", "bayes_scaling.fit", "--data", "blog-partII", "--models", "ols",
                           "--target", "2e9,5e10", "--no-plots", "--out", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pred = pd.read_csv(out / "predictions.csv")
    assert set(pred["model"]) == {"ols"} and pred["N"].eq(2e9).all()
    assert len(pred) == 2 and len(old_pred[old_pred["model"] != "stacked"]) == 12
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"] == ["ols"]
    assert (out / "notes.txt").read_text() == "mine\n"
    # the earlier run's artifacts that this run did not produce are gone, not left stale
    assert not (out / "compare.csv").exists()
    assert sorted(p.name for p in (out / "posterior").iterdir()) == ["ols_batch_size.nc", "ols_lr.nc"]
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]
    assert not [p for p in out.rglob("*.tmp")]


def test_the_default_command_end_to_end(tmp_path):
    """The README's main job as it runs — the default models, LOO with exact refits, every plot —
    at small draws."""
    out = tmp_path / "default"
    proc = subprocess.run([sys.executable, "-m", "bayes_scaling.fit", "--draws", "150", "--tune", "250", "--chains", "2",
                           "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    defaults = catalog.default_models()
    assert defaults == ["ols", "pooled", "quantized", "hierarchical"]
    pred = pd.read_csv(out / "predictions.csv")
    assert sorted(set(pred["model"]) - {"stacked"}) == sorted(defaults)
    assert pred.groupby("quantity")["recommended"].sum().eq(1).all()
    assert {"lono_elpd", "lono_weight", "cover_largest_n", "cover_largest_d"} <= set(pd.read_csv(out / "compare.csv"))
    assert (out / "held_out.csv").exists()
    comp = pd.read_csv(out / "compare.csv")
    assert set(comp["model"]) == {"pooled", "quantized", "hierarchical"}
    assert comp["n_refit"].sum() > 0                      # exact refits ran
    plots = {p.name for p in (out / "plots").iterdir()}
    manifest = assert_manifest(out, "fit")
    for q in QUANTITIES:
        main = manifest["recommended"][q]["model"]                     # the figures follow the recommendation
        main = "hierarchical" if main == "stacked" else main
        assert {f"fan_{q}.png", f"ppc_{main}_{q}.png", f"trace_{main}_{q}.png",
                f"forest_slopes_{q}.png", f"pooled_vs_per_n_{q}.png"} <= plots
    assert manifest["models"] == defaults
    for section in ("exponents", "comparison (elpd", "recommended for", "predicted optimum", "sampler diagnostics"):
        assert section in proc.stdout


def test_the_parallel_path_gives_the_sequential_results_and_still_reports_failed_checks(tmp_path):
    """Kinds fitted in parallel processes (--workers 2) give the same predictions as one after another,
    and a fit that fails its checks (here: too few draws) is flagged and fails --strict either way."""
    args = ["--models", "ols,quantized,hierarchical", "--draws", "60", "--tune", "100", "--chains", "2", "--no-plots",
            "--max-refits", "1", "--cv", "largest-n", "--strict", "--quiet"]
    outs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        proc = subprocess.run([sys.executable, "-m", "bayes_scaling.fit", *args, "--workers", workers, "--out", str(out)],
                              capture_output=True, text=True, env=ENV, timeout=900)
        assert proc.returncode == 3, proc.stderr[-2000:]                 # --strict: failed checks
        assert "!!" in proc.stdout and "failed convergence checks" in proc.stderr
        assert "(elapsed" not in proc.stderr and "fits done" not in proc.stderr   # --quiet: no progress line
        outs[workers] = pd.read_csv(out / "predictions.csv")
    pd.testing.assert_frame_equal(outs["1"], outs["2"])


def test_the_opt_in_cache_reuses_a_finished_fit_and_misses_on_any_change(tmp_path, capsys):
    """A rerun with --cache loads each kind's finished task instead of sampling: the same predictions,
    a line saying so, no new entry. Another seed misses (a new entry); an unreadable entry is a miss
    that is refitted and replaced; a --cache that is a file is one line, exit 2."""
    cache = tmp_path / "cache"
    args = ["--data", "blog-partII", "--models", "ols,pooled", "--quantity", "lr", "--draws", "100", "--tune", "200",
            "--chains", "2", "--cv", "none", "--max-refits", "0", "--no-plots", "--workers", "1", "--cache", str(cache)]

    def fit(out: str, *extra: str) -> tuple[pd.DataFrame, str]:
        assert main([*args, "--out", str(tmp_path / out), *extra]) == 0
        return pd.read_csv(tmp_path / out / "predictions.csv"), capsys.readouterr().err

    first, err = fit("a", "--workers", "2")                             # stored by the workers
    entries = sorted(cache.glob("*.pkl"))
    assert len(entries) == 2 and "from the cache" not in err            # one per kind
    again, err = fit("b")
    assert err.count("loaded from the cache") == 2 and sorted(cache.glob("*.pkl")) == entries
    pd.testing.assert_frame_equal(first, again)
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["fit_cache"] == str(cache)
    from bayes_scaling import catalog
    from bayes_scaling.inference import sampling

    def refuse(*args, **kwargs):
        raise AssertionError("a fully stored run ran a task or imported the sampler")

    with pytest.MonkeyPatch.context() as mp:          # every task stored: no task for a worker, no sampler import
        mp.setattr(catalog, "_kind_task", refuse)
        mp.setattr(sampling, "preload", refuse)
        pooled, err = fit("b2", "--workers", "2")
    assert err.count("loaded from the cache") == 2
    pd.testing.assert_frame_equal(first, pooled)
    _, err = fit("c", "--seed", "7")
    assert err.count("loaded from the cache") == 0 and len(list(cache.glob("*.pkl"))) == 4
    entries[0].write_bytes(b"not a pickle")
    _, err = fit("d")
    assert err.count("loaded from the cache") == 1 and len(list(cache.glob("*.pkl"))) == 4
    _, err = fit("e")
    assert err.count("loaded from the cache") == 2                          # the unreadable one was replaced
    (tmp_path / "file").write_text("x")
    assert main([*args[:-1], str(tmp_path / "file"), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cache" in err[0] and not (tmp_path / "f").exists()
