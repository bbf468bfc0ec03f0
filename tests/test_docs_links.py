"""Every relative link in README.md and docs/*.md points at a file that exists, and at a heading that exists
when it names one (GitHub's anchor rules: lower case, punctuation dropped, spaces to hyphens)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE = re.compile(r"`[^`\n]*`")


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors of a Markdown text (duplicates get -1, -2 …)."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", text), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` that point nowhere, each with the reason."""
    text = CODE.sub("", FENCE.sub("", page.read_text()))
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: — not checked offline
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{target}: no such file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{target}: no heading #{anchor} in {dest.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    assert broken_links(page) == []


def test_the_manual_has_its_pages():
    names = {p.name for p in PAGES}
    for needed in ("index.md", "architecture.md", "adding-a-service.md", "vault.md", "tls.md", "redis.md",
                   "backup.md", "compose.md", "ci.md", "images.md", "reports.md", "settings.md"):
        assert needed in names, f"docs/{needed} is missing"


def test_anchor_rules():
    text = "# Compose stack (long-lived) and attach mode\n## TLS: dual mode\n## Setup\n## Setup\n"
    assert anchors(text) == {"compose-stack-long-lived-and-attach-mode", "tls-dual-mode", "setup", "setup-1"}


def test_a_broken_file_link_and_a_broken_anchor_are_found(tmp_path: Path):
    (tmp_path / "there.md").write_text("# Here it is\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#here-it-is) [gone](missing.md) [bad anchor](there.md#elsewhere) "
                    "[self](#nowhere) [web](https://example.org/x) `[code](ignored.md)`\n"
                    "```\n[fenced](ignored-too.md)\n```\n")
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert problems[0].startswith("missing.md: no such file")
    assert problems[1] == "there.md#elsewhere: no heading #elsewhere in there.md"
    assert problems[2] == "#nowhere: no heading #nowhere in page.md"
