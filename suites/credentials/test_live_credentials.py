"""Credentials are live: the user and password stored in Vault (read with the service's own AppRole) log in,
as that user, and a wrong password is refused with the server's own authentication error; after rotation the
old password is refused the same way and the new one works.

The proof is always a login. In attach mode the endpoints are themselves built from Vault, so comparing an
endpoint's password with Vault's would prove nothing; with a test stack the comparison is kept as an extra
check (the stack's record of what it started the server with). Passwords are compared through booleans
computed first, so a failing assertion never prints one."""

from __future__ import annotations

import re

import pika
import pika.exceptions
import psycopg
import pymongo.errors
import pymysql
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.credentials import rotate_password
from harness.plugin import service_params
from harness.vault_bootstrap import approle_login
from stack import registry

pytestmark = pytest.mark.credentials

SERVICES = registry.with_capability("rotatable_password")


def login(name, endpoint, user, password) -> str:
    """Log in as ``user`` with ``password`` and return the user the server says the session belongs to.
    Any failure propagates: a refusal is judged by :func:`refusal`, nothing here turns an error into a value."""
    if name == "postgres":
        with endpoint.connect(user=user, password=password) as conn:
            return conn.execute("SELECT current_user").fetchone()[0]
    if name == "mysql":
        conn = endpoint.connect(user=user, password=password)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                return cur.fetchone()[0].split("@", 1)[0]
        finally:
            conn.close()
    if name == "mongodb":
        with endpoint.client(username=user, password=password) as client:
            status = client.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
            return status[0]["user"] if status else ""
    if name == "redis":
        node = endpoint.nodes[0]
        # One attempt (redis-py retries ten times with backoff by default): a refused login is the answer here,
        # and retrying it would only add seconds to every refusal check.
        with redis.Redis(host=node.host, port=node.port, password=password, socket_timeout=5,
                         retry=Retry(NoBackoff(), 0), decode_responses=True) as client:
            return client.execute_command("ACL", "WHOAMI")
    if name == "rabbitmq":
        conn = endpoint.connect(credentials=pika.PlainCredentials(user, password))
        try:
            conn.channel().close()  # an open channel needs an authenticated connection
            return user  # pika has no "who am I"; the broker closes the connection on a wrong login
        finally:
            conn.close()
    raise AssertionError(f"this suite has no login check for service {name!r} (add one beside the others)")


def refusal(name, endpoint, user, password) -> str:
    """Log in with a password that must be refused; the refusal must be the server's authentication error
    (a connection error, a timeout or a server that is down does not pass). Returns the error text."""
    if name == "postgres":
        # libpq reports the server's FATAL 28P01 as text; psycopg raises OperationalError for connect failures
        expected = f'password authentication failed for user "{re.escape(user)}"'
        with pytest.raises(psycopg.OperationalError, match=expected) as refused:
            login(name, endpoint, user, password)
    elif name == "mysql":
        with pytest.raises(pymysql.err.OperationalError, match="Access denied for user") as refused:
            login(name, endpoint, user, password)
        assert refused.value.args[0] == 1045, f"expected ER_ACCESS_DENIED_ERROR (1045), got {refused.value.args[0]}"
    elif name == "mongodb":
        with pytest.raises(pymongo.errors.OperationFailure, match="Authentication failed") as refused:
            login(name, endpoint, user, password)
        assert refused.value.code == 18, f"expected AuthenticationFailed (18), got {refused.value.code}"
    elif name == "redis":
        with pytest.raises(redis.exceptions.AuthenticationError, match="invalid username-password pair") as refused:
            login(name, endpoint, user, password)
    elif name == "rabbitmq":
        with pytest.raises(pika.exceptions.ProbableAuthenticationError, match="ACCESS_REFUSED") as refused:
            login(name, endpoint, user, password)
    else:
        raise AssertionError(f"this suite has no refusal check for service {name!r} (add one beside the others)")
    return str(refused.value)


def _vault_secret(stack, vault_endpoint, name) -> dict:
    creds = stack.vault_bootstrap.approles[name]
    client = approle_login(vault_endpoint.url, creds["role_id"], creds["secret_id"])
    return client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                    raise_on_deleted_version=True)["data"]["data"]


def _user(name, secret) -> str:
    return "default" if name == "redis" else str(secret["user"])  # Redis: requirepass is the default user's


@pytest.mark.destructive  # rotates the password every other user of the stack holds (xdist workers, --reuse)
@pytest.mark.parametrize("name", service_params(SERVICES))
def test_vault_password_is_live_and_rotation_takes_effect(name, harness_stack, vault_service, request):
    endpoint = request.getfixturevalue(f"{name}_service")
    secret = _vault_secret(harness_stack, vault_service, name)
    user, in_vault = _user(name, secret), str(secret["password"])
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
