"""nutpie's compile with its C callbacks cached on disk (``inference.numba_cache``): the callbacks
compute what nutpie's own do, swap data the same way, and a fresh compile of the same graph loads
them from the cache instead of compiling them."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import nutpie
import pymc as pm
import pytest

from bayes_scaling.inference import numba_cache

pytestmark = pytest.mark.skipif(not numba_cache.available(), reason="this nutpie lacks the helpers the cache uses")


def model(y: np.ndarray, x: np.ndarray, a_scale: float = 2.0) -> pm.Model:
    """A regression with two data arrays of different ranks and a positive parameter."""
    with pm.Model() as m:
        table = pm.Data("table", np.stack([x, y]))
        weight = pm.Data("weight", 1.5)
        a, b = pm.Normal("a", 0, a_scale), pm.Normal("b", 0, 2)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("obs", weight * (a + b * table[0]), sigma, observed=table[1])
    return m


def logp(compiled, x: np.ndarray) -> tuple[int, float, np.ndarray]:
    """Call the compiled log-density callback as nuts-rs does: (status, log p, gradient)."""
    ptr = ctypes.POINTER(ctypes.c_double)
    grad, value = np.zeros(compiled.n_dim), np.zeros(())
    status = compiled.compiled_logp_func.ctypes(compiled.n_dim, x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr),
                                                value.ctypes.data_as(ptr),
                                                ctypes.c_void_p(compiled.user_data.ctypes.data))
    return status, float(value), grad


def expand(compiled, x: np.ndarray) -> np.ndarray:
    ptr = ctypes.POINTER(ctypes.c_double)
    out = np.zeros(compiled.n_expanded)
    assert compiled.compiled_expand_func.ctypes(compiled.n_dim, compiled.n_expanded, x.ctypes.data_as(ptr),
                                                out.ctypes.data_as(ptr),
                                                ctypes.c_void_p(compiled.user_data.ctypes.data)) == 0
    return out


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    m = model(1.0 + 0.5 * x + 0.1 * rng.normal(size=20), x)
    return numba_cache.compile_pymc_model(m), nutpie.compile_pymc_model(m)


def test_the_cached_callbacks_compute_what_nutpies_do(pair):
    ours, theirs = pair
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.normal(size=ours.n_dim)
        s1, v1, g1 = logp(ours, x)
        s2, v2, g2 = logp(theirs, x)
        assert s1 == s2 == 0 and v1 == pytest.approx(v2, rel=1e-12) and np.allclose(g1, g2, rtol=1e-12)
        assert np.allclose(expand(ours, x), expand(theirs, x), rtol=1e-12, atol=0)
    # a point where the log-density or its gradient is not finite (σ = e^1000): the same error status
    bad = np.full(ours.n_dim, 1e3)
    assert logp(ours, bad)[0] == logp(theirs, bad)[0] != 0
    # a gradient by finite differences: the callback's is the log-density's
    x, h = rng.normal(size=ours.n_dim), 1e-6
    numeric = [(logp(ours, x + h * e)[1] - logp(ours, x - h * e)[1]) / (2 * h) for e in np.eye(ours.n_dim)]
    assert np.allclose(logp(ours, x)[2], numeric, rtol=1e-5, atol=1e-6)


def test_swapped_data_reach_the_cached_callbacks(pair):
    ours, theirs = pair
    rng = np.random.default_rng(2)
    new = np.stack([rng.normal(size=7), rng.normal(size=7)])          # fewer observations, as a refit has
    a, b = ours.with_data(table=new, weight=0.5), theirs.with_data(table=new, weight=0.5)
    x = rng.normal(size=ours.n_dim)
    assert logp(a, x)[1] == pytest.approx(logp(b, x)[1], rel=1e-12)
    assert logp(a, x)[1] != pytest.approx(logp(ours, x)[1])


def test_sampling_from_the_cached_compile_gives_nutpies_draws(pair):
    ours, theirs = pair
    draws = [nutpie.sample(c, draws=100, tune=100, chains=1, cores=1, seed=5, progress_bar=False)
             for c in (ours, theirs)]
    assert np.array_equal(draws[0]["posterior"]["b"].values, draws[1]["posterior"]["b"].values)


def test_a_second_process_loads_the_callbacks_from_the_cache(pair):
    """The fixture compiled this graph (and so stored it); a new process compiling it finds both
    callbacks in the cache and compiles neither, while a graph that differs (another prior) finds
    no log-density callback there and computes its own log-density."""
    rng_scale = float(np.random.default_rng().uniform(3.0, 9.0))   # a graph no earlier run has compiled
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import numpy as np, test_numba_cache as t\n"
        "from bayes_scaling.inference import numba_cache\n"
        "rng = np.random.default_rng(0); x = rng.normal(size=20)\n"
        "c = numba_cache.compile_pymc_model(t.model(1.0 + 0.5 * x + 0.1 * rng.normal(size=20), x))\n"
        "print(c.compiled_logp_func.cache_hits, c.compiled_expand_func.cache_hits)\n"
        f"other = numba_cache.compile_pymc_model(t.model(1.0 + 0.5 * x, x, a_scale={rng_scale!r}))\n"
        "p = np.full(other.n_dim, 0.3)\n"
        "print(other.compiled_logp_func.cache_hits, t.logp(other, p)[1], "
        f"t.logp(t.nutpie.compile_pymc_model(t.model(1.0 + 0.5 * x, x, a_scale={rng_scale!r})), p)[1])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    same, other = out.stdout.strip().splitlines()[-2:]
    assert same.split() == ["1", "1"], out.stderr[-2000:]
    hits, ours, theirs = other.split()
    assert hits == "0" and float(ours) == pytest.approx(float(theirs), rel=1e-12)


def test_without_the_helpers_nutpies_own_compile_is_used(monkeypatch):
    monkeypatch.setattr(numba_cache, "available", lambda: False)
    m = model(np.ones(5), np.arange(5.0))
    compiled = numba_cache.compile_pymc_model(m)
    assert len(compiled.shared_var_keys) == 2
    assert not any(key.startswith("s") and key[1:].isdigit() for key in compiled.shared_var_keys.values())



LOADER = """
import sys; sys.path.insert(0, {here!r})
import numpy as np, nutpie, test_numba_cache as t
from bayes_scaling.inference import numba_cache
if {load_only!r}:                                   # rewriting or compiling the graph here fails the test
    import nutpie.compile_pymc as cp
    def refuse(*args, **kwargs):
        raise AssertionError("compiled, not loaded")
    cp._make_functions = refuse
