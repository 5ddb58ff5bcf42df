"""nutpie's numba compile with its C callbacks cached on disk, so a model compiles once per machine.

``nutpie.compile_pymc_model`` wraps the PyTensor log-density in two ``numba.cfunc`` callbacks
(log-density + gradient, and the draws' expansion) that nuts-rs calls. Their source is built with
random field names and the data arrays frozen in as globals, so numba cannot cache them: each
process compiles the whole log-density to machine code again, most of a cold compile.
:func:`compile_pymc_model` writes the same two callbacks as plain generated source — the data
are read through the pointer table nutpie already passes them in, ``user_data`` — and registers
them with PyTensor's numba cache under a key made of the inner function's own PyTensor cache key
and the data layout. It also stores a small record of the compiled model (sizes, names, the data
layout, the callbacks' keys) under :func:`model_key`, a key of the graph *before* PyTensor
rewrites it: a second process with the same graph — whatever its data — reads the record and
loads the callbacks from disk without rewriting or compiling anything
(``benchmarks/bench_compile_cache.py``; the first compile of a graph pays ~10 % more, for
writing the machine code out).

The nutpie model object, its ``with_data`` and its sampler are nutpie's own
(``CompiledPyMCModel``); only the two callbacks differ, and a model loaded from its record has no
PyTensor functions (``logp_func``, ``expand_func`` are None: nutpie's sampler does not use them).
nutpie's private helpers are used, so :func:`available` checks they are there and
:func:`compile_pymc_model` otherwise falls back to ``nutpie.compile_pymc_model``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

#: Part of every cache key: bump it when the generated source below changes its meaning.
WRAPPER_VERSION = "2"

LOGP_SIGNATURE = "int64(uint64, CPointer(float64), CPointer(float64), CPointer(float64), voidptr)"
EXPAND_SIGNATURE = "int64(uint64, uint64, CPointer(float64), CPointer(float64), voidptr)"


#: nutpie releases whose private helpers this module was written against and tested with
TESTED_NUTPIE = ("0.16.",)


def available() -> bool:
    """Whether this nutpie (a tested release) and PyTensor expose what the cached compile uses."""
    try:
        import nutpie
        from nutpie.compile_pymc import (  # noqa: F401
            CompiledPyMCModel, _compute_shapes, _make_functions, _prepare_dims_and_coords,
            _rv_dict_to_flat_array_wrapper, _wrap_with_lock, address_as_void_pointer, make_user_data)
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src  # noqa: F401
    except ImportError:
        return False
    return nutpie.__version__.startswith(TESTED_NUTPIE)


def compile_pymc_model(model):
    """``nutpie.compile_pymc_model(model)`` (numba backend, defaults), its callbacks cached on disk, and
    the whole compile skipped when a model with the same graph was compiled before (:func:`model_key`)."""
    import nutpie

    if not available():
        return nutpie.compile_pymc_model(model)
    from nutpie.compile_pymc import _compute_shapes

    outputs = [model.logp(), *model.unobserved_value_vars]   # what nutpie compiles: log-density, expansion
    key = model_key(model, outputs, _compute_shapes(model))
    compiled = _load(model, outputs, key) if key is not None else None
    return compiled if compiled is not None else _compile(model, key)


def model_key(model, outputs: list, shapes: dict) -> str | None:
    """A key of everything the compiled model depends on but the data, read before PyTensor rewrites
    the graph (the rewrites are most of a warm compile): the log-density and the expanded variables
    as PyTensor prints them with their types, every constant's bytes, the free variables' shapes and
    the library versions and the PyTensor settings that change the rewrites or the machine code. None
    when PyTensor's numba cache is off, or when the graph holds an op with an inner graph (Scan,
    OpFromGraph), whose constants the printed graph shortens: such a model is always compiled."""
    import nutpie
    import numba
    import pymc
    import pytensor
    from pytensor.graph.basic import Constant
    from pytensor.graph.op import HasInnerGraph
    from pytensor.graph.traversal import ancestors

    config = pytensor.config
    if not config.numba__cache:
        return None
    variables = list(ancestors(outputs))
    if any(var.owner is not None and isinstance(var.owner.op, HasInnerGraph) for var in variables):
        return None
    digest = hashlib.sha256()
    for part in (WRAPPER_VERSION, nutpie.__version__, pymc.__version__, pytensor.__version__, numba.__version__,
                 config.floatX, str(model.check_bounds), config.optimizer, config.optimizer_including,
                 config.optimizer_excluding, config.optimizer_requiring, str(config.numba__fastmath),
                 repr(sorted((name, [int(n) for n in shape]) for name, shape in shapes.items())),
                 repr([model.rvs_to_values[v].name for v in model.free_RVs]),
                 pytensor.dprint(outputs, file="str", print_type=True)):
        digest.update(part.encode() + b"\0")
    for var in variables:
        if isinstance(var, Constant):
            value = np.asarray(var.data)
            data = repr(value.tolist()).encode() if value.dtype == object else value.tobytes()
            digest.update(f"{value.dtype.str}{value.shape}".encode() + data)
    return digest.hexdigest()


def _record_path(key: str):
    from pytensor.link.numba.cache import NUMBA_CACHE_PATH

    return NUMBA_CACHE_PATH / f"bayes_scaling_model_{key}.json"


def _compile(model, key: str | None):
    """nutpie's compile with the callbacks written as cacheable source; the record for :func:`_load`
    stored under ``key``."""
    from nutpie.compile_pymc import (CompiledPyMCModel, _make_functions, _prepare_dims_and_coords,
                                     _wrap_with_lock)
    from pymc.initial_point import make_initial_point_fn

    initial_point = _wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True))
    n_dim, n_expanded, logp_pt, expand_pt, initial_point_fn, shape_info, reparameterized = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=initial_point)

    shared_keys: dict = {}                   # shared variable -> its field in user_data, in a fixed order
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        shared_keys.setdefault(var, f"s{len(shared_keys)}")
    shared_data, user_data, slots = _user_data(shared_keys)
    logp_args = [shared_keys[v] for v in logp_pt.get_shared()]
    expand_args = [shared_keys[v] for v in expand_pt.get_shared()]
    sizes = {"n_words": user_data.dtype.itemsize // 8, "n_dim": n_dim, "n_expanded": n_expanded}
    logp_func, logp_key = _callback("logp", logp_pt.vm.jit_fn, logp_args, slots, sizes)
    expand_func, expand_key = _callback("expand", expand_pt.vm.jit_fn, expand_args, slots, sizes)
    logp_c, expand_c = _cfunc("logp", logp_func, logp_key), _cfunc("expand", expand_func, expand_key)
    if key is not None and logp_key is not None and expand_key is not None:
        names, slices, shapes = shape_info
        _store(key, {"n_dim": int(n_dim), "n_expanded": int(n_expanded), "names": names,
                     "slices": [[int(sl.start), int(sl.stop)] for sl in slices],
                     "shapes": [[int(n) for n in sh] for sh in shapes],
                     "reparameterized": reparameterized, "shared": [[v.name, k] for v, k in shared_keys.items()],
                     "slots": slots, "logp_args": logp_args, "expand_args": expand_args,
                     "logp_key": logp_key, "expand_key": expand_key})
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    return CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_c, compiled_expand_func=expand_c, initial_point_func=initial_point_fn,
        shared_data=shared_data, shared_var_keys=shared_keys, user_data=user_data, n_expanded=n_expanded,
        shape_info=shape_info, logp_func=logp_pt, expand_func=expand_pt, reparameterized_names=reparameterized)


def _load(model, outputs: list, key: str):
    """The compiled model from the record stored under ``key`` and the callbacks' machine code in
    numba's cache, without rewriting or compiling any graph; None when either is missing or does not
    fit this model (then the caller compiles)."""
    import json

    from nutpie.compile_pymc import (CompiledPyMCModel, _prepare_dims_and_coords, _rv_dict_to_flat_array_wrapper,
                                     _wrap_with_lock)
    from pymc.initial_point import make_initial_point_fn
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import ancestors

    try:
        record = json.loads(_record_path(key).read_text())
    except (OSError, ValueError):
        return None
    found: dict = {}
    for var in ancestors(outputs):
        if isinstance(var, SharedVariable) and var.name is not None:
            found.setdefault(var.name, set()).add(var)
    if any(len(found.get(name, ())) != 1 for name, _ in record["shared"]):
        return None
    shared_keys = {next(iter(found[name])): k for name, k in record["shared"]}
    shared_data, user_data, slots = _user_data(shared_keys)
    if json.loads(json.dumps(slots)) != record["slots"]:
        return None
    sizes = {"n_words": user_data.dtype.itemsize // 8, "n_dim": record["n_dim"], "n_expanded": record["n_expanded"]}
    try:
        logp_c, expand_c = (
            _cfunc(which, _function(which, _NOT_COMPILED, _source(which, record[f"{which}_args"], slots, sizes),
                                    record[f"{which}_key"]), record[f"{which}_key"])
            for which in ("logp", "expand"))
    except Exception:  # noqa: BLE001 -- not in numba's cache (cleared, or another numba): compile afresh
        return None
    names, shapes = record["names"], [tuple(sh) for sh in record["shapes"]]
    shape_info = (names, [slice(a, b) for a, b in record["slices"]], shapes)
    n_free = len(model.free_RVs)
    initial_point_fn = _rv_dict_to_flat_array_wrapper(_wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True)),
        names=names[:n_free], shapes=shapes[:n_free])
    dims, coords = _prepare_dims_and_coords(model, shape_info, record["reparameterized"])
    return CompiledPyMCModel(
        _n_dim=record["n_dim"], dims=dims, _coords=coords, _shapes=dict(zip(names, shapes)),
        compiled_logp_func=logp_c, compiled_expand_func=expand_c, initial_point_func=initial_point_fn,
        shared_data=shared_data, shared_var_keys=shared_keys, user_data=user_data, n_expanded=record["n_expanded"],
        shape_info=shape_info, logp_func=None, expand_func=None, reparameterized_names=record["reparameterized"])


def _NOT_COMPILED(*args):  # noqa: N802 -- stands in for the inner function when the callbacks load from disk
    raise RuntimeError("the cached callback's inner function was not compiled")


def _store(key: str, record: dict) -> None:
    """Write the record atomically (a reader sees the old file, none, or the new one)."""
    import json
    import os
    import tempfile

    path = _record_path(key)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)   # a read-only or full cache: the next process compiles again


def _user_data(shared_keys: dict) -> tuple[dict, np.ndarray, dict]:
    """The shared variables' values (read-only copies), nutpie's ``user_data`` table and its slots."""
    from nutpie.compile_pymc import make_user_data

    shared_data = {}
    for var, key in shared_keys.items():
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
    user_data = make_user_data(shared_keys, shared_data)
    return shared_data, user_data, _slots(user_data.dtype, shared_keys, shared_data)


def _slots(dtype: np.dtype, keys: dict, data: dict) -> dict[str, tuple[int, int, list[int], str]]:
    """Per field: the uint64 word of its data pointer, of its size, of each shape entry, and its dtype."""
    shared, base = dtype.fields["shared"]
    words = {}
    for key in keys.values():
        offsets = [shared.fields[part][1] + shared.fields[part][0].fields[key][1] + base
                   for part in ("data", "size", "shape")]
        sizes = [shared.fields[part][0].fields[key][0].base.itemsize for part in ("data", "size", "shape")]
        if any(o % 8 for o in offsets) or any(n != 8 for n in sizes) or dtype.itemsize % 8:
            raise ValueError("nutpie's user_data is not a table of 8-byte words")
        ndim = data[key].ndim
        words[key] = (offsets[0] // 8, offsets[1] // 8, [offsets[2] // 8 + i for i in range(ndim)],
                      data[key].dtype.name)
    return words


#: The callbacks copy their results element by element: ``out[...] = grad`` made numba compile its
#: generic broadcasting assignment (and its error path) into each callback, ~4.6 s of a 24 s cold compile.
_LOGP_SRC = '''
def logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        words = carray(user_data_, ({n_words},), np.uint64)
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_dim},))
        logp = carray(logp_, (1,))
{unpack}
        logp_val, grad = inner(x{args})
        logp[0] = logp_val
        finite = True
        for i in range({n_dim}):
            out[i] = grad[i]
            finite = finite and np.isfinite(grad[i])
        if not finite:
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:  # noqa: BLE001
        return 1
    return 0
'''

_EXPAND_SRC = '''
def expand_callback(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        words = carray(user_data_, ({n_words},), np.uint64)
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_expanded},))
{unpack}
        (values,) = inner(x{args})
        for i in range({n_expanded}):
            out[i] = values[i]
    except Exception:  # noqa: BLE001
        return -2
    return 0
'''

#: per callback: its source template and C signature
_TEMPLATES = {"logp": (_LOGP_SRC, LOGP_SIGNATURE), "expand": (_EXPAND_SRC, EXPAND_SIGNATURE)}


def _cfunc(which: str, func, key: str | None):
    """The C callback of ``func``; kept in PyTensor's numba cache folder when it has a ``key``."""
    import warnings

    import numba

    with warnings.catch_warnings():       # an inner graph numba cannot cache: compiled here, as nutpie does
        warnings.filterwarnings("ignore", message=".*Cannot cache compiled function", category=numba.NumbaWarning)
        return numba.cfunc(_TEMPLATES[which][1], cache=key is not None)(func)


