"""Credentials are live: the password stored in Vault (read with the service's own AppRole) logs in, a wrong
one is refused, and after rotation the old password is refused and the new one works."""

from __future__ import annotations

import pika
import pika.exceptions
import psycopg
import pymongo.errors
import pymysql
import pytest
import redis

from harness.credentials import rotate_password
from harness.vault_bootstrap import approle_login

pytestmark = pytest.mark.credentials

SERVICES = ["postgres", "mysql", "mongodb", "redis", "rabbitmq"]


def _refused(is_auth_failure, exc):
    """False (refused) for an authentication failure; any other error is a real problem."""
    if not is_auth_failure:
        raise AssertionError(f"expected an authentication failure, got {exc!r}")
    return False


def _login(name, endpoint, password):
    """Log in with ``password``; return True on success, False when the server refuses the credentials."""
    if name == "postgres":
        try:
            endpoint.connect(password=password).close()
        except psycopg.OperationalError as exc:
            return _refused("password authentication failed" in str(exc), exc)
        return True
    if name == "mysql":
        try:
            endpoint.connect(password=password).close()
        except pymysql.err.OperationalError as exc:
            return _refused(exc.args[0] == 1045, exc)
        return True
    if name == "mongodb":
        with endpoint.client(password=password) as client:
            try:
                client.admin.command("ping")
            except pymongo.errors.OperationFailure as exc:
                return _refused(exc.code == 18, exc)
        return True
    if name == "redis":
        node = endpoint.nodes[0]
        client = redis.Redis(host=node.host, port=node.port, password=password, socket_timeout=5)
        try:
            client.ping()
        except redis.exceptions.AuthenticationError:
            return False
        finally:
            client.close()
        return True
    if name == "rabbitmq":
        try:
            endpoint.connect(credentials=pika.PlainCredentials(endpoint.user, password)).close()
        except pika.exceptions.ProbableAuthenticationError:
            return False
        return True
    raise AssertionError(name)


def _vault_password(stack, vault_endpoint, name):
    creds = stack.vault_bootstrap.approles[name]
    client = approle_login(vault_endpoint.url, creds["role_id"], creds["secret_id"])
    return client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                    raise_on_deleted_version=True)["data"]["data"]["password"]


@pytest.mark.parametrize("name", [pytest.param(s, marks=getattr(pytest.mark, s)) for s in SERVICES])
def test_vault_password_is_live_and_rotation_takes_effect(name, harness_stack, vault_service, request):
    endpoint = request.getfixturevalue(f"{name}_service")
    in_vault = _vault_password(harness_stack, vault_service, name)
    assert in_vault == endpoint.password, "the service runs with a password that did not come from Vault"
    assert _login(name, endpoint, in_vault) is True
    assert _login(name, endpoint, in_vault + "x") is False

    rotation = rotate_password(harness_stack, name)
    assert rotation.old_password == in_vault and rotation.new_password != in_vault
    fresh = harness_stack.endpoint(name)
    assert _vault_password(harness_stack, vault_service, name) == rotation.new_password == fresh.password
    assert _login(name, fresh, rotation.new_password) is True
    assert _login(name, fresh, rotation.old_password) is False, "the old password still works after rotation"
