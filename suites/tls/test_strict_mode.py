"""Strict mode (``tls_strict``, stored in Vault): a second stack whose services serve TLS only. Plaintext is
refused by the server, and the same client over TLS (full verification) still works on the same service."""

from __future__ import annotations

import pika.exceptions
import psycopg
import pymysql
import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = [pytest.mark.tls, pytest.mark.own_stack]


def _strict(strict_stack, name):
    reason = strict_stack.unavailable_reason(name)
    if reason is not None:
        pytest.skip(reason=f"{name} unavailable here: {reason}")
    endpoint = strict_stack.endpoint(name)
    assert endpoint.tls is not None and endpoint.tls.strict, f"{name} did not start in strict mode"
    secret = strict_stack.endpoint("vault").client().secrets.kv.v2.read_secret_version(
        path=name, mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    assert secret["tls_strict"] is True, "the strict stack's Vault does not record tls_strict for the service"
    return endpoint


@pytest.mark.postgres
def test_postgres_strict_refuses_plaintext(strict_stack):
    ep = _strict(strict_stack, "postgres")
    with pytest.raises(psycopg.OperationalError, match=r"no encryption|pg_hba\.conf rejects"):
        ep.connect(tls=False).close()
    with ep.connect(tls=True) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True


@pytest.mark.mysql
def test_mysql_strict_refuses_plaintext(strict_stack):
    ep = _strict(strict_stack, "mysql")
    # MySQL answers 3159 (insecure transport prohibited); MariaDB 10.11 answers 1045 "Access denied". The
    # TLS login below uses the very same credentials, so the refusal can only be the transport.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        ep.connect(tls=False).close()
    assert refused.value.args[0] in (1045, 3159, 4056), refused.value
    conn = ep.connect(tls=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            assert cur.fetchone()[1]
            cur.execute("SELECT @@require_secure_transport")
            assert cur.fetchone()[0] == 1
    finally:
        conn.close()


@pytest.mark.redis
def test_redis_strict_refuses_plaintext(strict_stack):
    ep = _strict(strict_stack, "redis")
    for node in ep.nodes:
        # Evidence first: the node is alive over TLS and runs with no plaintext listener (port 0), so the refused
        # plaintext connection below is the policy and not a dead node.
        with ep.node_client(node, tls=True, socket_timeout=3) as secure:
            assert secure.config_get("port") == {"port": "0"}, f"{node.alias} still has a plaintext port"
        # One attempt: redis-py would retry the refused connection ten times with backoff (~4 s per node).
        with ep.node_client(node, tls=False, socket_timeout=3, retry=Retry(NoBackoff(), 0)) as plain, \
                pytest.raises(redis.ConnectionError):
            plain.ping()
    cluster = ep.client(tls=True)
    try:
        cluster.set("strict-probe", "1", ex=60)
        assert cluster.get("strict-probe") == "1"
        assert cluster.cluster_info()["cluster_state"] == "ok"
    finally:
        cluster.close()


@pytest.mark.rabbitmq
def test_rabbitmq_strict_refuses_plaintext(strict_stack):
    ep = _strict(strict_stack, "rabbitmq")
    # Evidence first: the broker answers over TLS and lists only TLS listeners, so the failures below are the
    # policy and not a dead broker.
    overview = ep.api("overview", tls=True)
    assert overview.status_code == 200
    protocols = {listener["protocol"] for listener in overview.json()["listeners"]}
    assert {"amqp/ssl", "https"} <= protocols and not protocols & {"amqp", "http"}, protocols
    with pytest.raises(pika.exceptions.AMQPConnectionError) as refused:
        ep.connect(tls=False).close()
    # A login refusal would mean a plaintext listener exists and the credentials were read.
    assert not isinstance(refused.value, (pika.exceptions.ProbableAuthenticationError,
                                          pika.exceptions.ProbableAccessDeniedError)), type(refused.value)
    with pytest.raises(requests.exceptions.ConnectionError):
        ep.api("overview", tls=False)
    conn = ep.connect(tls=True)
    conn.close()


@pytest.mark.mongodb
def test_mongodb_strict_refuses_plaintext(strict_stack):
    import pymongo.errors

    ep = _strict(strict_stack, "mongodb")
    with ep.client(tls=True) as client:
        assert client.admin.command("ping")["ok"] == 1.0
        parsed = client.admin.command("getCmdLineOpts")["parsed"]
        assert parsed["net"]["tls"]["mode"] == "requireTLS", parsed["net"]["tls"]
    # requireTLS closes a plaintext connection before any reply, so server selection times out.
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError), \
            ep.client(tls=False, serverSelectionTimeoutMS=3000) as plain:
        plain.admin.command("ping")
