"""The import layers of ``harness/`` and ``stack/``, as the tables in docs/architecture.md show them.

Module-level imports only (imports inside functions and under ``TYPE_CHECKING`` are left out). A module's layer is
the length of its longest import chain down to a module that imports nothing of the two packages. Written by hand:
no linter prints layers (import-linter checks contracts, it does not print a layering).

    python scripts/module_layers.py            # print the tables
    python scripts/module_layers.py --write    # rewrite them in docs/architecture.md
    python scripts/module_layers.py --lines    # also print lines per module (not kept in the docs: they churn)
"""

from __future__ import annotations

import argparse
import ast
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "stack")
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- module-layers: begin (scripts/module_layers.py --write) -->", "<!-- module-layers: end -->"


def modules() -> dict[str, Path]:
    return {f"{pkg}.{p.stem}": p for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))
            if p.name not in ("__init__.py", "__main__.py")}


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module in mods:
                    deps.add(node.module)
                elif node.module in PACKAGES:
                    deps |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in mods}
        found[name] = deps - {name}
    return found


def layers() -> dict[str, int]:
    deps = imports(modules())

    @functools.cache
    def layer(name: str, trail: tuple[str, ...] = ()) -> int:
        if name in trail:
            raise SystemExit(f"import cycle: {' -> '.join((*trail, name))}")
        return 0 if not deps[name] else 1 + max(layer(d, (*trail, name)) for d in deps[name])

    return {name: layer(name) for name in deps}


def tables() -> str:
    found = layers()
    out: list[str] = []
    for pkg in PACKAGES:
        by: dict[int, list[str]] = {}
        for name, n in found.items():
            if name.startswith(pkg + "."):
                by.setdefault(n, []).append(name.split(".", 1)[1])
        out += [f"| layer | `{pkg}/` modules |", "| --- | --- |"]
        out += [f"| {n} | " + ", ".join(f"`{m}`" for m in sorted(by[n])) + " |" for n in sorted(by, reverse=True)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def documented() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--lines", action="store_true")
    args = parser.parse_args()
    if args.write:
        text = DOC.read_text(encoding="utf-8")
        head, tail = text[:text.index(BEGIN) + len(BEGIN)], text[text.index(END):]
        DOC.write_text(f"{head}\n{tables()}{tail}", encoding="utf-8")
    else:
        sys.stdout.write(tables())
    if args.lines:
        for name, path in modules().items():
            sys.stdout.write(f"{len(path.read_text(encoding='utf-8').splitlines()):6d}  {name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
