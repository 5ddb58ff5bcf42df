"""nutpie's numba compile with its C callbacks cached on disk, so a model compiles once per machine.

``nutpie.compile_pymc_model`` wraps the PyTensor log-density in two ``numba.cfunc`` callbacks
(log-density + gradient, and the draws' expansion) that nuts-rs calls. Their source is built with
random field names and the data arrays frozen in as globals, so numba cannot cache them: each
process compiles the whole log-density to machine code again, most of a compile.
:func:`compile_pymc_model` writes the same two callbacks as plain generated source — the data
are read through the pointer table nutpie already passes them in, ``user_data`` — and registers
them with PyTensor's numba cache under a key made of the inner function's own PyTensor cache key
and the data layout. A second process with the same graph loads them from disk
(``benchmarks/bench_compile_cache.py``: about 3x faster compiles; the first compile of a graph
pays ~10 % more, for writing the machine code out).

The nutpie model object, its ``with_data`` and its sampler are nutpie's own
(``CompiledPyMCModel``); only the two callbacks differ. nutpie's private helpers are used, so
:func:`available` checks they are there and :func:`compile_pymc_model` otherwise falls back to
``nutpie.compile_pymc_model``.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Part of every cache key: bump it when the generated source below changes its meaning.
WRAPPER_VERSION = "1"

LOGP_SIGNATURE = "int64(uint64, CPointer(float64), CPointer(float64), CPointer(float64), voidptr)"
EXPAND_SIGNATURE = "int64(uint64, uint64, CPointer(float64), CPointer(float64), voidptr)"


#: nutpie releases whose private helpers this module was written against and tested with
TESTED_NUTPIE = ("0.16.",)


def available() -> bool:
    """Whether this nutpie (a tested release) and PyTensor expose what the cached compile uses."""
    try:
        import nutpie
        from nutpie.compile_pymc import (  # noqa: F401
            CompiledPyMCModel, _make_functions, _prepare_dims_and_coords, _wrap_with_lock,
            address_as_void_pointer, make_user_data)
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src  # noqa: F401
    except ImportError:
        return False
    return nutpie.__version__.startswith(TESTED_NUTPIE)


def compile_pymc_model(model):
    """``nutpie.compile_pymc_model(model)`` (numba backend, defaults), its callbacks cached on disk."""
    import nutpie

    if not available():
        return nutpie.compile_pymc_model(model)
    from nutpie.compile_pymc import (CompiledPyMCModel, _make_functions, _prepare_dims_and_coords,
                                     _wrap_with_lock, make_user_data)
    from pymc.initial_point import make_initial_point_fn

    initial_point = _wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True))
    n_dim, n_expanded, logp_pt, expand_pt, initial_point_fn, shape_info, reparameterized = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=initial_point)

    shared_keys: dict = {}                   # shared variable -> its field in user_data, in a fixed order
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        shared_keys.setdefault(var, f"s{len(shared_keys)}")
    shared_data = {}
    for var, key in shared_keys.items():
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
    user_data = make_user_data(shared_keys, shared_data)
    slots = _slots(user_data.dtype, shared_keys, shared_data)

    logp_args = [shared_keys[v] for v in logp_pt.get_shared()]
    expand_args = [shared_keys[v] for v in expand_pt.get_shared()]
    n_words = user_data.dtype.itemsize // 8
    logp_c = _cfunc(LOGP_SIGNATURE, *_callback(_LOGP_SRC, "logp_callback", logp_pt.vm.jit_fn, logp_args, slots,
                                               n_words=n_words, n_dim=n_dim))
    expand_c = _cfunc(EXPAND_SIGNATURE, *_callback(_EXPAND_SRC, "expand_callback", expand_pt.vm.jit_fn, expand_args,
                                                   slots, n_words=n_words, n_dim=n_dim, n_expanded=n_expanded))
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    return CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_c, compiled_expand_func=expand_c, initial_point_func=initial_point_fn,
        shared_data=shared_data, shared_var_keys=shared_keys, user_data=user_data, n_expanded=n_expanded,
        shape_info=shape_info, logp_func=logp_pt, expand_func=expand_pt, reparameterized_names=reparameterized)


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


_LOGP_SRC = '''
def logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        words = carray(user_data_, ({n_words},), np.uint64)
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_dim},))
        logp = carray(logp_, ())
{unpack}
        logp_val, grad = inner(x{args})
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
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
        out[...] = values
    except Exception:  # noqa: BLE001
        return -2
    return 0
'''


def _cfunc(signature: str, func, cached: bool):
    """The C callback of ``func``; kept in PyTensor's numba cache folder when ``cached``."""
    import warnings

    import numba

    with warnings.catch_warnings():       # an inner graph numba cannot cache: compiled here, as nutpie does
        warnings.filterwarnings("ignore", message=".*Cannot cache compiled function", category=numba.NumbaWarning)
        return numba.cfunc(signature, cache=cached)(func)


def _callback(template: str, name: str, inner, args: list[str], slots: dict, **sizes: int) -> tuple[object, bool]:
    """The callback's Python function from ``template``, and whether PyTensor's numba cache holds it
    (under a key of the inner function's own key and this source; not when the inner one has none
    or PyTensor's cache is off)."""
    import pytensor
    from nutpie.compile_pymc import address_as_void_pointer
    from numba import carray
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    lines = []
    for i, key in enumerate(args):
        data, size, shape, dtype = slots[key]
        dims = "".join(f"np.intp(words[{w}]), " for w in shape)
        lines.append(f"        a{i} = carray(as_pointer(words[{data}]), (np.intp(words[{size}]),), np.{dtype})"
                     f".reshape(({dims}))")
    src = template.format(unpack="\n".join(lines) or "        pass",
                          args="".join(f", a{i}" for i in range(len(args))), **sizes)
    inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    key = None
    if inner_key is not None and pytensor.config.numba__cache:
        key = hashlib.sha256(f"{WRAPPER_VERSION}|{inner_key}|{src}".encode()).hexdigest()
    # __name__: numba's cached environment names an importable module
    func = compile_numba_function_src(
        src, name, {"__name__": __name__, "np": np, "carray": carray, "as_pointer": address_as_void_pointer,
                    "inner": inner},
        cache_key=key)
    return func, key is not None
