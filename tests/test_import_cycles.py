"""No import cycles: not between the modules of ``harness/`` and ``stack/``, not between harness's subpackages.

The graph is read from the source (``ast``), every import included: module level, inside functions and methods
(a lazy import still runs, so it still ties the two modules together), in ``try`` and ``else`` branches. Only the
body of ``if TYPE_CHECKING:`` is left out: it never runs. Importing ``a.b.c`` runs the packages ``a`` and ``a.b``
first, so an import depends on the packages that hold its module too (a subpackage ``__init__`` that imports its own
modules back is a cycle).

Between subpackages, each subpackage of ``harness`` (``harness.drills`` and everything under it) is one node and each
top-level module (``harness.cli``, ``harness.plugin`` …) one of its own; the package ``harness`` itself, which every
module's import runs, is left out of that graph. A cycle is reported with its path and, for each step, the import
that makes it (module, line, and whether it sits inside a function).
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "stack")
SUBPACKAGES = {"harness.backup", "harness.drills", "harness.reports", "harness.stacks", "harness.trust"}


@dataclass(frozen=True)
class Import:
    """One edge: ``importer`` depends on ``target`` through the import at ``line`` (``lazy``: inside a function) of
    ``named``, the module the statement names: ``target`` itself or a package that holds it."""

    importer: str
    target: str
    line: int
    lazy: bool
    named: str

    def describe(self) -> str:
        where = f"{self.importer}, line {self.line}" + (" (inside a function)" if self.lazy else "")
        what = self.target if self.named == self.target else f"{self.named}, which runs its package {self.target}"
        return f"{where}: import of {what}"


Graph = dict[str, dict[str, Import]]  # module -> imported module -> the first import of it


# ---------------------------------------------------------------------------------------------- reading the tree


def tree_sources() -> dict[str, str]:
    """Every module of the two packages (``__init__`` and ``__main__`` included) by dotted name. A directory counts
    only when it and every directory above it up to its package have an ``__init__.py`` (``stack/images/`` holds
    build contexts, not modules)."""
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if all((d / "__init__.py").is_file() for d in path.relative_to(ROOT).parents if d != Path(".")):
                parts = path.relative_to(ROOT).with_suffix("").parts
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path.read_text(encoding="utf-8")
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(node: ast.AST, lazy: bool = False) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``node`` with whether it is inside a function; ``if TYPE_CHECKING:`` bodies
    left out (their ``else`` kept)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child.test):
            for stmt in child.orelse:
                yield from _statements(ast.Module(body=[stmt], type_ignores=[]), lazy)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy
        yield from _statements(child, lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))


def _with_packages(name: str, known: Iterable[str]) -> list[str]:
    """``name`` and the packages that hold it, those among ``known``."""
    parts = name.split(".")
    return [dotted for i in range(len(parts), 0, -1) if (dotted := ".".join(parts[:i])) in known]


def imports_of(name: str, source: str, known: set[str]) -> list[Import]:
    """The imports of module ``name`` (a package when other known modules sit under it) of modules in ``known``."""
    is_package = any(other.startswith(name + ".") for other in known)
    found = []
    for stmt, lazy in _statements(ast.parse(source)):
        if isinstance(stmt, ast.Import):
            named = [alias.name for alias in stmt.names]
        else:
            base = stmt.module or ""
            if stmt.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                anchor = here[:len(here) - stmt.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in stmt.names]
        for module in named:
            deepest = next(iter(_with_packages(module, known)), None)  # the module itself, else its package
            if deepest is None:
                continue
            found += [Import(name, target, stmt.lineno, lazy, deepest) for target in _with_packages(deepest, known)
                      if target != name]
    return found


def build(sources: Mapping[str, str]) -> Graph:
    known = set(sources)
    graph: Graph = {name: {} for name in sources}
    for name, source in sources.items():
        for edge in imports_of(name, source, known):
            graph[name].setdefault(edge.target, edge)
    return graph


def collapse(graph: Graph, root: str) -> Graph:
    """The graph between ``root``'s subpackages and top-level modules (``root`` itself left out)."""

    def node(module: str) -> str | None:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == root and len(parts) > 1 else None

    parts: Graph = {}
    for module, edges in graph.items():
        if (src := node(module)) is None:
            continue
        mine = parts.setdefault(src, {})
        for target, edge in edges.items():
            if (dst := node(target)) is not None and dst != src:
                mine.setdefault(dst, edge)
    return parts


# ---------------------------------------------------------------------------------------------- finding cycles


