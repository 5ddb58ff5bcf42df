"""Every figure is written whole, readable, and only for the models that were fitted."""

import os
from dataclasses import replace

import matplotlib.image as mpimg
import numpy as np
import pytest

from bayes_scaling.report import jobs
from bayes_scaling.report.figures import optimum as plots
from bayes_scaling.optimum.fit import Fitter
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.evaluation.simulate import TrueLaw, simulate_best_runs

LAW = TrueLaw(intercept=-3.2, b=-0.5, c=0.3, sigma=0.1, tau_c=0.1)


@pytest.fixture(scope="module")
def fitted():
    best, _ = simulate_best_runs(LAW, LAW, sizes=np.array([1e7, 1e8, 1e9]), tokens=np.geomspace(1e9, 1e11, 4),
                                 lr_grid=Grid.parse("2^-12:2^-4:1"), batch_grid=Grid.parse("2^-12:2^-4:1"), seed=4)
    fitter = Fitter(SamplerConfig(draws=200, tune=300, chains=2), n_boot=500)
    fits = {q: {m: fitter.fit(m, best.quantity(q)) for m in ("ols", "quantized", "hierarchical")}
            for q in ("lr", "batch_size")}
    return best, fits


def read_png(path):
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank canvas
    return image


def test_write_all_writes_every_plot_as_a_readable_png(fitted, tmp_path):
    best, fits = fitted
    paths = plots.write_all(tmp_path / "plots", fits, best, [(4e9, 1e11)])
    names = sorted(p.name for p in paths)
    kinds = ("fan", "trace_hierarchical", "ppc_hierarchical", "forest_slopes", "pooled_vs_per_n")
    expected = sorted([f"{kind}_{q}.png" for q in ("lr", "batch_size") for kind in kinds]
                      + [f"trace_quantized_{q}.png" for q in ("lr", "batch_size") if not fits[q]["quantized"].diagnostics.ok])
    assert names == expected
    for p in paths:
        read_png(p)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == expected  # no temp files left


def test_figures_drawn_in_two_processes_are_the_ones_drawn_here(fitted, tmp_path):
    best, fits = fitted
    here = plots.write_all(tmp_path / "here", fits, best, [(4e9, 1e11)])
    there = plots.write_all(tmp_path / "there", fits, best, [(4e9, 1e11)], workers=2)
    assert [p.name for p in there] == [p.name for p in here] and all(p.parent == tmp_path / "there" for p in there)
    for a, b in zip(here, there):
        np.testing.assert_array_equal(read_png(a), read_png(b), err_msg=a.name)
    assert jobs._JOBS == []                       # nothing of this call is left for the next


def _exit_unless_in(parent: int) -> int:
    """A figure job that kills any process but ``parent`` (so a pool breaks) and returns 7 there."""
    if os.getpid() != parent:
        os._exit(3)
    return 7


def test_jobs_run_in_other_processes_and_a_broken_pool_falls_back_to_this_one():
    pids = jobs.run_jobs([(os.getpid, (), {})] * 4, workers=2)
    assert os.getpid() not in pids and len(pids) == 4
    assert jobs.run_jobs([(_exit_unless_in, (os.getpid(),), {})] * 2, workers=2) == [7, 7]
    assert jobs._JOBS == []


def test_a_fit_that_failed_its_checks_gets_a_trace_plot(fitted, tmp_path):
    best, fits = fitted
    failed = replace(fits["lr"]["quantized"].diagnostics, divergences=7)
    only = {"lr": {"quantized": replace(fits["lr"]["quantized"], diagnostics=failed),
                   "hierarchical": replace(fits["lr"]["hierarchical"], diagnostics=replace(failed, divergences=0, max_rhat=1.0,
                                                                                         min_ess_bulk=1e4, min_ess_tail=1e4))}}
    names = sorted(p.name for p in plots.write_all(tmp_path, only, best, [(4e9, 1e11)]))
    assert "trace_quantized_lr.png" in names and "trace_hierarchical_lr.png" in names
    only["lr"]["quantized"] = replace(only["lr"]["quantized"], diagnostics=only["lr"]["hierarchical"].diagnostics)
    names = sorted(p.name for p in plots.write_all(tmp_path / "ok", only, best, [(4e9, 1e11)]))
    assert "trace_quantized_lr.png" not in names and "trace_hierarchical_lr.png" in names


def test_write_all_skips_plots_of_models_not_fitted(fitted, tmp_path):
    best, fits = fitted
    only = {"lr": {"ols": fits["lr"]["ols"], "quantized": fits["lr"]["quantized"]}}
    names = sorted(p.name for p in plots.write_all(tmp_path, only, best, [(4e9, 1e11)]))
    assert names == ["fan_lr.png", "ppc_quantized_lr.png", "trace_quantized_lr.png"]


def test_a_failed_plot_leaves_no_file(fitted, tmp_path):
    best, fits = fitted
    with pytest.raises(KeyError):
        plots.plot_fan(fits["lr"], best, "no_such_quantity", [(4e9, 1e11)], tmp_path / "fan.png")
    assert list(tmp_path.iterdir()) == []
