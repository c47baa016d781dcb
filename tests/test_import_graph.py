"""No import cycles in tokenmeter/ and plugins/, read from the source (nothing is imported).

How imports count:
- a module-level import (in the module body, a class body, or an ``if``/``try`` block) is an edge;
- an import inside a function is *lazy*: it exists so that start-up stays fast, not to break a
  cycle, so it is an edge too, just marked as lazy. A cycle made only of module-level edges breaks
  at import time; a cycle through a lazy edge works but still means two modules know each other,
  so both fail the test, each with its own message;
- an import under ``if TYPE_CHECKING:`` is never executed and is not an edge;
- ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, and to ``pkg`` (the
  package's ``__init__``) otherwise; ``from . import sibling`` therefore does not depend on the
  package face. Importing a submodule runs its parent packages first, but they are always already
  running by then, so that is not an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"tokenmeter": ROOT / "tokenmeter", "tokenmeter_plugins": ROOT / "plugins"}

Edge = tuple[str, int, bool]  # (imported module, line, lazy)


def find_modules(packages: Mapping[str, Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under each package folder."""
    found = {}
    for package, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"
    )


def module_imports(name: str, path: Path, modules: Mapping[str, Path]) -> list[Edge]:
    """The imports of one module that land inside ``modules``."""
    is_package = path.name == "__init__.py"
    edges: list[Edge] = []

    def resolve(level: int, target: str | None) -> str:
        if level == 0:
            return target or ""
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, target] if target else base)

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                for stmt in child.orelse:  # type: ignore[attr-defined]
                    visit_one(stmt, lazy)
            else:
                visit_one(child, lazy)

    def visit_one(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            edges.extend((alias.name, node.lineno, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node.level, node.module)
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            if not all(sub in modules for sub in submodules):
                edges.append((target, node.lineno, lazy))
            edges.extend((sub, node.lineno, lazy) for sub in submodules if sub in modules)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            visit(node, True)
        else:
            visit(node, lazy)

    visit(ast.parse(path.read_text(), str(path)), False)
    return [edge for edge in edges if edge[0] in modules and edge[0] != name]


def import_graph(packages: Mapping[str, Path]) -> dict[str, list[Edge]]:
    modules = find_modules(packages)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, list[Edge]], *, lazy: bool) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted; ``lazy`` counts lazy edges."""
    succ = {m: sorted({t for t, _, is_lazy in edges if lazy or not is_lazy}) for m, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in succ:
        if v not in index:
            connect(v)
    return sorted(groups)


def describe(graph: Mapping[str, list[Edge]], group: list[str]) -> str:
    """The edges inside one cycle, one per line, so the failure says what to cut."""
    lines = [f"{m} -> {t} (line {line}{', lazy' if is_lazy else ''})"
             for m in group for t, line, is_lazy in graph[m] if t in group]
    return "\n".join(sorted(set(lines)))


GRAPH = import_graph(PACKAGES)


def test_no_module_level_import_cycle():
    found = cycles(GRAPH, lazy=False)
    assert not found, "\n\n".join(describe(GRAPH, g) for g in found)


def test_no_cycle_through_lazy_imports_either():
    # a lazy import is there for start-up speed; if it closes a cycle, move the shared names
    # into a lower module instead of relying on the import being late
    found = cycles(GRAPH, lazy=True)
    assert not found, "\n\n".join(describe(GRAPH, g) for g in found)


def test_low_level_modules_do_not_import_the_package_face():
    # only the outermost layer (the CLI) may use `tokenmeter`'s own names; the rest import the
    # module that defines them (`__version__` lives in tokenmeter/_version.py)
    face = sorted(f"{m} (line {line})" for m, edges in GRAPH.items()
                  if m.startswith("tokenmeter.") and not m.startswith("tokenmeter.cli")
                  for t, line, _ in edges if t == "tokenmeter")
    assert face == []
    assert ("tokenmeter._version", False) in {(t, lazy) for t, _, lazy in GRAPH["tokenmeter"]}


def test_the_cycle_check_catches_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import A\n__version__ = '1'\n")
    (pkg / "a.py").write_text("from . import b\nA = 1\n")
    (pkg / "b.py").write_text("import pkg.a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .d import D\n"
        "def f():\n"
        "    from .sub import e\n"
    )
    (pkg / "d.py").write_text("from . import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "e.py").write_text("from .. import __version__\nfrom ..c import f\n")
    graph = import_graph({"pkg": pkg})
    assert graph["pkg.a"] == [("pkg.b", 1, False)]  # `from . import b`: the module, not the package face
    assert graph["pkg.c"] == [("pkg.sub.e", 5, True)]  # TYPE_CHECKING imports are not edges
    assert cycles(graph, lazy=False) == [["pkg.a", "pkg.b"]]
    assert cycles(graph, lazy=True) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub.e"]]
    assert describe(graph, ["pkg.c", "pkg.sub.e"]) == (
        "pkg.c -> pkg.sub.e (line 5, lazy)\npkg.sub.e -> pkg.c (line 2)"
    )
