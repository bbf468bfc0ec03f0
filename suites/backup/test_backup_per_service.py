"""The backup round trip of one service at a time: Vault and the service (and its declared dependencies) in a
stack of their own, seeded, backed up encrypted, removed, restored into a fresh stack of the same services.

One case per service with the backup capability in :mod:`stack.registry`, marked with that service: ``pytest
suites/ -m postgres`` runs the PostgreSQL round trip (into a fresh Vault + PostgreSQL) and nothing of the others.
Each service's seed (data, its check and fingerprints) is declared in its module (``SPEC.backup_ops.seed``,
Vault's in ``harness.drills.upgrade``); a backed-up service without one fails naming the missing capability. The
whole-stack round trip, with the forgery and incremental checks, is ``test_backup_restore.py``."""

from __future__ import annotations

import secrets

import pytest

from harness.plugin import service_params
from harness.stacks.engine import with_dependencies
from stack import registry

pytestmark = [pytest.mark.backup, pytest.mark.destructive, pytest.mark.own_stack]
BACKED_UP = [name for name in registry.with_capability("backup") if name != "vault"]


@pytest.fixture(scope="module", params=service_params(BACKED_UP))
def one_service(request, harness_settings, tmp_path_factory, harness_benchmarks, backup_round_trip):
    services = with_dependencies([request.param])
    yield from backup_round_trip(harness_settings, services, tmp_path_factory.mktemp(f"backup-{request.param}"),
                                 secrets.token_hex(16).encode(), harness_benchmarks, f"backup {request.param}")


def test_round_trip_of_one_service_verifies(one_service):
    bad = [f for f in one_service["findings"] if f.status != "ok"]
    assert not bad, bad
    assert {a.service for a in one_service["manifest"].artifacts} == set(one_service["services"])
    assert all(a.encrypted for a in one_service["manifest"].artifacts)


def test_round_trip_of_one_service_restores_the_data(one_service):
    for name in one_service["services"]:
        part = f"{name}."
        missing = {when: [m for m in found if m.startswith(part)] for when, found in one_service["missing"].items()}
        assert missing["in an empty stack"], f"the seed check finds nothing of {part} missing in an empty stack"
        assert missing["at backup"] == [] and missing["after restore"] == [], missing
        expected = {k: v for k, v in one_service["expected"].items() if k.startswith(part)}
        restored = {k: v for k, v in one_service["restored"].items() if k.startswith(part)}
        assert expected, f"nothing fingerprinted for {part}"
        assert restored == expected, f"{name}: restored data differs from the backed-up data"


def test_round_trip_of_one_service_leaves_vault_usable(one_service):
    fresh = one_service["fresh"]
    name = one_service["services"][-1]
    vault = fresh.endpoint("vault").client()
    if registry.get(name).tls:
        issued = vault.write_data(f"pki_int/issue/{name}", data={"common_name": fresh.vault_bootstrap.names[name][0],
                                                                 "ttl": "1h"})["data"]
        assert "BEGIN CERTIFICATE" in issued["certificate"]
        assert issued["issuing_ca"].strip() == one_service["expected"]["vault.ca"].strip()
    material = fresh.material(name)  # the backup's AppRole credentials log in to the restored Vault
    same = material.password == fresh.endpoint(name).password  # a bool: a failure prints no password
    assert same, f"the restored Vault holds other {name} credentials than the live server (KV not written back)"
    for other, password in one_service["fresh_passwords"].items():
        same = fresh.endpoint(other).password == password  # a bool: a failure prints no password
        assert same, f"{other}: the fresh stack's endpoint carries another password than the restored one"
