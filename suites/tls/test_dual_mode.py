"""Dual mode: the same service answers plain and TLS clients, and the *server* confirms which one each session is.

Every service whose driver opens sessions (:meth:`stack.driver.ServiceDriver.session`) is covered without an edit
here: each session's :meth:`~stack.driver.Session.is_tls` is the server's own record (PostgreSQL's pg_stat_ssl,
MySQL's Ssl_cipher, Redis's CLIENT INFO local port, RabbitMQ's management connection record, MongoDB's
transportSecurity counters, …). A plain connection that silently negotiated TLS fails here, and so does a "TLS"
connection the server saw as plain. Vault, the root of trust, has no sessions: its API is checked on HTTP and HTTPS.
"""

from __future__ import annotations

import hvac
import pytest
import requests

from harness.plugin import service_params
from stack import registry

pytestmark = pytest.mark.tls
SESSIONS = [name for name in registry.with_capability("tls") if registry.get(name).driver.has("session")]


@pytest.mark.parametrize("name", service_params(SESSIONS))
def test_plain_and_tls_as_seen_by_the_server(name, request):
    endpoint = request.getfixturevalue(f"{name}_service")  # skips naming the image where it is unavailable
    driver = registry.get(name).driver
    with driver.session(endpoint, tls=False) as plain:
        assert plain.is_tls() is False, f"{name}: the server saw the plain session as TLS"
    with driver.session(endpoint, tls=True) as secure:  # verified against the exported root, name checked
        assert secure.is_tls() is True, f"{name}: the server saw the TLS session as plain"


@pytest.mark.rabbitmq
def test_rabbitmq_management_api_on_http_and_https(rabbitmq_service):
    assert rabbitmq_service.management_url(tls=False).startswith("http://")
    assert rabbitmq_service.api("overview", tls=False).status_code == 200
    assert rabbitmq_service.management_url(tls=True).startswith("https://")
    assert rabbitmq_service.api("overview", tls=True).status_code == 200  # verified against the root CA


@pytest.mark.vault
def test_vault_api_on_http_and_https(vault_service):
    assert vault_service.client().sys.read_health_status(method="GET")["initialized"] is True
    https = vault_service.client(tls=True)  # hvac verifies against the exported root CA
    assert https.url.startswith("https://")
    assert https.lookup_token()["data"]["policies"]
    with pytest.raises(requests.exceptions.SSLError):
        hvac.Client(url=vault_service.tls_url, token=vault_service.token, timeout=5).sys.read_health_status(
            method="GET")  # the system trust store does not know the harness CA
