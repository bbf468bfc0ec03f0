"""Per-service selection over the real ``suites/`` tree, for every registered service (collection only: the
plugin starts nothing while collecting, so no Docker is needed). Each selection is collected on its own
(``collect_suites`` in conftest.py: ``pytest.main`` in this process, with the command line a user would type).

For each service S, ``pytest suites/ -m S`` and ``pytest suites/ --services S`` must name exactly Vault, S and
S's declared dependencies in the plugin's "services needed" line: a suite that marks a test about S with another
service, or carries every service's marker on a whole-stack test, fails here for that S.
"""

from __future__ import annotations

import pytest

from stack import registry


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


@pytest.mark.parametrize("service", registry.names())
def test_marker_selection_needs_only_the_service_vault_and_its_dependencies(service, collect_suites):
    ids, needed = collect_suites("suites/", "-m", service)
    assert ids, f"-m {service} selects no test"
    assert set(needed) == closure(service), f"-m {service} would start {needed}"


@pytest.mark.parametrize("service", registry.names())
def test_services_option_needs_only_the_service_vault_and_its_dependencies(service, collect_suites):
    ids, needed = collect_suites("suites/", "--services", service)
    assert ids, f"--services {service} selects no test"
    assert set(needed) == closure(service), f"--services {service} would start {needed}"


def test_backup_round_trip_exists_per_backed_up_service(collect_suites):
    """Every service with the backup capability has a round trip of its own, selected by its marker; the
    whole-stack round trip carries no service marker and is selected by ``whole_stack``."""
    for service in registry.with_capability("backup"):
        if service == "vault":
            continue
        ids, _ = collect_suites("suites/", "-m", f"backup and {service}")
        assert any("test_round_trip_of_one_service" in i and f"[{service}]" in i for i in ids), \
            f"no per-service backup round trip for {service}: {ids}"
    ids, needed = collect_suites("suites/", "-m", "whole_stack")
    assert ids and all(i.startswith("suites/backup/test_backup_restore.py::") for i in ids), ids
    assert not needed, f"the whole-stack round trip (own stack) adds {needed} to the session stack"
    any_service = " or ".join(registry.names())
    by_service, _ = collect_suites("suites/", "-m", f"whole_stack and ({any_service})", may_be_empty=True)
    assert not by_service, f"whole-stack round-trip tests selected by a service marker: {by_service}"
