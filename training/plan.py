"""Sweep spec (TOML or YAML) -> the list of runs, each with a stable id; the plan directory.

A spec has five sections (``examples/ci_tiny.toml`` is a complete one)::

    [data]     DataSpec keys: source, files, tokenizer, seq_len, val_tokens, seed ...
    [model]    the sizes: shapes = [[n_layer, n_head, n_embd], ...]
               or params = [2e4, 1e5]  (target non-embedding sizes, via models.ladder)
    [grid]     D, exactly one of: tokens = [...] | tokens_per_param = [...] | flops = [...]
               batch_tokens = [512, 1024] or "2^9:2^11:1"   (B in tokens, multiples of seq_len)
               lr = "2^-10:2^-6:0.5"  (2^k for k on a 0.5 log2 step) or [1e-3, 3e-3]
               seeds = [0]
               or, instead of [model] and the grids above, one sweep per cell (what
               ``python -m bayes_scaling.advise`` writes):
               cells = [{params = 6e9, tokens = 1.2e11, lr = [...], batch_tokens = [...]}, ...]
    [train]    fixed TrainConfig keys of every run: schedule, warmup_frac, weight_decay ...
    [runtime]  Runtime keys (device, threads, compile, micro_batch_tokens ...)

Runs are the product sizes x D x B x lr x seeds (or each cell's own D x B x lr x seeds), ordered by D, then size. D is rounded to a multiple of the
least common multiple of the B grid, so every B of an (N, D) cell trains exactly the
same tokens (the run table groups cells by exact (N, D)). A FLOP budget C gives
D = C / (6 N).

Run id: the first 12 hex digits of sha256 over the canonical JSON of the run's
TrainConfig and the data recipe (``DataSpec.describe``: file names, not paths). The
same run gets the same id in any plan, on any machine; change anything that can change
its loss (lr, seed, schedule, data) and the id changes. Runtime settings are not in it.

Plan directory::

    plan.json           the spec, the data recipe, the runtime, every run's config and id
    data/               train.bin, val.bin, tokenizer.json, data.json (prepared once)
    runs/<id>/          result.json (written last, atomically) + curve.csv
    locks/<id>.lock     held while a worker trains the run (see claims)
    events.log          one line per start / finish / failure (an audit trail)
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.grids import Grid
from bayes_scaling.io import write_json
from models import flops
from training.data import DataSpec, TokenData, prepare
from training.trainer import Runtime, TrainConfig, counted_params

SECTIONS = ("data", "model", "grid", "train", "runtime")
D_KEYS = ("tokens", "tokens_per_param", "flops")
GRID_KEYS = D_KEYS + ("batch_tokens", "lr", "seeds", "cells")
#: Keys of one entry of ``[grid] cells`` (a sweep of its own: one size, one D, its own grids).
CELL_KEYS = ("params", "shape") + D_KEYS + ("batch_tokens", "lr")
MODEL_KEYS = ("shapes", "params")
MODEL_KEYS_OF_CELL = ("shape", "params")
#: TrainConfig keys a spec's [train] section may set (the rest come from [model]/[grid]/[data]).
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig)
                   if f.name not in ("n_layer", "n_head", "n_embd", "tokens", "batch_tokens", "lr", "seed",
                                     "vocab_size", "seq_len"))
PLAN_FILE = "plan.json"
#: TrainConfig keys that only an MoE run (n_experts > 0) uses.
MOE_KEYS = ("n_experts", "top_k", "aux_loss_coef")


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    config: TrainConfig
    N: int  # non-embedding parameters

    @property
    def flops(self) -> float:
        return flops.training_flops(self.N, self.config.tokens)


@dataclass(frozen=True)
class Plan:
    spec: dict
    data: DataSpec
    runtime: Runtime
    runs: list[PlannedRun]

    @property
    def max_tokens(self) -> int:
        return max(r.config.tokens for r in self.runs)

    def to_json(self) -> dict:
        return {
            "spec": self.spec,
            "data": asdict(self.data),
            "runtime": asdict(self.runtime),
            "runs": [{"run_id": r.run_id, "N": r.N, "flops": r.flops, "config": asdict(r.config)} for r in self.runs],
        }

    @classmethod
    def from_json(cls, d: dict) -> Plan:
        data = d["data"] | {"files": tuple(d["data"]["files"])}
        runs = [PlannedRun(r["run_id"], TrainConfig(**r["config"]), r["N"]) for r in d["runs"]]
        return cls(d["spec"], DataSpec(**data), Runtime(**d["runtime"]), runs)


def load_spec(path: str | Path) -> dict:
    """Read a TOML or YAML spec into a dict; one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such spec file")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise InputError(f"{path}: expected a .toml or .yaml spec")
    text = path.read_text()
    try:
        if suffix == ".toml":
            spec = tomllib.loads(text)
        else:
            import yaml

            spec = yaml.safe_load(text)
    except Exception as err:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise InputError(f"{path}: not valid {suffix[1:].upper()} ({str(err).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise InputError(f"{path}: the spec must be a table of sections ({', '.join(SECTIONS)})")
    return spec


def build_plan(spec: dict, source: str = "spec", data_files: list[str] | None = None) -> Plan:
    """Expand a spec into runs (no data is read: ids and sizes need only the spec)."""
    unknown = sorted(set(spec) - set(SECTIONS))
    if unknown:
        raise InputError(f"{source}: unknown section(s) {', '.join(unknown)}; expected {', '.join(SECTIONS)}")
    sec = {s: spec.get(s, {}) for s in SECTIONS}
    for name, value in sec.items():
        if not isinstance(value, dict):
            raise InputError(f"{source}: [{name}] must be a table")
    data_kw = dict(sec["data"])
    if data_files:
        data_kw["files"], data_kw["source"] = list(data_files), "files"
    data = _construct(DataSpec, data_kw, f"{source}: [data]", tuple_keys=("files",))
    runtime = _construct(Runtime, sec["runtime"], f"{source}: [runtime]")
    _check_keys(sec["grid"], GRID_KEYS, f"{source}: [grid]")
    _check_keys(sec["train"], TRAIN_KEYS, f"{source}: [train]")
    g = sec["grid"]
    seeds = g.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise InputError(f"{source}: [grid] seeds: expected a list of integers, got {seeds!r}")
    if "cells" in g:
        sweeps = _cell_sweeps(sec, g, source, data)
    else:
        _check_keys(sec["model"], MODEL_KEYS, f"{source}: [model]")
        batches = _batches(g, "batch_tokens", source, data)
        lrs = _grid(g, "lr", source)
        d_keys = [k for k in D_KEYS if k in g]
        if len(d_keys) != 1:
            raise InputError(f"{source}: [grid] needs exactly one of {', '.join(D_KEYS)} (got {', '.join(d_keys) or 'none'})")
        d_key = d_keys[0]
        d_values = _positive_list(g[d_key], f"{source}: [grid] {d_key}")
        sweeps = [(shape, d_key, d_value, batches, lrs) for shape in _shapes(sec["model"], source, data)
                  for d_value in d_values]

    runs = []
    for (n_layer, n_head, n_embd), d_key, d_value, batches, lrs in sweeps:
        base = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=data.vocab_size, seq_len=data.seq_len,
                    **sec["train"])
        n_params = counted_params(_construct(TrainConfig, base | dict(tokens=data.seq_len, batch_tokens=data.seq_len, lr=1.0),
                                             f"{source}: run"))
        tokens = {"tokens": d_value, "tokens_per_param": d_value * n_params, "flops": d_value / flops.six_n(n_params)}[d_key]
        quantum = math.lcm(*batches)
        D = max(1, round(tokens / quantum)) * quantum
        for B in batches:
            for lr in lrs:
                for seed in seeds:
                    cfg = _construct(TrainConfig, base | dict(tokens=D, batch_tokens=B, lr=lr, seed=seed),
                                     f"{source}: run")
                    runs.append(PlannedRun(run_id(cfg, data), cfg, n_params))
    # cheapest first: the smallest D at every size, then the next D, so a sweep stopped half-way
    # already spans all sizes (sorted() is stable: B, lr and seed keep their grid order)
    runs = sorted(runs, key=lambda r: (r.config.tokens, r.N))
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise InputError(f"{source}: the grid repeats a run (two sizes or D values coincide after rounding)")
    return Plan(spec=spec, data=data, runtime=runtime, runs=runs)


