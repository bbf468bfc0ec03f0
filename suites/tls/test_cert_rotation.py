"""Rotation: a new leaf from Vault is served after ``rotate_certificate`` without a restart, TLS clients
verify it, and a connection opened before the rotation keeps working.

What counts is what the listeners present on the wire: a verified handshake with every TLS listener of the
service before and after, and the served certificate compared with Vault's record of the new serial. Nothing
the rotation call returns about itself is taken as proof."""

from __future__ import annotations

import pytest
import requests
from cryptography import x509

from harness.certs import rotate_certificate, targets
from stack.base import client_tls_context
from stack.tlsprobe import handshake, int_to_serial

pytestmark = [pytest.mark.tls, pytest.mark.destructive]


def _served(harness_stack, name) -> dict[str, x509.Certificate]:
    """listener -> the leaf it presents, from a handshake verified against the root CA (chain and name)."""
    found = {}
    for target in targets({name: harness_stack.endpoint(name)}):
        result = handshake(target.host, target.port, target.protocol, client_tls_context(target.ca_file),
                           target.server_name)
        found[target.alias] = x509.load_der_x509_certificate(result.certificate_der)
    assert found, f"{name} has no TLS listener"
    return found


def _rotate(harness_stack, name):
    started = {c.id: c.attrs["State"]["StartedAt"] for c in harness_stack.containers(name)}
    before = _served(harness_stack, name)
    assert len({c.serial_number for c in before.values()}) == 1, f"{name}'s listeners serve different leaves"
    new = rotate_certificate(harness_stack, name).new_serial
    after = _served(harness_stack, name)
    assert set(after) == set(before)
    vault = harness_stack.endpoint("vault")
    record = requests.get(f"{vault.url}/v1/pki_int/cert/{new}", timeout=5)
    assert record.status_code == 200, f"Vault has no record of the new serial {new}"
    issued = x509.load_pem_x509_certificate(record.json()["data"]["certificate"].encode())
    for alias, cert in after.items():
        assert cert.serial_number != before[alias].serial_number, f"{alias} still serves the old certificate"
        assert cert == issued, (f"{alias} serves {int_to_serial(cert.serial_number)}, not the certificate Vault "
                                f"issued as {new}")
    for container in harness_stack.containers(name):  # reloaded, not restarted
        container.reload()
        assert container.attrs["State"]["StartedAt"] == started[container.id]
    return new


@pytest.mark.postgres
def test_postgres_rotation(harness_stack, postgres_service):
    with postgres_service.connect(tls=True) as before:
        _rotate(harness_stack, "postgres")
        assert before.execute("SELECT 1").fetchone() == (1,)
    with harness_stack.endpoint("postgres").connect(tls=True) as after:
        assert after.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


@pytest.mark.mysql
def test_mysql_rotation(harness_stack, mysql_service):
    before = mysql_service.connect(tls=True)
    try:
        _rotate(harness_stack, "mysql")
        with before.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        before.close()
    after = harness_stack.endpoint("mysql").connect(tls=True)
    after.close()


@pytest.mark.redis
def test_redis_rotation(harness_stack, redis_service):
    before = redis_service.client(tls=True)
    try:
        before.set("rotation-probe", "before", ex=600)
        _rotate(harness_stack, "redis")
        assert before.get("rotation-probe") == "before"
    finally:
        before.close()
    after = harness_stack.endpoint("redis").client(tls=True)
    try:
        assert after.get("rotation-probe") == "before"
    finally:
        after.close()


@pytest.mark.rabbitmq
def test_rabbitmq_rotation(harness_stack, rabbitmq_service):
    before = rabbitmq_service.connect(tls=True)
    try:
        _rotate(harness_stack, "rabbitmq")
        channel = before.channel()
        channel.queue_declare(queue="", exclusive=True)
    finally:
        before.close()
    after = harness_stack.endpoint("rabbitmq")
    after.connect(tls=True).close()
    assert after.api("overview", tls=True).status_code == 200


@pytest.mark.mongodb
def test_mongodb_rotation(harness_stack, mongodb_service):
    with mongodb_service.client(tls=True) as before:
        before.admin.command("ping")
        _rotate(harness_stack, "mongodb")
        assert before.admin.command("ping")["ok"] == 1.0
    with harness_stack.endpoint("mongodb").client(tls=True) as after:
        assert after.admin.command("ping")["ok"] == 1.0


@pytest.mark.vault
def test_vault_rotation(harness_stack, vault_service):
    _rotate(harness_stack, "vault")
    assert harness_stack.endpoint("vault").client(tls=True).lookup_token()["data"]["policies"]
