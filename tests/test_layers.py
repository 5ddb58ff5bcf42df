"""The package's import graph: layers only import downwards, no import-time cycles, and the
trainer never pulls PyMC into a worker."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Every unit of ``bayes_scaling`` and its layer, lowest first. A module may import its own unit
#: and any lower layer; never a unit of its own layer or of a higher one.
LAYERS = {
    "bayes_scaling.errors": 0,
    "bayes_scaling.io": 1, "bayes_scaling.progress": 1,
    "bayes_scaling.inputs": 2,
    "bayes_scaling.math": 3,
    "bayes_scaling.inference": 4,
    "bayes_scaling.optimum": 5, "bayes_scaling.laws": 5,
    "bayes_scaling.surface": 6,
    "bayes_scaling.catalog": 7,
    "bayes_scaling.planning": 8, "bayes_scaling.evaluation": 8,
    "bayes_scaling.report": 9,
    "bayes_scaling.cli": 10,
    "bayes_scaling.api": 11, "bayes_scaling.fit": 11, "bayes_scaling.plan": 11, "bayes_scaling.backtest": 11,
    "bayes_scaling.advise": 11,
}
#: What ``training`` may take from ``bayes_scaling``: the light units (no PyMC, no ArviZ).
TRAINING_MAY_IMPORT = ("bayes_scaling.errors", "bayes_scaling.io", "bayes_scaling.inputs")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at import time?) for every import in a file; ``at import time`` is False
    inside functions and ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, runtime: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = runtime
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = False
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = False
            if isinstance(child, ast.Import):
                found.extend((alias.name, runtime) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, runtime))
                found.extend((f"{child.module}.{alias.name}", runtime) for alias in child.names)
            visit(child, inner)

    visit(tree, True)
    return found


def unit(module: str) -> str | None:
    return next((u for u in LAYERS if module == u or module.startswith(u + ".")), None)


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    missing = [module_name(p) for p in package_files("bayes_scaling")
               if module_name(p) != "bayes_scaling" and unit(module_name(p)) is None]
    assert not missing, f"give these a layer in LAYERS: {missing}"


def test_layers_import_only_downwards():
    wrong = []
    for path in package_files("bayes_scaling"):
        here = module_name(path)
        if here == "bayes_scaling":
            continue
        for target, _ in imports(path):
            there = unit(target)
            if there is None or there == unit(here):
                continue
            if LAYERS[there] >= LAYERS[unit(here)]:
                wrong.append(f"{here} -> {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_time_cycles():
    modules = {module_name(p): p for p in package_files("bayes_scaling")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {t for t, runtime in imports(path) if runtime and t in modules and t != name}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_training_imports_only_the_light_modules():
    wrong = [f"{module_name(p)} -> {t}" for p in package_files("training") for t, _ in imports(p)
             if t.startswith("bayes_scaling") and not t.startswith(TRAINING_MAY_IMPORT)]
    assert not wrong, "\n".join(wrong)


def test_training_imports_without_pymc_or_arviz():
    code = ("import sys, training.sweep, training.worker, training.trainer, training.plan, training.data; "
            "bad = [m for m in ('pymc', 'pytensor', 'arviz', 'nutpie') if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_command_lines_parse_without_the_heavy_stack():
    """--help and option errors answer before PyMC, ArviZ, pandas or matplotlib load."""
    code = ("import sys; from bayes_scaling.cli import fit, plan, backtest, advise; "
            "[m.build_parser() for m in (fit, plan, backtest, advise)]; "
            "bad = [m for m in ('pymc', 'pytensor', 'arviz', 'pandas', 'matplotlib', 'xarray') if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
