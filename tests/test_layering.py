"""Dependency direction: ``stack/`` (what a service is) never imports ``harness/`` (what runs and checks it).

The arrow points one way: harness -> stack. A stack module that imports the harness, even lazily inside a function
or under ``TYPE_CHECKING``, is listed as ``path:line: module``.
"""

from __future__ import annotations

import ast
from pathlib import Path

STACK = Path(__file__).resolve().parent.parent / "stack"
FORBIDDEN = "harness"


def _imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
        return [node.module]
    return []


def harness_imports(source: str, label: str) -> list[str]:
    """``label:line: module`` for every import in ``source`` of the harness package or one of its modules."""
    found = []
    for node in ast.walk(ast.parse(source, filename=label)):
        for module in _imported_modules(node):
            if module == FORBIDDEN or module.startswith(FORBIDDEN + "."):
                found.append(f"{label}:{node.lineno}: {module}")
    return sorted(found)


def test_stack_does_not_import_harness() -> None:
    paths = sorted(STACK.rglob("*.py"))
    assert len(paths) > 10, f"expected the stack package's modules under {STACK}, found {len(paths)}"
    offending = [hit for path in paths
                 for hit in harness_imports(path.read_text(encoding="utf-8"), str(path.relative_to(STACK.parent)))]
    assert offending == []


def test_the_check_sees_every_import_form() -> None:
    source = (
        "import harness\n"
        "import harness.errors as e\n"
        "from harness.waiting import poll\n"
        "from harness import files\n"
        "def f() -> None:\n"
        "    from harness.trust.pki import self_signed\n"
        "if TYPE_CHECKING:\n"
        "    import harness.trust.bootstrap\n"
    )
    assert harness_imports(source, "stack/x.py") == [
        "stack/x.py:1: harness", "stack/x.py:2: harness.errors", "stack/x.py:3: harness.waiting",
        "stack/x.py:4: harness", "stack/x.py:6: harness.trust.pki", "stack/x.py:8: harness.trust.bootstrap",
    ]


def test_the_check_ignores_names_that_only_look_alike() -> None:
    source = (
        "import harnessed\n"
        "from harness_tools import x\n"
        "from .harness import y\n"
        "from stack.errors import HarnessError\n"
        "LABEL = 'devstack-harness'  # import harness\n"
    )
    assert harness_imports(source, "stack/x.py") == []
