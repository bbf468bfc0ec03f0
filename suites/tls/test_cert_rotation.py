"""Rotation: a new leaf from Vault is served after ``rotate_certificate`` without a restart, TLS clients
verify it, and a connection opened before the rotation keeps working."""

from __future__ import annotations

import pytest

from harness.certs import served, targets

pytestmark = [pytest.mark.tls, pytest.mark.destructive]


def _rotate(harness_stack, name):
    container_ids = set(harness_stack.require(name).container_ids())
    started = {cid: harness_stack.client.containers.get(cid).attrs["State"]["StartedAt"] for cid in container_ids}
    old, new, how = harness_stack.rotate_certificate(name)
    assert old != new
    assert how.startswith("live:")
    for target in targets({name: harness_stack.endpoint(name)}):
        status = served(target)
        assert status.served_serial == new, f"{target.alias} still serves {status.served_serial} after rotation"
    for cid in container_ids:  # reloaded, not restarted
        assert harness_stack.client.containers.get(cid).attrs["State"]["StartedAt"] == started[cid]
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