def _callback(which: str, inner, args: list[str], slots: dict, sizes: dict) -> tuple[object, str | None]:
    """The callback's Python function and its cache key: one of the inner function's own key and this
    source (None when the inner one has none or PyTensor's cache is off: it is then not cached)."""
    import pytensor
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    src = _source(which, args, slots, sizes)
    inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    key = None
    if inner_key is not None and pytensor.config.numba__cache:
        key = hashlib.sha256(f"{WRAPPER_VERSION}|{inner_key}|{src}".encode()).hexdigest()
    return _function(which, inner, src, key), key


def _source(which: str, args: list[str], slots: dict, sizes: dict) -> str:
    """The callback's source: ``args`` read from the ``user_data`` words at ``slots``."""
    lines = []
    for i, key in enumerate(args):
        data, size, shape, dtype = slots[key]
        dims = "".join(f"np.intp(words[{w}]), " for w in shape)
        lines.append(f"        a{i} = carray(as_pointer(words[{data}]), (np.intp(words[{size}]),), np.{dtype})"
                     f".reshape(({dims}))")
    return _TEMPLATES[which][0].format(unpack="\n".join(lines) or "        pass",
                                       args="".join(f", a{i}" for i in range(len(args))), **sizes)


def _function(which: str, inner, src: str, key: str | None):
    """The callback's Python function from ``src``, registered with PyTensor's numba cache under ``key``."""
    from nutpie.compile_pymc import address_as_void_pointer
    from numba import carray
    from pytensor.link.numba.cache import compile_numba_function_src

    # __name__: numba's cached environment names an importable module
    return compile_numba_function_src(
        src, f"{which}_callback",
        {"__name__": __name__, "np": np, "carray": carray, "as_pointer": address_as_void_pointer, "inner": inner},
        cache_key=key)
