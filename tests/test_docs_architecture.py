"""docs/architecture.md's generated tables are what scripts/module_layers.py computes from this tree: the import
layers (modules, and harness's subpackages) and the subpackage table (what lives there, from each ``__init__``
docstring, and its modules). A new module, a moved import or a new layer fails here until
`python scripts/module_layers.py --write` is run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


#: What ``imports`` found, per set of modules: the files do not change during a run, and parsing every module of the
#: tree is most of what a table costs (the tests here ask for the tables, the layers and the parts several times).
_PARSED: dict[tuple[tuple[str, str], ...], dict[str, set[str]]] = {}


def _script():
    spec = importlib.util.spec_from_file_location("module_layers", ROOT / "scripts" / "module_layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parse = module.imports

    def imports(mods):
        key = tuple(sorted((name, str(path)) for name, path in mods.items()))
        if key not in _PARSED:
            _PARSED[key] = parse(mods)
        return {name: set(deps) for name, deps in _PARSED[key].items()}  # a copy: callers may change theirs

    module.imports = imports
    return module


def test_layer_tables_match_the_code():
    script = _script()
    assert script.documented() == script.tables(), "run `python scripts/module_layers.py --write`"


def test_subpackage_table_matches_the_code():
    script = _script()
    assert script.documented(script.SUBPACKAGES) == script.subpackages(), "run `scripts/module_layers.py --write`"


def test_every_module_is_in_a_table():
    script = _script()
    mods = script.modules()
    assert len(mods) > 50 and "harness.drills.kit" in mods, sorted(mods)  # subpackages' modules included
    listed, parts = script.documented(), script.documented(script.SUBPACKAGES)
    assert [name for name in mods if f"`{name.split('.', 1)[1]}`" not in listed] == []
    assert [name for name in mods if name.startswith("harness.") and f"`{name.rsplit('.', 1)[1]}`" not in parts] == []
    for sub in ("backup", "drills", "reports", "stacks", "trust"):
        assert f"| `harness/{sub}/` | " in parts and f"`{sub}/`" in listed, sub


def test_a_new_import_changes_the_tables(monkeypatch):
    """The comparison can fail: a module that starts importing the top layer moves above it, in the module table and
    in the subpackage table."""
    script = _script()
    before = script.tables()
    top, top_part = max(script.layers().values()), max(script.part_layers().values())  # the plugin's layers
    real = script.imports

    def with_extra(mods):
        found = real(mods)
        found["harness.xdist_groups"] = found["harness.xdist_groups"] | {"harness.plugin"}
        return found

    monkeypatch.setattr(script, "imports", with_extra)
    after = script.tables()
    assert before != after
    assert f"| {top + 1} | `xdist_groups` |" in after and f"| {top_part + 1} | `xdist_groups` |" in after


def test_a_cycle_stops_the_tables(monkeypatch):
    """The layers exist only without cycles: one module-level cycle (here between two subpackages' modules) is named."""
    script = _script()
    real = script.imports

    def with_cycle(mods):
        found = real(mods)
        found["harness.trust.pki"] = found["harness.trust.pki"] | {"harness.stacks.runstate"}
        found["harness.stacks.runstate"] = found["harness.stacks.runstate"] | {"harness.trust.pki"}
        return found

    monkeypatch.setattr(script, "imports", with_cycle)
    with pytest.raises(SystemExit, match=r"import cycle: .*harness\.trust\.pki -> harness\.stacks\.runstate"):
        script.tables()
