"""Image logic without Docker: the context digest that makes rebuilds idempotent, and the catalogue."""

from __future__ import annotations

import pytest

from harness.images import context_digest, debian_specs
from harness.settings import Settings
from stack.errors import ConfigError
from stack.images import CATALOGUE


def _ctx(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM base\n")
    (ctx / "entrypoint.sh").write_text("#!/bin/sh\n")
    return ctx


def test_digest_is_stable(tmp_path):
    ctx = _ctx(tmp_path)
    assert context_digest(ctx, "sha256:1", {"BASE": "b"}) == context_digest(ctx, "sha256:1", {"BASE": "b"})


@pytest.mark.parametrize("change", ["content", "mode", "new file", "base", "arg"])
def test_digest_changes_with_every_input(tmp_path, change):
    ctx = _ctx(tmp_path)
    before = context_digest(ctx, "sha256:1", {"BASE": "b"})
    base, args = "sha256:1", {"BASE": "b"}
    if change == "content":
        (ctx / "entrypoint.sh").write_text("#!/bin/sh\necho changed\n")
    elif change == "mode":
        (ctx / "entrypoint.sh").chmod(0o755)
    elif change == "new file":
        (ctx / "extra.conf").write_text("x\n")
    elif change == "base":
        base = "sha256:2"
    else:
        args = {"BASE": "other"}
    assert context_digest(ctx, base, args) != before


def test_derived_binary_is_not_hashed(tmp_path):
    ctx = _ctx(tmp_path)
    before = context_digest(ctx, "sha256:1", {})
    (ctx / "bao").write_bytes(b"\x7fELF" + b"0" * 1000)
    assert context_digest(ctx, "sha256:1", {}) == before


def test_official_tags_are_pinned():
    for spec in CATALOGUE.values():
        name, _, tag = spec.official.rpartition(":")
        assert name and tag and tag != "latest", spec.official
        assert any(ch.isdigit() for ch in tag), f"{spec.official} is not a pinned version"


def test_every_debian_image_has_a_context(tmp_path):
    for spec in debian_specs(Settings(), None):
        assert spec.context_dir is not None and (spec.context_dir / "Dockerfile").is_file(), spec.service


def test_mongodb_has_no_debian_build():
    with pytest.raises(ConfigError, match="mongodb has no Debian build"):
        debian_specs(Settings(), ["mongodb"])