def run_id(config: TrainConfig, data: DataSpec) -> str:
    """Stable id of a run: sha256 of its config and data recipe, canonical JSON, 12 hex digits.
    A dense run's config leaves out the MoE keys, which cannot change its loss."""
    train = asdict(config)
    if not config.n_experts:
        for key in MOE_KEYS:
            train.pop(key)
    blob = json.dumps({"train": train, "data": data.describe()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_plan(plan: Plan, plan_dir: str | Path) -> TokenData:
    """Create (or extend) a plan directory: prepare the data once, then write plan.json.

    An existing plan directory keeps its runs and results; its data must have the same recipe.
    """
    plan_dir = Path(plan_dir)
    data_dir = plan_dir / "data"
    meta_path = data_dir / "data.json"
    existing = read_plan(plan_dir) if (plan_dir / PLAN_FILE).exists() else None
    if existing is not None and existing.data.describe() != plan.data.describe():
        raise InputError(f"{plan_dir}: holds a plan on different data; plan into a new --out directory")
    need = plan.max_tokens
    if not meta_path.exists() or _needs_more(json.loads(meta_path.read_text()), need):
        prepare(plan.data, data_dir, max_train_tokens=need)
    if existing is not None:
        known = {r.run_id for r in plan.runs}
        plan = Plan(plan.spec, plan.data, plan.runtime, plan.runs + [r for r in existing.runs if r.run_id not in known])
    write_json(plan_dir / PLAN_FILE, plan.to_json())
    return TokenData(data_dir)


def _needs_more(meta: dict, tokens: int) -> bool:
    """Whether prepared data was cut short of ``tokens`` while its source had more to give."""
    return meta["train_tokens_requested"] < tokens and not meta["exhausted"]


def read_plan(plan_dir: str | Path) -> Plan:
    path = Path(plan_dir) / PLAN_FILE
    if not path.is_file():
        raise InputError(f"{plan_dir}: not a plan directory (no {PLAN_FILE}); create one with `python -m training.sweep plan`")
    return Plan.from_json(json.loads(path.read_text()))


def _batches(section: dict, key: str, source: str, data: DataSpec, prefix: str = "[grid] ") -> list[int]:
    batches = [int(b) for b in _grid(section, key, source, prefix)]
    for b in batches:
        if b % data.seq_len:
            raise InputError(f"{source}: {prefix}{key}: {b} is not a multiple of data.seq_len = {data.seq_len}")
    return batches


def _cell_sweeps(sec: dict, g: dict, source: str, data: DataSpec) -> list[tuple]:
    """``[grid] cells``: each entry one (size, D) swept over its own lr and batch grids."""
    if sec["model"]:
        raise InputError(f"{source}: [model] must be empty when [grid] cells name the sizes (params or shape per cell)")
    clash = [k for k in D_KEYS + ("batch_tokens", "lr") if k in g]
    if clash:
        raise InputError(f"{source}: [grid] {', '.join(clash)}: set per cell when [grid] cells is given")
    cells = g["cells"]
    if not isinstance(cells, list) or not cells or not all(isinstance(c, dict) for c in cells):
        raise InputError(f"{source}: [grid] cells: expected a list of tables {{params, tokens, lr, batch_tokens}}")
    sweeps = []
    for i, cell in enumerate(cells):
        where = f"{source}: [grid] cells[{i}]"
        _check_keys(cell, CELL_KEYS, where)
        size = {k: cell[k] for k in MODEL_KEYS_OF_CELL if k in cell}
        if len(size) != 1:
            raise InputError(f"{where}: needs exactly one of params = N or shape = [n_layer, n_head, n_embd]")
        model = {"shapes": [size["shape"]]} if "shape" in size else {"params": [size["params"]]}
        d_keys = [k for k in D_KEYS if k in cell]
        if len(d_keys) != 1:
            raise InputError(f"{where}: needs exactly one of {', '.join(D_KEYS)}")
        (shape,) = _shapes(model, where, data)
        d_value = _positive_list(cell[d_keys[0]], f"{where}: {d_keys[0]}")
        if len(d_value) != 1:
            raise InputError(f"{where}: {d_keys[0]}: one value per cell (add a cell for another D)")
        sweeps.append((shape, d_keys[0], d_value[0], _batches(cell, "batch_tokens", where, data, ""),
                       _grid(cell, "lr", where, "")))
    return sweeps


def _shapes(model: dict, source: str, data: DataSpec) -> list[tuple[int, int, int]]:
    if ("shapes" in model) == ("params" in model):
        raise InputError(f"{source}: [model] needs exactly one of shapes = [[n_layer, n_head, n_embd], ...] or params = [...]")
    if "shapes" in model:
        shapes = model["shapes"]
        ok = isinstance(shapes, list) and shapes and all(
            isinstance(s, list) and len(s) == 3 and all(isinstance(v, int) and v > 0 for v in s) for s in shapes)
        if not ok:
            raise InputError(f"{source}: [model] shapes: expected [[n_layer, n_head, n_embd], ...] of positive integers")
        for n_layer, n_head, n_embd in shapes:
            if n_embd % n_head:
                raise InputError(f"{source}: [model] shapes: n_embd {n_embd} is not divisible by n_head {n_head}")
        return [tuple(s) for s in shapes]
    from models.ladder import shape_for_params

    out = []
    for target in _positive_list(model["params"], f"{source}: [model] params"):
        cfg = shape_for_params(int(target), vocab_size=data.vocab_size, block_size=data.seq_len)
        out.append((cfg.n_layer, cfg.n_head, cfg.n_embd))
    return out


def _grid(section: dict, key: str, source: str, prefix: str = "[grid] ") -> list[float]:
    if key not in section:
        raise InputError(f"{source}: {prefix}{key} is required")
    value, where = section[key], f"{source}: {prefix}{key}"
    if not isinstance(value, str):
        return [float(v) for v in Grid(_positive_list(value, where)).values]
    try:
        return [float(v) for v in Grid.parse(value).values]
    except InputError as err:
        raise InputError(f"{where}: {err}") from None


def _positive_list(value, where: str) -> list[float]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                             for v in values):
        raise InputError(f"{where}: expected positive numbers, got {value!r}")
    return values


def _check_keys(section: dict, known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")


def _construct(cls, kwargs: dict, where: str, tuple_keys: tuple[str, ...] = ()):
    _check_keys(kwargs, tuple(f.name for f in fields(cls)), where)
    kwargs = {k: tuple(v) if k in tuple_keys and isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return cls(**kwargs)
    except InputError as err:
        raise InputError(f"{where}: {err}") from None
    except TypeError as err:
        raise InputError(f"{where}: {err}") from None
