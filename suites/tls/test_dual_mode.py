"""Dual mode: the same service answers plain and TLS clients, and the *server* confirms which one each
session is (pg_stat_ssl, Ssl_cipher, CLIENT INFO's local port, the management API's connection record,
MongoDB's transportSecurity counters). A plain connection that silently negotiated TLS fails here, and so
does a "TLS" connection the server saw as plain.
"""

from __future__ import annotations

import secrets

import hvac
import pytest
import requests

from stack.redis_cluster import REDIS_PORT, REDIS_TLS_PORT
from stack.waiting import poll

pytestmark = pytest.mark.tls


@pytest.mark.postgres
def test_postgres_plain_and_tls_as_seen_by_the_server(postgres_service):
    query = "SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    with postgres_service.connect(tls=False) as conn:
        assert conn.execute(query).fetchone()[0] is False
    with postgres_service.connect(tls=True) as conn:  # sslmode=verify-full against the exported root
        ssl_on, version, cipher = conn.execute(query).fetchone()
    assert ssl_on is True and version in ("TLSv1.2", "TLSv1.3") and cipher


@pytest.mark.mysql
def test_mysql_plain_and_tls_as_seen_by_the_server(mysql_service):
    def session_tls(conn) -> tuple[str, str]:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_cipher', 'Ssl_version')")
            values = dict(cur.fetchall())
        conn.close()
        return values["Ssl_cipher"], values["Ssl_version"]

    assert session_tls(mysql_service.connect(tls=False)) == ("", "")
    cipher, version = session_tls(mysql_service.connect(tls=True))
    assert cipher and version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.redis
def test_redis_plain_and_tls_as_seen_by_the_server(redis_service):
    node = redis_service.nodes[0]
    # CLIENT INFO's laddr is the server-side socket: 6380 is the TLS-only port, 6379 the plain one.
    with redis_service.node_client(node, tls=False) as plain:
        assert plain.client_info()["laddr"].endswith(f":{REDIS_PORT}")
    with redis_service.node_client(node, tls=True) as tls:
        assert tls.client_info()["laddr"].endswith(f":{REDIS_TLS_PORT}")
        assert tls.connection_pool.connection_class.__name__ == "SSLConnection"


@pytest.mark.rabbitmq
def test_rabbitmq_plain_and_tls_as_seen_by_the_server(rabbitmq_service):
    names = {False: f"harness-plain-{secrets.token_hex(4)}", True: f"harness-tls-{secrets.token_hex(4)}"}
    connections = {tls: rabbitmq_service.connect(tls=tls, client_properties={"connection_name": name})
                   for tls, name in names.items()}
    try:
        def records():
            listed = rabbitmq_service.api("connections").json()
            found = {c.get("client_properties", {}).get("connection_name"): c for c in listed}
            return {tls: found.get(name) for tls, name in names.items()}

        seen = poll(records, what="both connections to appear in the management API", timeout=30,
                    accept=lambda r: all(r.values()), hint="the management API lists connections within seconds")
    finally:
        for conn in connections.values():
            conn.close()
    assert seen[False]["ssl"] is False
    assert seen[True]["ssl"] is True and seen[True]["ssl_protocol"] in ("tlsv1.2", "tlsv1.3")


@pytest.mark.rabbitmq
def test_rabbitmq_management_api_on_http_and_https(rabbitmq_service):
    assert rabbitmq_service.management_url(tls=False).startswith("http://")
    assert rabbitmq_service.api("overview", tls=False).status_code == 200
    assert rabbitmq_service.management_url(tls=True).startswith("https://")
    assert rabbitmq_service.api("overview", tls=True).status_code == 200  # verified against the root CA


@pytest.mark.mongodb
def test_mongodb_plain_and_tls_as_seen_by_the_server(mongodb_service):
    def tls_connections(client) -> int:
        counters = client.admin.command("serverStatus").get("transportSecurity", {})
        return sum(int(v) for k, v in counters.items() if k != "unknown")

    with mongodb_service.client(tls=False) as plain:
        before = tls_connections(plain)
        plain.admin.command("ping")
        assert tls_connections(plain) == before  # a plain session adds no TLS connection
    with mongodb_service.client(tls=True) as tls:
        tls.admin.command("ping")
        assert tls_connections(tls) > before


@pytest.mark.vault
def test_vault_api_on_http_and_https(vault_service):
    assert vault_service.client().sys.read_health_status(method="GET")["initialized"] is True
    https = vault_service.client(tls=True)  # hvac verifies against the exported root CA
    assert https.url.startswith("https://")
    assert https.lookup_token()["data"]["policies"]
    with pytest.raises(requests.exceptions.SSLError):
        hvac.Client(url=vault_service.tls_url, token=vault_service.token, timeout=5).sys.read_health_status(
            method="GET")  # the system trust store does not know the harness CA
