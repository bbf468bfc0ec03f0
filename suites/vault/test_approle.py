"""AppRole per service: login, exact policies, TTLs, renewal, own secret readable, and a full denial
matrix: every service's token is refused every other service's secret and PKI role."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest

from harness.vault_bootstrap import approle_login, service_names, ttl_seconds

pytestmark = [pytest.mark.vault, pytest.mark.credentials]

SERVICES = ["vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq"]


@pytest.fixture
def approles(harness_stack, vault_service):
    return harness_stack.vault_bootstrap.approles


@pytest.mark.parametrize("name", SERVICES)
def test_login_policies_ttl_renewal_and_own_secret(name, approles, vault_service, harness_stack):
    settings = harness_stack.settings
    client = approle_login(vault_service.url, approles[name]["role_id"], approles[name]["secret_id"])
    info = client.auth.token.lookup_self()["data"]
    assert sorted(info["policies"]) == sorted(["default", name])
    assert 0 < info["ttl"] <= ttl_seconds(settings.approle_token_ttl)
    assert info["ttl"] > ttl_seconds(settings.approle_token_ttl) - 60
    assert info["renewable"] is True
    renewed = client.auth.token.renew_self()["auth"]
    assert renewed["lease_duration"] > 0
    secret = client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                      raise_on_deleted_version=True)["data"]["data"]
    assert isinstance(secret["tls_enabled"], bool), "TLS flags must be real JSON booleans"
    role = vault_service.client().read(f"auth/approle/role/{name}")["data"]
    assert role["token_max_ttl"] == ttl_seconds(settings.approle_token_max_ttl)
    assert role["secret_id_ttl"] == ttl_seconds(settings.approle_secret_id_ttl)


@pytest.mark.parametrize("name", SERVICES)
def test_denial_matrix(name, approles, vault_service):
    """Each token: 403 on every other service's secret and PKI role, and on admin paths."""
    client = approle_login(vault_service.url, approles[name]["role_id"], approles[name]["secret_id"])
    denied = 0
    for other in SERVICES:
        if other == name:
            continue
        with pytest.raises(hvac.exceptions.Forbidden):
            client.secrets.kv.v2.read_secret_version(path=other, mount_point="secret",
                                                     raise_on_deleted_version=True)
        with pytest.raises(hvac.exceptions.Forbidden):
            client.write_data(f"pki_int/issue/{other}", data={"common_name": service_names(other)[0]})
        denied += 2
    with pytest.raises(hvac.exceptions.Forbidden):
        client.read("sys/policies/acl/harness-admin")
    for path in ("auth/approle/role/postgres/secret-id", "pki/root/sign-intermediate"):
        with pytest.raises(hvac.exceptions.Forbidden):
            client.write_data(path, data={})
    denied += 3
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.create_or_update_secret(path=name, secret={"password": "x"}, mount_point="secret")
    denied += 1
    assert denied == 2 * (len(SERVICES) - 1) + 4


@pytest.mark.parametrize(
    ("role_id", "secret_id"),
    [("bad-role", "real"), ("real", "bad-secret"), ("", "real"), ("real", "")],
    ids=["invalid-role-id", "invalid-secret-id", "missing-role-id", "missing-secret-id"],
)
def test_bad_credentials_are_rejected(role_id, secret_id, approles, vault_service):
    real = approles["postgres"]
    rid = real["role_id"] if role_id == "real" else role_id
    sid = real["secret_id"] if secret_id == "real" else secret_id
    client = hvac.Client(url=vault_service.url, timeout=10)
    # OpenBao answers 400/403 for wrong values and 500 for a missing role_id; all are refusals.
    with pytest.raises(hvac.exceptions.VaultError):
        client.auth.approle.login(role_id=rid, secret_id=sid)
    assert not client.is_authenticated()


def test_destroyed_secret_id_can_no_longer_log_in(approles, vault_service):
    admin = vault_service.client()
    fresh = admin.auth.approle.generate_secret_id(role_name="postgres")["data"]["secret_id"]
    role_id = approles["postgres"]["role_id"]
    assert approle_login(vault_service.url, role_id, fresh).is_authenticated()
    admin.auth.approle.destroy_secret_id(role_name="postgres", secret_id=fresh)
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden)):
        approle_login(vault_service.url, role_id, fresh)
    # the service's own secret-id is untouched
    assert approle_login(vault_service.url, role_id, approles["postgres"]["secret_id"]).is_authenticated()


def test_root_token_was_revoked(harness_stack, vault_service):
    from stack.vault import VaultInit

    root = VaultInit.load(harness_stack.state_dir / "vault-init.json").root_token
    with pytest.raises(hvac.exceptions.Forbidden):
        vault_service.client(token=root).auth.token.lookup_self()
    admin = vault_service.client().auth.token.lookup_self()["data"]
    assert sorted(admin["policies"]) == ["default", "harness-admin"]
