"""Fixtures shared by the self-tests: pytester, and ``collect_suites`` (what a selection of the real ``suites/``
tree collects, and which services the plugin says it needs)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
NEEDED = re.compile(r"^harness: services needed by the selected tests: (.*)$")
REPORT_OPTIONS = ("--junitxml", "--harness-report")


@dataclass(frozen=True)
class Collected:
    """What ``pytest <args> --collect-only -q`` ended with and printed: its exit code, the selected node ids, the
    services named by the plugin's own "services needed by the selected tests" lines (one list per such line,
    in the line's order, empty for "none"), and the output's tail for assertion messages."""

    ret: int
    ids: list[str]
    needed_lines: list[list[str]]
    output: str


_COLLECTED: dict[tuple[str, ...], Collected] = {}
CollectSuites = Callable[..., tuple[list[str], list[str]]]


#: What collecting ``suites/`` imported (the suites' modules and conftests, the client libraries they import), kept
#: for the next collection in this process. pytester puts ``sys.modules`` back as it was after each run (and again
#: when its test ends), so every collection would import, and rewrite the asserts of, every suite module again
#: (about 0.7 s of CPU each time). With ``--import-mode=importlib`` pytest takes a module it finds in
#: ``sys.modules`` as it is, and the files do not change during a run: the next collection selects from the same
#: modules, only without importing them again.
_SUITE_MODULES: dict[str, Any] = {}


class _KeepImported:
    def __init__(self) -> None:
        self.before = set(sys.modules)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        _SUITE_MODULES.update((name, module) for name, module in sys.modules.items() if name not in self.before)


def _collect_in_process(pytester: pytest.Pytester, args: tuple[str, ...]) -> Collected:
    argv = [f"{arg.split('=', 1)[0]}={pytester.path / Path(arg.split('=', 1)[1]).name}"
            if arg.startswith(tuple(f"{option}=" for option in REPORT_OPTIONS)) else arg for arg in args]
    if not any(arg.startswith("--harness-report=") for arg in argv):
        argv.append(f"--harness-report={pytester.path / 'report.json'}")
    sys.modules.update((name, module) for name, module in _SUITE_MODULES.items() if name not in sys.modules)
    result = pytester.runpytest_inprocess(*argv, "--collect-only", "-q", "-p", "no:cacheprovider",
                                          plugins=[_KeepImported()])
    needed = [m.group(1).strip() for line in result.outlines if (m := NEEDED.match(line))]
    return Collected(ret=int(result.ret),
                     ids=[line for line in result.outlines if line.startswith("suites/")],
                     needed_lines=[[] if n == "none" else [s.strip() for s in n.split(",")] for n in needed],
                     output="\n".join(result.outlines + result.errlines)[-4000:])


@pytest.fixture
def collect_suites(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> CollectSuites:
    """``collect_suites(*args)`` runs ``pytest <args> --collect-only -q`` from the repository root and returns
    (selected node ids, services the plugin's "services needed" line names, in its order).

    The run is pytester's in-process one: a fresh ``pytest.main`` with the harness plugin from its entry point and
    the repository's pyproject configuration, as a shell would run it but without a new interpreter (and its
    imports) each time. A report option in ``args`` (written ``OPTION=PATH``) keeps its option but points into
    pytester's directory. The run must exit 0 (or 5, no test selected, with ``may_be_empty=True``) and print the
    plugin's line exactly once. The same ``args`` are collected once per process (the files do not change during
    a run: several tests ask what the same workflow command selects); the checks above are made on every call."""

    def collect(*args: str, may_be_empty: bool = False) -> tuple[list[str], list[str]]:
        assert not set(args) & set(REPORT_OPTIONS), f"write report options as OPTION=PATH: {args}"
        if args not in _COLLECTED:
            monkeypatch.chdir(ROOT)
            _COLLECTED[args] = _collect_in_process(pytester, args)
        collected = _COLLECTED[args]
        assert collected.ret in ((0, 5) if may_be_empty else (0,)), collected.output  # 5: no test selected
        assert len(collected.needed_lines) == 1, collected.output
        return collected.ids, collected.needed_lines[0]

    return collect
