"""AppRole per service: login, exact policies, TTLs, renewal, own secret readable, and a full denial
matrix: every service's token is refused every other service's secret and PKI role."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest

from harness.plugin import service_params
from harness.trust.bootstrap import approle_login, ttl_seconds
from stack import registry

# `vault` is not module-wide: each service's AppRole cases carry that service's marker (service_params) and run
# under `-m <service>`; the tests about Vault's AppRole mount itself carry `vault`.
pytestmark = pytest.mark.credentials

SERVICES = registry.names()


@pytest.fixture
def approles(harness_stack, vault_service):
    return harness_stack.vault_bootstrap.approles


@pytest.mark.parametrize("name", service_params(SERVICES))
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


DENIED = "permission denied"  # Vault's (and OpenBao's) text for a 403 on a path the token's policies do not allow


def _refusal(call) -> str:
    """Run ``call``; it must be refused with 403 "permission denied" (a sealed Vault answers 503, a dead one a
    connection error: neither passes). Returns the error text."""
    with pytest.raises(hvac.exceptions.Forbidden, match=DENIED) as refused:
        call()
    return str(refused.value)


@pytest.mark.parametrize("name", service_params(SERVICES))
def test_denial_matrix(name, approles, vault_service, harness_stack):
    """Each token: 403 on every other service's secret and PKI role, and on admin paths; the same token reads
    its own secret and issues its own name before and after, so every refusal is about the path."""
    client = approle_login(vault_service.url, approles[name]["role_id"], approles[name]["secret_id"])
    names = harness_stack.vault_bootstrap.names  # each role's names, as bootstrapped

    def allowed() -> None:
        client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret", raise_on_deleted_version=True)
        issued = client.write_data(f"pki_int/issue/{name}", data={"common_name": names[name][0],
                                                                  "ttl": "5m"})
        assert issued["data"]["serial_number"]

    allowed()
    refused: dict[str, str] = {}
    for other in SERVICES:
        if other == name:
            continue
        refused[f"read secret/{other}"] = _refusal(lambda o=other: client.secrets.kv.v2.read_secret_version(
            path=o, mount_point="secret", raise_on_deleted_version=True))
        refused[f"issue pki_int/{other}"] = _refusal(lambda o=other: client.write_data(
            f"pki_int/issue/{o}", data={"common_name": names[o][0]}))
    refused["read the admin policy"] = _refusal(lambda: client.read("sys/policies/acl/harness-admin"))
    for path in ("auth/approle/role/postgres/secret-id", "pki/root/sign-intermediate"):
        refused[f"write {path}"] = _refusal(lambda p=path: client.write_data(p, data={}))
    refused[f"write its own secret/{name}"] = _refusal(lambda: client.secrets.kv.v2.create_or_update_secret(
        path=name, secret={"password": "x"}, mount_point="secret"))
    allowed()
    assert client.auth.token.lookup_self()["data"]["policies"], "the token stopped working during the matrix"
    assert sorted(refused) == sorted({*(f"read secret/{o}" for o in SERVICES if o != name),
                                      *(f"issue pki_int/{o}" for o in SERVICES if o != name),
                                      "read the admin policy", "write auth/approle/role/postgres/secret-id",
                                      "write pki/root/sign-intermediate", f"write its own secret/{name}"})


# What Vault/OpenBao answer to an AppRole login with a wrong or missing value: the exception and its message.
# A missing role_id is a 400 on Vault but a 500 on OpenBao 2.7 (same message); the message is what proves it.
BAD_LOGINS = {
    "invalid-role-id": (("bad-role", "real"), hvac.exceptions.InvalidRequest, "invalid role or secret ID"),
    "invalid-secret-id": (("real", "bad-secret"), hvac.exceptions.InvalidRequest, "invalid role or secret ID"),
    "missing-role-id": (("", "real"), (hvac.exceptions.InvalidRequest, hvac.exceptions.InternalServerError),
                        "missing role_id"),
    "missing-secret-id": (("real", ""), hvac.exceptions.InvalidRequest, "missing secret_id"),
}


@pytest.mark.vault
@pytest.mark.parametrize("case", list(BAD_LOGINS))
def test_bad_credentials_are_rejected(case, approles, vault_service):
    (role_id, secret_id), error, message = BAD_LOGINS[case]
    real = approles["postgres"]
    rid = real["role_id"] if role_id == "real" else role_id
    sid = real["secret_id"] if secret_id == "real" else secret_id
    client = hvac.Client(url=vault_service.url, timeout=10)
    with pytest.raises(error, match=message):
        client.auth.approle.login(role_id=rid, secret_id=sid)
    # the same call with both real values logs in, so the refusal above is about the bad value
    assert approle_login(vault_service.url, real["role_id"], real["secret_id"]).is_authenticated()


@pytest.mark.vault
def test_another_roles_secret_id_is_refused(approles, vault_service):
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        approle_login(vault_service.url, approles["postgres"]["role_id"], approles["mysql"]["secret_id"])


@pytest.mark.vault
def test_destroyed_secret_id_and_revoked_token_are_refused(approles, vault_service):
    """A secret-id that logged in is refused once destroyed; the token it gave, which worked, is refused once
    revoked; the service's own secret-id is untouched."""
    admin = vault_service.client()
    fresh = admin.auth.approle.generate_secret_id(role_name="postgres")["data"]["secret_id"]
    role_id = approles["postgres"]["role_id"]
    client = approle_login(vault_service.url, role_id, fresh)
    assert client.auth.token.lookup_self()["data"]["policies"] == ["default", "postgres"]
    assert client.is_authenticated()

    admin.auth.approle.destroy_secret_id(role_name="postgres", secret_id=fresh)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        approle_login(vault_service.url, role_id, fresh)
    # destroying the secret-id leaves tokens it issued alone; revoking the token ends it
    client.secrets.kv.v2.read_secret_version(path="postgres", mount_point="secret", raise_on_deleted_version=True)
    client.auth.token.revoke_self()
    with pytest.raises(hvac.exceptions.Forbidden, match=DENIED):
        client.auth.token.lookup_self()
    with pytest.raises(hvac.exceptions.Forbidden, match=DENIED):
        client.secrets.kv.v2.read_secret_version(path="postgres", mount_point="secret",
                                                 raise_on_deleted_version=True)
    assert not client.is_authenticated()
    assert approle_login(vault_service.url, role_id, approles["postgres"]["secret_id"]).is_authenticated()


@pytest.mark.vault
def test_root_token_was_revoked(harness_stack, vault_service):
    from stack.vault import VaultInit

    root = VaultInit.load(harness_stack.state_dir / "vault-init.json").root_token
    with pytest.raises(hvac.exceptions.Forbidden, match=DENIED):
        vault_service.client(token=root).auth.token.lookup_self()
    admin = vault_service.client().auth.token.lookup_self()["data"]
    assert sorted(admin["policies"]) == ["default", "harness-admin"]
