"""The package's layering, checked on its source: no import cycle anywhere, and a model side
(:mod:`nni_decouple.models`) that never reaches NNI, pytorch-lightning or OpenMMLab.

Imports are read with :mod:`ast`, every ``import`` statement counts wherever it stands (module
level, inside a function, under ``TYPE_CHECKING``): a lazy import is still a dependency, and a
cycle through one is a design cycle even when it does not fail at import time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nni_decouple"
#: Libraries the model side must never import (directly or through any module it imports).
SEARCH_ONLY = ("nni", "pytorch_lightning", "lightning", "lightning_fabric", "mmengine", "mmcv", "mmdet", "mmseg")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(package modules, top-level third-party names) that the file at ``path`` imports anywhere."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    internal: set[str] = set()
    external: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "nni_decouple":
                if target in modules:
                    internal.add(target)
            elif target and target.split(".")[0] not in sys.stdlib_module_names:
                external.add(target.split(".")[0])
    internal.discard(name)
    return internal, external


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = _modules()
    internal, external = {}, {}
    for name, path in modules.items():
        internal[name], external[name] = imports_of(name, path, modules)
    return internal, external


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components of ``graph`` with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package() -> None:
    internal, _ = _graph()
    assert strongly_connected(internal) == []


def _reachable(graph: dict[str, set[str]], roots: list[str]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def test_the_model_side_never_reaches_nni_lightning_or_openmmlab() -> None:
    internal, external = _graph()
    roots = [name for name in internal if name.startswith("nni_decouple.models")] + ["nni_decouple"]
    offenders = {module: sorted(external[module] & set(SEARCH_ONLY)) for module in _reachable(internal, roots)}
    assert {module: libs for module, libs in offenders.items() if libs} == {}
    # and nothing outside the foundation and the model side is reachable from it
    outside = {m for m in _reachable(internal, roots)
               if not m.startswith("nni_decouple.models") and m not in ("nni_decouple", "nni_decouple.errors",
                                                                        "nni_decouple.io", "nni_decouple.options")}
    assert outside == set()


_BLOCKED_RUN = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {{name}}")
sys.meta_path.insert(0, Block())
import timm, torch
import nni_decouple
from nni_decouple.models import cards, deepen, handcrafted, network, timm_models  # noqa: F401
model = timm.create_model("nd_dots_c10", num_classes=3).eval()
print(tuple(model(torch.zeros(1, 3, 32, 32)).shape))
print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


@pytest.mark.timeout(300)
def test_an_exported_network_runs_with_nni_lightning_and_openmmlab_unimportable() -> None:
    proc = subprocess.run([sys.executable, "-c", _BLOCKED_RUN.format(blocked=SEARCH_ONLY)],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:2] == ["(1, 3)", "[]"]


@pytest.mark.parametrize("graph,expected", [
    ({"nni_decouple.models.network": {"nni_decouple.runner.experiment"}, "nni_decouple.runner.experiment": set()},
     {"nni_decouple.runner.experiment"}),
])
def test_the_layering_check_sees_a_model_module_reaching_the_search_side(graph, expected) -> None:
    reach = _reachable(graph, ["nni_decouple.models.network"]) - {"nni_decouple.models.network"}
    assert reach == expected
