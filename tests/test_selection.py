"""Per-service selection over the real ``suites/`` tree, for every registered service (collection only: the
plugin starts nothing while collecting, so no Docker is needed).

For each service S, ``pytest suites/ -m S`` and ``pytest suites/ --services S`` must name exactly Vault, S and
S's declared dependencies in the plugin's "services needed" line: a suite that marks a test about S with another
service, or carries every service's marker on a whole-stack test, fails here for that S.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack import registry

ROOT = Path(__file__).resolve().parent.parent
NEEDED = re.compile(r"^harness: services needed by the selected tests: (.*)$", re.MULTILINE)


def closure(name: str) -> set[str]:
    """S, Vault and everything S depends on, from the specs alone (not from the engine under test)."""
    found = {"vault", name}
    todo = [name]
    while todo:
        for dep in registry.get(todo.pop()).depends_on:
            if dep not in found:
                found.add(dep)
                todo.append(dep)
    return found


def collect(tmp_path: Path, *selection: str, may_be_empty: bool = False) -> tuple[list[str], set[str]]:
    """(selected node ids, services the plugin says the session stack needs) for ``pytest suites/ <selection>``."""
    argv = [sys.executable, "-m", "pytest", "suites/", *selection, "--collect-only", "-q", "-p", "no:cacheprovider",
            f"--harness-report={tmp_path / 'report.json'}"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    ok = (0, 5) if may_be_empty else (0,)  # 5: no test selected
    assert proc.returncode in ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    needed = NEEDED.search(proc.stdout)
    assert needed, proc.stdout[-2000:]
    services = set() if needed.group(1).strip() == "none" else {s.strip() for s in needed.group(1).split(",")}
    return [line for line in proc.stdout.splitlines() if line.startswith("suites/")], services


@pytest.mark.parametrize("service", registry.names())
def test_marker_selection_needs_only_the_service_vault_and_its_dependencies(service, tmp_path):
    ids, needed = collect(tmp_path, "-m", service)
    assert ids, f"-m {service} selects no test"
    assert needed == closure(service), f"-m {service} would start {sorted(needed)}"


@pytest.mark.parametrize("service", registry.names())
def test_services_option_needs_only_the_service_vault_and_its_dependencies(service, tmp_path):
    ids, needed = collect(tmp_path, "--services", service)
    assert ids, f"--services {service} selects no test"
    assert needed == closure(service), f"--services {service} would start {sorted(needed)}"


def test_backup_round_trip_exists_per_backed_up_service(tmp_path):
    """Every service with the backup capability has a round trip of its own, selected by its marker; the
    whole-stack round trip carries no service marker and is selected by ``whole_stack``."""
    for service in registry.with_capability("backup"):
        if service == "vault":
            continue
        ids, _ = collect(tmp_path, "-m", f"backup and {service}")
        assert any("test_round_trip_of_one_service" in i and f"[{service}]" in i for i in ids), \
            f"no per-service backup round trip for {service}: {ids}"
    ids, needed = collect(tmp_path, "-m", "whole_stack")
    assert ids and all(i.startswith("suites/backup/test_backup_restore.py::") for i in ids), ids
    assert needed == set(), f"the whole-stack round trip (own stack) adds {sorted(needed)} to the session stack"
    any_service = " or ".join(registry.names())
    by_service, _ = collect(tmp_path, "-m", f"whole_stack and ({any_service})", may_be_empty=True)
    assert not by_service, f"whole-stack round-trip tests selected by a service marker: {by_service}"
