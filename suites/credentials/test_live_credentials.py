"""Credentials are live: the user and password stored in Vault (read with the service's own AppRole) log in,
as that user, and a wrong password is refused with the server's own authentication error; after rotation the
old password is refused the same way and the new one works.

The proof is always a login. In attach mode the endpoints are themselves built from Vault, so comparing an
endpoint's password with Vault's would prove nothing; with a test stack the comparison is kept as an extra
check (the stack's record of what it started the server with). Passwords are compared through booleans
computed first, so a failing assertion never prints one."""

from __future__ import annotations

import pytest

from harness.plugin import service_params
from harness.trust.bootstrap import approle_login
from harness.trust.credentials import rotate_password
from stack import registry

pytestmark = pytest.mark.credentials

#: every service that changes its password live and opens sessions is covered without an edit here
SERVICES = [name for name in registry.with_capability("rotatable_password")
            if registry.get(name).driver.has("session") and registry.get(name).driver.password_refusal is not None]


def login(name, endpoint, user, password) -> str:
    """Log in as ``user`` with ``password`` and return the user the server says the session belongs to.
    Any failure propagates: a refusal is judged by :func:`refusal`, nothing here turns an error into a value."""
    with registry.get(name).driver.session(endpoint, user=user, password=password) as session:
        return session.whoami()


def refusal(name, endpoint, user, password) -> str:
    """Log in with a password that must be refused; the refusal must be the server's authentication error (its
    driver's ``password_refusal``: a connection error, a timeout or a server that is down does not pass). Returns
    the error text."""
    expected = registry.get(name).driver.password_refusal
    with pytest.raises(expected.error, match=expected.match) as refused:
        login(name, endpoint, user, password)
    assert not isinstance(refused.value, expected.not_as), type(refused.value)
    return str(refused.value)


def _vault_secret(stack, vault_endpoint, name) -> dict:
    creds = stack.vault_bootstrap.approles[name]
    client = approle_login(vault_endpoint.url, creds["role_id"], creds["secret_id"])
    return client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                    raise_on_deleted_version=True)["data"]["data"]


def _user(name, endpoint, secret) -> str:
    """The user Vault holds; a service whose password belongs to a fixed user (Redis: ``default``) says so."""
    return str(secret["user"]) if "user" in secret else registry.get(name).driver.login_user(endpoint)


@pytest.mark.destructive  # rotates the password every other user of the stack holds (xdist workers, --reuse)
@pytest.mark.parametrize("name", service_params(SERVICES))
def test_vault_password_is_live_and_rotation_takes_effect(name, harness_stack, vault_service, request):
    endpoint = request.getfixturevalue(f"{name}_service")
    secret = _vault_secret(harness_stack, vault_service, name)
    user, in_vault = _user(name, endpoint, secret), str(secret["password"])
    assert login(name, endpoint, user, in_vault) == user, "Vault's credentials log in as another user"
    refusal(name, endpoint, user, in_vault + "x")
    if harness_stack.settings.stack != "compose":
        same = endpoint.password == in_vault
        assert same, "the test stack started the service with a password that is not the one in Vault"

    rotation = rotate_password(harness_stack, name)
    same_old, changed = rotation.old_password == in_vault, rotation.new_password != in_vault
    assert same_old and changed, "the rotation did not replace Vault's password with a new one"
    fresh = harness_stack.endpoint(name)
    now_in_vault = str(_vault_secret(harness_stack, vault_service, name)["password"])
    stored = now_in_vault == rotation.new_password
    assert stored, "Vault does not hold the rotated password"
    assert login(name, fresh, user, now_in_vault) == user
    refusal(name, fresh, user, rotation.old_password)  # the old password no longer works
