"""docs/settings.md is generated from the settings table in the code and must not drift from it."""

from __future__ import annotations

import dataclasses
import re

import pytest

from harness import settings_doc
from harness.settings import Settings


def test_settings_page_is_the_generated_text():
    page = settings_doc.PAGE
    assert page.is_file(), f"{page} is missing; generate it with `{settings_doc.REGENERATE}`"
    assert page.read_text() == settings_doc.render(), (
        f"docs/settings.md differs from the settings table in harness/settings.py; regenerate it with "
        f"`{settings_doc.REGENERATE}`")


def test_every_setting_has_a_row_with_its_default():
    text = settings_doc.render()
    for f in dataclasses.fields(Settings):
        if f.name == "image_overrides":
            assert "| `HARNESS_IMAGE_<SERVICE>` |" in text
            continue
        assert f"| `HARNESS_{f.name.upper()}` |" in text, f"no row for {f.name}"
    assert f"| `HARNESS_KEEP_RUN_STATE` | `{Settings().keep_run_state}` |" in text
    assert f"| `HARNESS_READY_TIMEOUT` | `{Settings().ready_timeout:g}` |" in text


def test_multi_line_descriptions_are_whole():
    """A docstring entry that runs over several lines is rendered whole, not cut at its first line."""
    text = settings_doc.render()
    row = next(line for line in text.splitlines() if line.startswith("| `HARNESS_KEEP_RUN_STATE` |"))
    assert row.endswith("Runs whose containers exist (kept `up` stacks) always keep theirs. |")


@pytest.mark.parametrize(("raw", "shown"), [("True", "true"), ("False", "false"), ("None", "(unset)"),
                                            ("()", "(none)"), ("180.0", "180"), ("0.25", "0.25"),
                                            ("10.213.51", "10.213.51")])
def test_defaults_are_shown_as_a_user_writes_them(raw, shown):
    assert settings_doc._default(raw) == shown


def test_a_stale_page_is_detected(tmp_path, monkeypatch):
    """The check above compares the whole text: a page missing one row (or with an old default) differs."""
    stale = "\n".join(line for line in settings_doc.render().splitlines()
                      if not line.startswith("| `HARNESS_TLS_MIN_DAYS_LEFT` |")) + "\n"
    assert stale != settings_doc.render()
    page = tmp_path / "settings.md"
    page.write_text(stale)
    monkeypatch.setattr(settings_doc, "PAGE", page)
    with pytest.raises(AssertionError, match=re.escape(f"regenerate it with `{settings_doc.REGENERATE}`")):
        test_settings_page_is_the_generated_text()
