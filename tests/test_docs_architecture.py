"""docs/architecture.md's import-layer tables are what scripts/module_layers.py computes from this tree: a new
module, a moved import or a new layer fails here until `python scripts/module_layers.py --write` is run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("module_layers", ROOT / "scripts" / "module_layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layer_tables_match_the_code():
    script = _script()
    assert script.documented() == script.tables(), "run `python scripts/module_layers.py --write`"


def test_every_module_is_in_a_table():
    script = _script()
    listed = script.documented()
    missing = [name for name in script.modules() if f"`{name.split('.', 1)[1]}`" not in listed]
    assert missing == []


def test_a_new_import_changes_the_tables(tmp_path, monkeypatch):
    """The comparison can fail: a module that starts importing the top layer moves above it."""
    script = _script()
    before = script.tables()
    top = max(script.layers().values())  # the plugin's layer
    real = script.imports

    def with_extra(mods):
        found = real(mods)
        found["harness.nfq_delay"] = found["harness.nfq_delay"] | {"harness.plugin"}
        return found

    monkeypatch.setattr(script, "imports", with_extra)
    after = script.tables()
    assert before != after and f"| {top + 1} | `nfq_delay` |" in after
