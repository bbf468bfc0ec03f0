"""The import layers of ``harness/`` and ``stack/``, and harness's subpackages, as docs/architecture.md shows them.

Module-level imports only (imports inside functions and under ``TYPE_CHECKING`` are left out;
tests/test_import_cycles.py checks every import, for cycles). A module's layer is the length of its longest import
chain down to a module that imports nothing of the two packages. Modules of a subpackage are named by their path
in the package (``drills.kit``); a subpackage's ``__init__`` holds only its docstring and is not a module here.
The subpackages' layers are those of the graph where each ``harness`` subpackage is one node (its modules' imports
together) and each top-level ``harness`` module is a node of its own. The subpackage table takes what lives in each
subpackage from its ``__init__`` docstring. Written by hand: no linter prints layers (import-linter checks
contracts, it does not print a layering).

    python scripts/module_layers.py            # print the tables
    python scripts/module_layers.py --write    # rewrite them in docs/architecture.md
    python scripts/module_layers.py --lines    # also print lines per module (not kept in the docs: they churn)
"""

from __future__ import annotations

import argparse
import ast
import functools
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "stack")
DOC = ROOT / "docs" / "architecture.md"
LAYERS = ("<!-- module-layers: begin (scripts/module_layers.py --write) -->", "<!-- module-layers: end -->")
SUBPACKAGES = ("<!-- subpackages: begin (scripts/module_layers.py --write) -->", "<!-- subpackages: end -->")
#: What the top-level harness modules are (the subpackages say it in their ``__init__`` docstrings).
TOP_LEVEL = ("the entry points (`python -m harness`, the pytest plugin, `doctor`) and what every part reads "
             "(settings, the image sets, the xdist scheduler)")


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _in_package(path: Path) -> bool:
    """Every directory from the file up to its top package has an ``__init__.py`` (so ``stack/images/`` build
    contexts never count)."""
    return all((d / "__init__.py").is_file() for d in path.parents if d != ROOT and ROOT in d.parents)


def modules() -> dict[str, Path]:
    return {_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
            if p.name not in ("__init__.py", "__main__.py") and _in_package(p)}


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module in mods:
                    deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in mods}
        found[name] = deps - {name}
    return found


def _layers_of(deps: Mapping[str, set[str]]) -> dict[str, int]:
    @functools.cache
    def layer(name: str, trail: tuple[str, ...] = ()) -> int:
        if name in trail:
            raise SystemExit(f"import cycle: {' -> '.join((*trail, name))}")
        return 0 if not deps[name] else 1 + max(layer(d, (*trail, name)) for d in deps[name])

    return {name: layer(name) for name in deps}


def layers() -> dict[str, int]:
    return _layers_of(imports(modules()))


def part(name: str) -> str:
    """The node of a harness module in the subpackage graph: ``harness.drills.kit`` -> ``drills/``,
    ``harness.cli`` -> ``cli``."""
    parts = name.split(".")
    return f"{parts[1]}/" if len(parts) > 2 else parts[1]


def part_layers() -> dict[str, int]:
    deps: dict[str, set[str]] = {}
    for name, found in imports(modules()).items():
        if name.startswith("harness."):
            deps.setdefault(part(name), set()).update(part(d) for d in found if d.startswith("harness."))
    return _layers_of({node: found - {node} for node, found in deps.items()})


def _table(head: str, found: Mapping[str, int]) -> list[str]:
    by: dict[int, list[str]] = {}
    for name, n in found.items():
        by.setdefault(n, []).append(name)
    out = [f"| layer | {head} |", "| --- | --- |"]
    out += [f"| {n} | " + ", ".join(f"`{m}`" for m in sorted(by[n])) + " |" for n in sorted(by, reverse=True)]
    return [*out, ""]


def tables() -> str:
    found = layers()
    out: list[str] = []
    for pkg in PACKAGES:
        mine = {name.split(".", 1)[1]: n for name, n in found.items() if name.startswith(pkg + ".")}
        out += _table(f"`{pkg}/` modules", mine)
    out += _table("`harness/` subpackages and top-level modules", part_layers())
    return "\n".join(out).rstrip() + "\n"


def subpackages() -> str:
    """subpackage -> what lives there (its ``__init__`` docstring) -> modules."""
    out = ["| subpackage | what lives there | modules |", "| --- | --- | --- |"]
    mods = modules()
    for init in sorted((ROOT / "harness").glob("*/__init__.py")):
        doc = " ".join((ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or "").split())
        doc = doc.replace("``", "`")  # reStructuredText literals as Markdown code
        names = sorted(name.rsplit(".", 1)[1] for name in mods if name.startswith(_name(init) + "."))
        out.append(f"| `harness/{init.parent.name}/` | {doc} | " + ", ".join(f"`{n}`" for n in names) + " |")
    top = sorted(name.split(".")[1] for name in mods if name.count(".") == 1 and name.startswith("harness."))
    out.append(f"| `harness/` (top level) | {TOP_LEVEL} | " + ", ".join(f"`{n}`" for n in top) + " |")
    return "\n".join(out) + "\n"


def _between(text: str, markers: tuple[str, str]) -> tuple[int, int]:
    return text.index(markers[0]) + len(markers[0]), text.index(markers[1])


def documented(markers: tuple[str, str] = LAYERS) -> str:
    text = DOC.read_text(encoding="utf-8")
    start, end = _between(text, markers)
    return text[start:end].strip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--lines", action="store_true")
    args = parser.parse_args()
    if args.write:
        text = DOC.read_text(encoding="utf-8")
        for markers, content in ((LAYERS, tables()), (SUBPACKAGES, subpackages())):
            start, end = _between(text, markers)
            text = f"{text[:start]}\n{content}{text[end:]}"
        DOC.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(subpackages() + "\n" + tables())
    if args.lines:
        for name, path in modules().items():
            sys.stdout.write(f"{len(path.read_text(encoding='utf-8').splitlines()):6d}  {name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
