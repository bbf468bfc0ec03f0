"""Vault (OpenBao here): initialised by the harness in server mode with raft, unsealed, with the Shamir split
the settings ask for (5/3 by default)."""

from __future__ import annotations

import secrets

import hvac
import hvac.exceptions
import pytest
import requests

from stack.vault import VaultInit

pytestmark = pytest.mark.vault


def test_health_initialized_unsealed_active(vault_service):
    resp = requests.get(f"{vault_service.url}/v1/sys/health", timeout=5)
    assert resp.status_code == 200, f"health answered {resp.status_code}: {resp.text[:200]}"
    health = resp.json()
    assert health["initialized"] is True
    assert health["sealed"] is False
    assert health["standby"] is False


def test_seal_status_shows_configured_shamir_split(vault_service, harness_stack):
    status = vault_service.client().sys.read_seal_status()
    init = VaultInit.load(harness_stack.state_dir / "vault-init.json")
    assert status["type"] == "shamir"
    # what `operator init` was asked for and kept (the compose stack keeps the split of its first `up`)
    assert (status["n"], status["t"]) == (init.shares, init.threshold) == (len(init.keys), init.threshold)
    if harness_stack.settings.stack != "compose":
        settings = harness_stack.settings
        assert (status["n"], status["t"]) == (settings.vault_key_shares, settings.vault_key_threshold)


def test_storage_is_raft_not_dev_mode(vault_service):
    client = vault_service.client()
    config = client.sys.read_raft_config()
    servers = config["data"]["config"]["servers"]
    assert len(servers) == 1 and servers[0]["leader"] is True


def test_server_version_reported(vault_service, harness_stack):
    version = requests.get(f"{vault_service.url}/v1/sys/health", timeout=5).json()["version"]
    expected = harness_stack.expected_version("vault")
    assert version, "health reports no version"
    if expected:
        assert version.startswith(expected), f"Vault reports {version}, image promises {expected}"


def test_kv_write_read_round_trip(vault_service):
    client = vault_service.client()  # the harness-admin token
    path = f"suite-probe/{secrets.token_hex(4)}"
    value = secrets.token_urlsafe(16)
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"value": value}, mount_point="secret")
    read = client.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"]["value"] == value


def test_wrong_token_is_rejected(vault_service):
    client = vault_service.client(token="s." + secrets.token_hex(12))
    with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
        client.auth.token.lookup_self()
    assert vault_service.client().auth.token.lookup_self()["data"]["policies"]  # a real token is accepted


def test_keys_file_is_private(harness_stack):
    keys_file = harness_stack.state_dir / "vault-init.json"
    assert keys_file.is_file()
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert harness_stack.state_dir.stat().st_mode & 0o777 == 0o700
