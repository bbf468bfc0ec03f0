"""``harness/`` names no service except Vault (the root of trust) and Redis where the Redis drills need it.

Every string literal in a ``harness/`` module (docstrings aside; the text parts of f-strings included) that starts
with the name of a registered service other than Vault is counted per module, and the counts are pinned: a new
literal fails here (put the fact in the service's module and ``SPEC``), and so does a removed one (lower the pin).
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from stack import registry

HARNESS = Path(__file__).resolve().parent.parent / "harness"

#: module (its path under harness/) -> (number of literals, why they may name a service)
ALLOWED: dict[str, tuple[int, str]] = {
    "cli.py": (9, "the Redis drills: `drill redis-failover|redis-node-loss|redis-partition|latency` start Vault and "
                   "the Redis cluster, and their usage lines"),
    "drills/kit.py": (3, "the Redis drills' names beside the service drills the registry declares (the CLI's choices)"),
    "drills/verdict.py": (3, "the Redis drills' rules, keyed by drill name as their reports are"),
    "drills/redis.py": (2, "the Redis drills' report: which drill a report is"),
    "drills/net.py": (2, "the Redis network drills (partition, latency): which drill a report is"),
    "settings.py": (2, "the Redis topology settings (redis_masters, redis_replicas) the drills and the module read"),
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def service_literals(source: str, names: tuple[str, ...]) -> list[str]:
    """The string literals of ``source`` that start with one of ``names`` (docstrings left out)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and node.value.startswith(names)]


def _modules() -> list[Path]:
    """Every module of the harness package, its subpackages' included."""
    paths = sorted(HARNESS.rglob("*.py"))
    assert len(paths) > 30 and HARNESS / "drills" / "kit.py" in paths, f"expected the harness's modules, found {paths}"
    return paths


def _counts() -> dict[str, list[str]]:
    names = tuple(n for n in registry.names() if n != "vault")
    found = {}
    for path in _modules():
        literals = service_literals(path.read_text(encoding="utf-8"), names)
        if literals:
            found[path.relative_to(HARNESS).as_posix()] = literals
    return found


def test_harness_names_services_only_where_pinned() -> None:
    found = _counts()
    counts = {module: len(literals) for module, literals in found.items()}
    assert counts == {module: n for module, (n, _) in ALLOWED.items()}, {
        module: Counter(literals) for module, literals in found.items()}


def test_the_count_sees_literals_and_skips_docstrings() -> None:
    source = (
        '"""A module about postgres."""\n'
        "def f(name: str) -> str:\n"
        '    """postgres again, documentation only."""\n'
        '    if name == "postgres":\n'
        "        return f\"mysql-{name}\"\n"
        "    return 'redis' + \"vault\"\n"
    )
    assert sorted(service_literals(source, ("postgres", "mysql", "redis"))) == ["mysql-", "postgres", "redis"]