rng = np.random.default_rng(0); x = rng.normal(size=20)
c = numba_cache.compile_pymc_model(t.model(1.0 + 0.5 * x + {shift!r}, x, a_scale={scale!r}))
p = np.full(c.n_dim, 0.3)
d = nutpie.sample(c, draws=50, tune=50, chains=1, cores=1, seed=5, progress_bar=False)
print(c.logp_func is None, t.logp(c, p)[1], d["posterior"]["b"].values.sum())
"""


def loaded_in_a_new_process(scale: float, shift: float, load_only: bool) -> tuple[bool, float, float]:
    """Compile ``model`` in a new process (``load_only``: where nutpie's graph compile raises): (loaded
    without compiling?, log-density at 0.3, sum of 50 draws of b)."""
    out = subprocess.run([sys.executable, "-c", LOADER.format(here=str(Path(__file__).parent), scale=scale,
                                                              shift=shift, load_only=load_only)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded, value, draws = out.stdout.split()[-3:]
    return loaded == "True", float(value), float(draws)


def test_a_compiled_graph_is_loaded_whole_in_a_new_process_with_its_own_data():
    """The first compile of a graph stores it; a process compiling the same graph with other data rewrites
    and compiles nothing, yet computes nutpie's log-density of its data and samples nutpie's draws."""
    scale = float(np.random.default_rng().uniform(3.0, 9.0))   # a graph no earlier run has compiled
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    first = loaded_in_a_new_process(scale, shift=0.0, load_only=False)
    assert not first[0]
    again = loaded_in_a_new_process(scale, shift=0.0, load_only=True)
    assert again[0] and again[1:] == first[1:]
    other_data = loaded_in_a_new_process(scale, shift=0.25, load_only=True)
    theirs = nutpie.compile_pymc_model(model(1.0 + 0.5 * x + 0.25, x, a_scale=scale))
    draws = nutpie.sample(theirs, draws=50, tune=50, chains=1, cores=1, seed=5, progress_bar=False)
    assert other_data[0]
    assert other_data[1] == pytest.approx(logp(theirs, np.full(theirs.n_dim, 0.3))[1], rel=1e-12)
    assert other_data[1] != pytest.approx(first[1])
    assert other_data[2] == pytest.approx(draws["posterior"]["b"].values.sum(), rel=1e-12)


def test_the_model_key_follows_the_graph_and_not_the_data():
    import pytensor.tensor as pt
    from nutpie.compile_pymc import _compute_shapes
    from pytensor.compile.builders import OpFromGraph

    def key(m: pm.Model) -> str | None:
        return numba_cache.model_key(m, [m.logp(), *m.unobserved_value_vars], _compute_shapes(m))

    x = np.arange(6.0)
    base = key(model(x, x))
    assert base is not None and key(model(x + 1.0, x)) == base          # new data: the same compiled graph
    assert key(model(x, x, a_scale=3.0)) != base                         # another prior constant
    assert key(model(x[:4], x[:4])) == base                              # data sizes are read at run time
    with pm.Model() as wider:                                            # another shape of a free variable
        table = pm.Data("table", np.stack([x, x]))
        weight = pm.Data("weight", 1.5)
        a, b = pm.Normal("a", 0, 2.0), pm.Normal("b", 0, 2, shape=2)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("obs", weight * (a + b[0] * table[0]), sigma, observed=table[1])
    assert key(wider) != base
    inner = pt.scalar("inner")                                           # an inner graph: never keyed, compiled
    twice = OpFromGraph([inner], [2.0 * inner])
    with model(x, x) as nested:
        pm.Potential("nested", twice(nested["a"]))
    assert key(nested) is None


def test_a_record_whose_machine_code_is_gone_is_compiled_again():
    """A record pointing at callbacks numba's cache does not hold (cleared, another numba): compiled afresh,
    and the record is written again."""
    import json

    from nutpie.compile_pymc import _compute_shapes

    m = model(np.ones(5), np.arange(5.0), a_scale=float(np.random.default_rng().uniform(3.0, 9.0)))
    numba_cache.compile_pymc_model(m)                                    # stores the record
    outputs = [m.logp(), *m.unobserved_value_vars]
    path = numba_cache._record_path(numba_cache.model_key(m, outputs, _compute_shapes(m)))
    record = json.loads(path.read_text())
    path.write_text(json.dumps(record | {"logp_key": "0" * 64}))
    compiled = numba_cache.compile_pymc_model(m)
    assert compiled.logp_func is not None and logp(compiled, np.zeros(compiled.n_dim))[0] == 0
    assert json.loads(path.read_text()) == record
    assert numba_cache.compile_pymc_model(m).logp_func is None
