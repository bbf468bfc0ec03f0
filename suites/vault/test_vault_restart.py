"""Restarting Vault: it comes back sealed, the harness unseals it from the stored keys within a deadline,
and KV data and the PKI survive (raft storage, not dev mode)."""

from __future__ import annotations

import secrets
import time

import pytest
import requests

pytestmark = [pytest.mark.vault, pytest.mark.destructive]

UNSEAL_DEADLINE_S = 30.0


def test_restart_comes_back_sealed_and_unseals_with_data_intact(harness_stack, vault_service):
    vault = harness_stack.require("vault")
    admin = vault_service.client()
    marker = secrets.token_hex(8)
    admin.secrets.kv.v2.create_or_update_secret(path="suite-probe/restart", secret={"marker": marker},
                                                mount_point="secret")
    root_pem = requests.get(f"{vault_service.url}/v1/pki/ca/pem", timeout=5).text

    health = vault.restart()
    assert health["initialized"] is True
    assert health["sealed"] is True, f"a restarted Vault must come back sealed, saw {health}"

    started = time.monotonic()
    vault.unseal(timeout=UNSEAL_DEADLINE_S)
    unseal_s = time.monotonic() - started
    print(f"vault unsealed {unseal_s:.2f}s after the restart finished")

    fresh = vault.endpoint()  # the published port may change across a restart
    client = fresh.client()
    read = client.secrets.kv.v2.read_secret_version(path="suite-probe/restart", mount_point="secret",
                                                    raise_on_deleted_version=True)
    assert read["data"]["data"]["marker"] == marker
    assert requests.get(f"{fresh.url}/v1/pki/ca/pem", timeout=5).text == root_pem
    issued = client.write_data("pki_int/issue/postgres", data={"common_name": "postgres", "ttl": "1h"})
    assert issued["data"]["serial_number"]
