"""The import graph of ``src/rnnkit``: no circle among its modules, lazy imports included.

Imports are read with ``ast`` (nothing is imported): a module-level edge is an import at the top of the module,
``if TYPE_CHECKING:`` blocks included (they do not run, but they are a dependency of the module's interface, and a
circle through one is a circle of design); a function-level edge is an import inside a
function body, run only when called. A circle of module-level edges makes the import order matter; one closed by a
function-level import only hides the same two-way dependency from the importer, so it fails too
(``python tests/test_import_graph.py`` prints both).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "rnnkit"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> tuple[set[str], set[str]]:
    """(module-level targets, function-level targets) of the imports in ``tree``, rnnkit modules only."""
    top: set[str] = set()
    inner: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from pkg import name``: name may be a submodule; counted as such when one exists.
                targets = [base] + [f"{base}.{alias.name}" for alias in child.names]
            for target in targets:
                if target == PACKAGE or target.startswith(PACKAGE + "."):
                    (inner if nested else top).add(target)
            visit(child, nested)

    visit(tree, False)
    return top, inner


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level edges, function-level edges) between rnnkit modules."""
    files = {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    top: dict[str, set[str]] = {}
    inner: dict[str, set[str]] = {}
    for module, path in files.items():
        t, i = _imports(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py")
        top[module] = {n for n in t if n in files and n != module}
        inner[module] = {n for n in i if n in files and n != module}
    return top, inner


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
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

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return sorted(found)


def _without_packages(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package __init__ re-exporting its submodules, and a submodule importing a sibling through the package,
    # form a "circle" that Python resolves by design (the __init__ runs first); only module-to-module circles count.
    packages = {m for m in edges if (SRC / Path(*m.split(".")) / "__init__.py").exists()}
    return {m: {t for t in ts if t not in packages} for m, ts in edges.items() if m not in packages}


def test_no_module_level_import_cycle():
    top, _ = import_graph()
    assert cycles(_without_packages(top)) == []


def test_no_import_cycle_counting_function_level_imports():
    top, inner = import_graph()
    both = {m: top[m] | inner[m] for m in top}
    assert cycles(_without_packages(both)) == []


def _floor(module: str) -> str:
    # The floor a module lives on: its top-level package or module under rnnkit (rnnkit itself: the front door).
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(rnnkit)"


def package_graph() -> dict[str, set[str]]:
    """Which floor (``cells``, ``engine``, ``layers``, ..., ``cli``) imports which, lazy imports included."""
    top, inner = import_graph()
    floors: dict[str, set[str]] = {}
    for module, targets in top.items():
        for target in targets | inner[module]:
            if _floor(module) != _floor(target):
                floors.setdefault(_floor(module), set()).add(_floor(target))
    return floors


def test_no_upward_import_between_floors():
    # Acyclic at the package level = the floors can be stacked so every import points down. Only the front door
    # (rnnkit/__init__.py, whose lazy names reach up to the layers) and the two entry points may look up.
    floors = package_graph()
    for door in ("(rnnkit)", "__main__"):
        floors.pop(door, None)
    for targets in floors.values():
        targets.discard("(rnnkit)")
    assert cycles(floors) == []
    assert "cells" in floors["engine"]  # the walk sees floors at all (else the test passes vacuously)


def test_an_import_inside_a_function_is_an_edge_that_closes_a_circle():
    # The lazy import that once closed engine.fused.ops <-> engine.fused.backend, read as the walk reads it.
    lazy = "def _layout():\n    from rnnkit.engine.fused.backend import layout\n"
    top, inner = _imports(ast.parse(lazy), "rnnkit.engine.fused.ops", False)
    assert top == set() and "rnnkit.engine.fused.backend" in inner
    edges = {"rnnkit.engine.fused.ops": inner, "rnnkit.engine.fused.backend": {"rnnkit.engine.fused.ops"}}
    assert cycles(edges) == [["rnnkit.engine.fused.backend", "rnnkit.engine.fused.ops"]]


def test_the_walk_sees_a_known_edge():
    # The walk itself must see imports, or the test above passes vacuously.
    top, _ = import_graph()
    assert "rnnkit.serve.config" in top["rnnkit.serve.server"]


def report() -> None:
    top, inner = import_graph()
    print("module-level cycles:", cycles(_without_packages(top)) or "none")
    both = {m: top[m] | inner[m] for m in top}
    print("cycles counting function-level imports:", cycles(_without_packages(both)) or "none")


if __name__ == "__main__":
    report()