def _components(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in graph:
                continue
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
    return sorted(found)


def _shortest_cycle(graph: Graph, component: list[str]) -> list[str]:
    """The shortest path from the component's first node back to it (breadth first, in name order)."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                return [*paths[v], start]
            if w in inside and w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # a strongly connected component always has one


def cycles(graph: Graph, what: str = "modules") -> list[str]:
    """One message per cycle (per strongly connected component): its path, then the import behind each step."""
    messages = []
    for component in _components(graph):
        path = _shortest_cycle(graph, component)
        steps = [graph[a][b].describe() for a, b in itertools.pairwise(path)]
        messages.append("\n  ".join([f"import cycle between {what}: {' -> '.join(path)}", *steps]))
    return messages


# ---------------------------------------------------------------------------------------------- this tree


@functools.cache
def _tree() -> Graph:
    """The real tree's graph, built once per process (the tests read it, none changes it)."""
    sources = tree_sources()
    harness = [name for name in sources if name.split(".")[0] == "harness"]
    stack = [name for name in sources if name.split(".")[0] == "stack"]
    assert len(harness) > 40 and len(stack) > 15, f"too few modules to mean anything: {sorted(sources)}"
    assert set(harness) >= SUBPACKAGES, f"expected harness's subpackages {sorted(SUBPACKAGES)} among {harness}"
    return build(sources)


def test_no_cycle_between_modules() -> None:
    graph = _tree()
    lazy = graph["harness.cli"].get("harness.stacks.engine")
    assert lazy is not None and lazy.lazy, "the imports inside functions must be in the graph (cli's are lazy)"
    assert sum(len(edges) for edges in graph.values()) > 200
    assert cycles(graph) == [], "\n".join(cycles(graph))


def test_no_cycle_between_harness_subpackages() -> None:
    parts = collapse(_tree(), "harness")
    assert SUBPACKAGES | {"harness.cli", "harness.plugin", "harness.doctor"} <= set(parts), sorted(parts)
    assert "harness.trust" in parts["harness.stacks"], "the engine bootstraps Vault: stacks import trust"
    assert cycles(parts, "harness's subpackages") == [], "\n".join(cycles(parts, "harness's subpackages"))


def test_subpackages_hold_only_their_docstring() -> None:
    """A subpackage's ``__init__`` says what lives there and imports nothing (no re-exports to cycle through)."""
    sources = tree_sources()
    for name in sorted(SUBPACKAGES):
        body = ast.parse(sources[name]).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), name


# ---------------------------------------------------------------------------------------------- the check can fail


def test_a_module_level_cycle_is_found_with_its_path() -> None:
    graph = build({
        "pkg": '"""A package."""\n',
        "pkg.a": "import os\nfrom pkg.b import helper\n",
        "pkg.b": "import json\n\nimport pkg.c\n",
        "pkg.c": "from pkg import a\n",
        "pkg.d": "from pkg.a import thing\n",  # imports into the cycle, is not part of it
    })
    assert cycles(graph) == [
        "import cycle between modules: pkg.a -> pkg.b -> pkg.c -> pkg.a\n"
        "  pkg.a, line 2: import of pkg.b\n"
        "  pkg.b, line 3: import of pkg.c\n"
        "  pkg.c, line 1: import of pkg.a"]


def test_a_cycle_through_an_import_inside_a_function_is_found() -> None:
    graph = build({
        "pkg": "",
        "pkg.kit": "def runner_for(kind):\n    from pkg.sql import ROUND\n    return ROUND\n",
        "pkg.sql": "from pkg.kit import runner_for\n",
    })
    assert cycles(graph) == [
        "import cycle between modules: pkg.kit -> pkg.sql -> pkg.kit\n"
        "  pkg.kit, line 2 (inside a function): import of pkg.sql\n"
        "  pkg.sql, line 1: import of pkg.kit"]


def test_type_checking_imports_are_left_out_and_their_else_branch_is_not() -> None:
    sources = {
        "pkg": "",
        "pkg.running": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.engine import Stack\n",
        "pkg.engine": "from pkg.running import RunningStack\n",
    }
    assert cycles(build(sources)) == []
    sources["pkg.running"] += "else:\n    import pkg.engine\n"
    assert cycles(build(sources)) == [
        "import cycle between modules: pkg.engine -> pkg.running -> pkg.engine\n"
        "  pkg.engine, line 1: import of pkg.running\n"
        "  pkg.running, line 5: import of pkg.engine"]


def test_a_subpackage_init_that_imports_its_modules_back_is_a_cycle() -> None:
    graph = build({
        "app": "",
        "app.drills": "from app.drills.kit import DrillError\n",
        "app.drills.kit": "from app.drills.redis import report\n",
        "app.drills.redis": "",
    })
    assert cycles(graph) == [
        "import cycle between modules: app.drills -> app.drills.kit -> app.drills\n"
        "  app.drills, line 1: import of app.drills.kit\n"
        "  app.drills.kit, line 1: import of app.drills.redis, which runs its package app.drills"]


def test_a_cycle_between_subpackages_is_found_without_a_module_cycle() -> None:
    graph = build({
        "app": "",
        "app.cli": "from app.stacks.engine import Stack\n",
        "app.stacks": "",
        "app.stacks.engine": "from app.trust.certs import install\n",
        "app.stacks.running": "",
        "app.trust": "",
        "app.trust.certs": "def rotate(stack):\n    from app.stacks.running import RunningStack\n",
    })
    assert cycles(graph) == []
    assert cycles(collapse(graph, "app"), "app's subpackages") == [
        "import cycle between app's subpackages: app.stacks -> app.trust -> app.stacks\n"
        "  app.stacks.engine, line 1: import of app.trust.certs\n"
        "  app.trust.certs, line 2 (inside a function): import of app.stacks.running"]
