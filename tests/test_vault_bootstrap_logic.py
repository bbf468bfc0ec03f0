"""Bootstrap logic without a server: step errors name the step; policies, KV documents and names."""

from __future__ import annotations

import hvac.exceptions
import pytest

from harness.trust.bootstrap import (
    ADMIN_POLICY_HCL,
    AppRoleSettings,
    PkiSettings,
    bootstrap,
    initial_secret,
    service_names,
    service_policy,
)
from stack import redis_cluster
from stack.errors import VaultError


class _FailingSys:
    def enable_secrets_engine(self, *args, **kwargs):
        raise hvac.exceptions.Forbidden("permission denied")


class _FailingClient:
    sys = _FailingSys()


def test_failed_step_is_named_with_vault_text():
    with pytest.raises(VaultError, match=r"step 'pki root' failed: Forbidden: permission denied"):
        bootstrap(_FailingClient(), services=["vault", "postgres"], internal_url="http://vault:8200",
                  pki=PkiSettings(), approle=AppRoleSettings())


def test_unreachable_vault_is_named():
    client = hvac.Client(url="http://127.0.0.1:9", token="x", timeout=2)
    with pytest.raises(VaultError, match=r"step 'pki root' failed: ConnectionError"):
        bootstrap(client, services=["vault"], internal_url="http://vault:8200", pki=PkiSettings(),
                  approle=AppRoleSettings())


def test_policy_allows_only_its_own_paths():
    policy = service_policy("postgres")
    assert 'path "secret/data/postgres"' in policy
    assert 'path "pki_int/issue/postgres"' in policy
    assert "mysql" not in policy and "*" not in policy and "+" not in policy
    assert policy.count("path ") == 2


def test_admin_policy_cannot_change_policies_auth_or_mounts():
    for forbidden in ('"sys/mounts', '"sys/auth', 'path "sys/policies/acl/*" { capabilities = ["create'):
        assert forbidden not in ADMIN_POLICY_HCL


def test_kv_documents_use_json_booleans():
    for svc in ("postgres", "mysql", "mongodb", "redis", "rabbitmq"):
        doc = initial_secret(svc)
        assert doc["tls_enabled"] is True and doc["tls_strict"] is False
        assert len(doc["password"]) >= 24
    assert initial_secret("mysql")["root_password"] != initial_secret("mysql")["password"]
    assert "password" not in initial_secret("vault")


def test_names_clients_use():
    assert service_names("postgres") == ["postgres", "localhost"]
    six = redis_cluster.SPEC.driver.aliases({"redis_masters": 3, "redis_replicas": 1})
    assert service_names("redis", six) == [f"redis-{i}" for i in range(1, 7)] + ["localhost"]
