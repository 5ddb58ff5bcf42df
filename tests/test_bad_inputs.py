"""The inputs users actually hit, table-driven: each bad file or option → exit 2, one ``error:`` line
naming the problem, no traceback, nothing written. And the fixes that make good tables of them:
``--columns``, ``--batch-unit sequences``, seeds averaged, dropped cells named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.backtest import main as backtest_main
from bayes_scaling.fit import main as fit_main
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.inputs.runtable import average_seeds, best_runs, validate_runs
from bayes_scaling.plan import main as plan_main

GRIDS = ["--lr-grid", "2^-12:2^-8:1", "--batch-grid", "2^16:2^19:1"]


def sweep(*, D_per_N=((1e9, 4e9), (1e9, 4e9)), seeds=(0,), seq_len: int | None = None, batch_in_sequences=False,
          diverge=()) -> pd.DataFrame:
    """A small full sweep: 2 sizes, their D values, lr 2^-9…2^-6, B 2^16…2^18 tokens; bowls with interior minima.
    ``diverge``: (N, D) cells whose every run diverged."""
    rows = []
    for n, ds in zip((1e8, 2e8), D_per_N):
        for d in ds:
            for lr_e in (-9, -8, -7, -6):
                for b_e in (16, 17, 18):
                    for seed in seeds:
                        loss = 3 - 0.1 * math.log10(n) + 0.2 * (lr_e + 7.5) ** 2 + 0.1 * (b_e - 17) ** 2 + 0.01 * seed
                        status = "diverged" if (n, d) in diverge else "ok"
                        rows.append({"run_id": f"r{len(rows)}", "N": n, "D": d,
                                     "B": 2.0**b_e / (seq_len if batch_in_sequences else 1), "lr": 2.0**lr_e,
                                     "loss": np.nan if status == "diverged" else loss, "status": status, "seed": seed})
    frame = pd.DataFrame(rows)
    if seq_len is not None:
        frame["seq_len"] = seq_len
    return frame


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


GOOD = csv_text(sweep())
HEADER = GOOD.split("\n", 1)[0]
BEST_ONLY = sweep().pipe(lambda f: f.loc[f.groupby(["N", "D"])["loss"].idxmin()])     # one run per cell

# name, command, file content (str/bytes, None: no file), extra args, substrings of the error line
CASES = [
    ("semicolons", "fit", GOOD.replace(",", ";"), [], ["separated by semicolons"]),
    ("semicolons-decimal-commas", "fit", GOOD.replace(",", ";").replace(".", ","), [], ["decimal commas"]),
    ("tabs", "fit", GOOD.replace(",", "\t"), [], ["separated by tabs"]),
    ("utf16", "fit", GOOD.encode("utf-16"), [], ["UTF-16"]),
    ("utf16-no-bom", "fit", GOOD.encode("utf-16-le"), [], ["UTF-16"]),
    ("wandb-names", "fit", GOOD.replace(HEADER, HEADER.replace(",lr,", ",learning_rate,").replace(",B,", ",batch_size,")),
     [], ["missing column(s) 'B', 'lr'", "did you mean --columns B=batch_size,lr=learning_rate"]),
    ("columns-no-such", "fit", GOOD, ["--columns", "lr=learning_rate"], ["--columns lr=learning_rate", "no column 'learning_rate'"]),
    ("columns-unknown-target", "fit", GOOD, ["--columns", "rate=lr"], ["--columns 'rate=lr'", "not a run-table column"]),
    ("columns-no-equals", "fit", GOOD, ["--columns", "lr"], ["--columns 'lr'", "OURS=YOURS"]),
    ("batch-in-sequences", "fit", csv_text(sweep(seq_len=2048, batch_in_sequences=True)), [],
     ["column 'B'", "seq_len 2048", "--batch-unit sequences", "B × seq_len"]),
    ("batch-unit-without-seq-len", "fit", GOOD, ["--batch-unit", "sequences"], ["--batch-unit sequences", "--seq-len"]),
    ("seq-len-zero", "fit", GOOD, ["--batch-unit", "sequences", "--seq-len", "0"], ["--seq-len 0"]),
    ("repeated-run", "fit", csv_text(pd.concat([sweep().drop(columns="seed"), sweep().drop(columns="seed").iloc[[5]]])),
     [], ["appears 2 times", "give each repeat its own seed"]),
    ("repeated-seed", "fit", csv_text(pd.concat([sweep(), sweep().iloc[[5]].assign(loss=9.0)])), [],
     ["appears 2 times", "9", "remove one"]),
    ("one-D-everywhere", "fit", csv_text(sweep(D_per_N=((1e9,), (1e9,)))), [], ["c_D", "cannot be identified", "D = 1e+09"]),
    ("D-a-function-of-N", "fit", csv_text(sweep(D_per_N=((2e9,), (4e9,)))), [], ["D is a function of N", "c_D"]),
    ("every-cell-diverged", "fit", csv_text(sweep(diverge=((1e8, 1e9), (1e8, 4e9), (2e8, 1e9), (2e8, 4e9)))), [],
     ["no cell has a run with status 'ok'"]),
    ("only-one-size-left", "fit", csv_text(sweep(diverge=((2e8, 1e9), (2e8, 4e9)))), [], ["only one model size"]),
    ("out-is-a-file", "fit", GOOD, ["--out", "{tmp}/taken"], ["--out", "not a directory"]),
    ("plan-semicolons", "plan", GOOD.replace(",", ";"), ["--compute", "1e21"], ["separated by semicolons"]),
    ("plan-run-seq-len", "plan", GOOD, ["--compute", "1e21", "--run-seq-len", "-1"], ["--run-seq-len"]),
    ("plan-run-level-kind-on-best-runs", "plan", csv_text(BEST_ONLY),
     ["--compute", "1e21", "--optimum-model", "gp", "--lr-grid", "2^-9:2^-6:1", "--batch-grid", "2^16:2^18:1"],
     ["--optimum-model gp", "needs a sweep"]),
    ("plan-one-D", "plan", csv_text(sweep(D_per_N=((1e9,), (1e9,)))), ["--compute", "1e21"], ["cannot be identified"]),
    ("backtest-splits", "backtest", GOOD, ["--splits", "largest-n,bogus"], ["--splits", "bogus"]),
    ("backtest-approx", "backtest", GOOD, ["--approx", "advi"], ["--approx", "NUTS only"]),
    ("backtest-window", "backtest", GOOD, ["--window", "0"], ["--window", "> 0"]),
    ("backtest-utf16", "backtest", GOOD.encode("utf-16"), [], ["UTF-16"]),
    ("backtest-columns", "backtest", GOOD, ["--columns", "N=size"], ["no column 'size'"]),
    ("backtest-one-D", "backtest", csv_text(sweep(D_per_N=((1e9,), (1e9,)))), [], ["cannot be identified"]),
]
MAINS = {"fit": fit_main, "plan": plan_main, "backtest": backtest_main}


@pytest.mark.parametrize(("name", "command", "content", "args", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, name, command, content, args, expect):
    data = tmp_path / "runs.csv"
    if isinstance(content, str):
        data.write_text(content)
    else:
        data.write_bytes(content)
    (tmp_path / "taken").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "out"
    argv = ["--data", str(data), *args] + ([] if "--out" in args else ["--out", str(out)])
    if command == "fit":
        argv += ["--models", "ols", "--no-plots"]
    rc = MAINS[command](argv)
    captured = capsys.readouterr()
    assert rc == 2, captured
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for fragment in expect:
        assert fragment in lines[0], (fragment, lines[0])
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "taken"]     # no .partial-*, no output


def test_columns_map_an_export_onto_the_run_table(tmp_path):
    renamed = sweep().rename(columns={"lr": "learning_rate", "B": "batch_size", "D": "tokens", "N": "params",
                                      "loss": "val_loss"})
    renamed.to_csv(tmp_path / "export.csv", index=False)
    mapped = load_runs(str(tmp_path / "export.csv"), columns="lr=learning_rate,B=batch_size,D=tokens,N=params,loss=val_loss")
    direct = validate_runs(sweep())
    pd.testing.assert_frame_equal(mapped.runs[direct.columns], direct)


def test_batch_in_sequences_is_converted_to_tokens(tmp_path):
    sweep(seq_len=2048, batch_in_sequences=True).to_csv(tmp_path / "seq.csv", index=False)
    converted = load_runs(str(tmp_path / "seq.csv"), batch_unit="sequences").runs
    np.testing.assert_allclose(converted["B"], sweep()["B"])
    sweep(batch_in_sequences=True, seq_len=512).drop(columns="seq_len").to_csv(tmp_path / "noseq.csv", index=False)
    given = load_runs(str(tmp_path / "noseq.csv"), batch_unit="sequences", seq_len=512).runs
    np.testing.assert_allclose(given["B"], sweep()["B"])
    assert (given["seq_len"] == 512).all()


def test_several_seeds_are_averaged_over_those_that_did_not_diverge():
    runs = sweep(seeds=(0, 1, 2))
    runs.loc[2, ["loss", "status"]] = [np.nan, "diverged"]          # one seed of one configuration blew up
    every_seed_diverged = (runs["N"] == 1e8) & (runs["D"] == 1e9) & (runs["lr"] == 2.0**-6) & (runs["B"] == 2.0**16)
    runs.loc[every_seed_diverged, ["loss", "status"]] = [np.nan, "diverged"]
    avg = average_seeds(validate_runs(runs))
    assert len(avg) == len(runs) // 3 and (avg["n_seeds"] == 3).all()
    first = avg.iloc[0]
    by_hand = runs[(runs["N"] == first["N"]) & (runs["D"] == first["D"]) & (runs["B"] == first["B"])
                   & (runs["lr"] == first["lr"]) & (runs["status"] == "ok")]["loss"].mean()
    assert first["loss"] == pytest.approx(by_hand)
    dead = avg[(avg["N"] == 1e8) & (avg["D"] == 1e9) & (avg["lr"] == 2.0**-6) & (avg["B"] == 2.0**16)].iloc[0]
    assert dead["status"] == "diverged" and np.isnan(dead["loss"])
    assert best_runs(validate_runs(runs)).frame["n_runs"].eq(12).all()      # cells count configurations


def test_dropped_cells_are_named_in_the_console_and_the_manifest(tmp_path, capsys):
    sweep(D_per_N=((1e9, 4e9, 1.6e10), (1e9, 4e9)), diverge=((1e8, 1.6e10),)).to_csv(tmp_path / "runs.csv", index=False)
    assert fit_main(["--data", str(tmp_path / "runs.csv"), "--models", "ols", "--no-plots", "--out", str(tmp_path / "o")]) == 0
    console = capsys.readouterr().out
    assert "dropped cell N=1e+08, D=1.6e+10: all 12 run(s) diverged" in console
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["data"]["dropped"] == ["dropped cell N=1e+08, D=1.6e+10: all 12 run(s) diverged"]


def test_a_size_that_lost_every_cell_is_named():
    lost = sweep().query("N == 1e8").assign(N=4e8, status="diverged", loss=np.nan, run_id=lambda f: "x" + f["run_id"])
    runs = validate_runs(pd.concat([sweep(), lost]))
    best = best_runs(runs)
    assert "dropped model size N=4e+08: every one of its cells diverged" in best.dropped_text()
    assert sorted(best.frame["N"].unique()) == [1e8, 2e8]
