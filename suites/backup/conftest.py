"""What the backup round trips seed, check and fingerprint, per service, and the round trip itself.

Each service the backup suite knows has a :class:`Seed`: deterministic data written with every step checked, a
list of the seeded objects missing from a stack, fingerprints to compare at backup time and after a restore, and
optionally a marker written before the backup (must come back) and after it (must not). :func:`run_round_trip`
seeds a stack of its own with some services, backs it up encrypted, removes it (containers, network, Vault),
starts a fresh one and restores into it. The whole-stack round trip (``test_backup_restore.py``) and the
per-service round trips (``test_backup_per_service.py``) both use it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
import requests

from harness.backup import basic_format_check, verify
from harness.backup_services import create, restore
from harness.engine import Stack

PG_TABLES = {"customers": 200, "orders": 500, "items": 50}
MY_TABLES = {"accounts": 150, "events": 400}
REDIS_KEYS = 300
RABBIT_QUEUES = ("orders", "invoices")
VAULT_SEED = {"colour": "teal", "n": 42}
MONGO_DOCS = 250


# ----------------------------------------------------------------------------------------------- PostgreSQL

def seed_postgres(stack: Stack) -> None:
    with stack.endpoint("postgres").connect() as conn:
        for table, rows in PG_TABLES.items():
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, amount numeric)")
            inserted = conn.execute(
                f"INSERT INTO {table} SELECT g, '{table}-' || g, g * 1.25 FROM generate_series(1, {rows}) g").rowcount
            assert inserted == rows, f"postgres: INSERT into {table} wrote {inserted} rows, expected {rows}"
        conn.execute("CREATE TABLE canary (note text)")


def missing_postgres(stack: Stack) -> list[str]:
    missing = []
    with stack.endpoint("postgres").connect() as conn:
        for table, rows in PG_TABLES.items():
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
                missing.append(f"postgres.{table}: no such table")
                continue
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if count != rows:
                missing.append(f"postgres.{table}: {count} rows, seeded {rows}")
    return missing


def fingerprints_postgres(stack: Stack) -> dict[str, str]:
    prints = {}
    with stack.endpoint("postgres").connect() as conn:
        for table in [*PG_TABLES, "canary"]:
            count, digest = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
            ).fetchone()
            prints[f"postgres.{table}"] = f"{count}:{digest}"
    return prints


def mark_postgres(stack: Stack, label: str) -> None:
    with stack.endpoint("postgres").connect() as conn:
        conn.execute("INSERT INTO canary VALUES (%s)", (label,))


# ---------------------------------------------------------------------------------------------------- MySQL

def seed_mysql(stack: Stack) -> None:
    my = stack.endpoint("mysql").connect()
    try:
        with my.cursor() as cur:
            for table, rows in MY_TABLES.items():
                cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, label VARCHAR(64), qty INT)")
                inserted = cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)",
                                           [(i, f"{table}-{i}", i * 3) for i in range(1, rows + 1)])
                assert inserted == rows, f"mysql: INSERT into {table} wrote {inserted} rows, expected {rows}"
        my.commit()
    finally:
        my.close()


def missing_mysql(stack: Stack) -> list[str]:
    missing = []
    my = stack.endpoint("mysql").connect()
    try:
        with my.cursor() as cur:
            for table, rows in MY_TABLES.items():
                cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND "
                            "table_name = %s", (table,))
                if cur.fetchone()[0] == 0:
                    missing.append(f"mysql.{table}: no such table")
                    continue
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                count = cur.fetchone()[0]
                if count != rows:
                    missing.append(f"mysql.{table}: {count} rows, seeded {rows}")
    finally:
        my.close()
    return missing


def fingerprints_mysql(stack: Stack) -> dict[str, str]:
    prints = {}
    my = stack.endpoint("mysql").connect()
    try:
        with my.cursor() as cur:
            for table in MY_TABLES:
                cur.execute(f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, label, qty))), 0) FROM {table}")
                count, crc = cur.fetchone()
                prints[f"mysql.{table}"] = f"{count}:{crc}"
    finally:
        my.close()
    return prints


# ---------------------------------------------------------------------------------------------------- Redis

def seed_redis(stack: Stack) -> None:
    cluster = stack.endpoint("redis").client()
    try:
        for i in range(REDIS_KEYS):
            assert cluster.set(f"seed:{i}", f"value-{i}", ex=3600 if i % 3 == 0 else None) is True, f"SET seed:{i}"
        assert cluster.hset("seed:hash", mapping={"a": "1", "b": "2"}) == 2, "HSET seed:hash added fewer than 2 fields"
    finally:
        cluster.close()


def missing_redis(stack: Stack) -> list[str]:
    missing = []
    cluster = stack.endpoint("redis").client()
    try:
        absent = [i for i in range(REDIS_KEYS) if cluster.get(f"seed:{i}") != f"value-{i}"]
        if absent:
            missing.append(f"redis.seed: {len(absent)} of {REDIS_KEYS} keys absent or different (first: "
                           f"seed:{absent[0]})")
        if cluster.hgetall("seed:hash") != {"a": "1", "b": "2"}:
            missing.append("redis.seed:hash: absent or different")
    finally:
        cluster.close()
    return missing


def fingerprints_redis(stack: Stack) -> dict[str, str]:
    prints = {}
    ep = stack.endpoint("redis")
    for node in ep.nodes:
        with ep.node_client(node) as client:
            if client.execute_command("ROLE")[0] != "master":
                continue
            slots = sorted((int(s[0]), int(s[1])) for s in client.execute_command("CLUSTER", "SLOTS")
                           if s[2][0] == node.internal_ip)
            items = []
            for key in sorted(client.scan_iter(match="*", count=1000)):
                kind = client.type(key)
                value = client.get(key) if kind == "string" else json.dumps(client.hgetall(key), sort_keys=True)
                items.append(f"{key}={value}:{'ttl' if client.pttl(key) > 0 else 'persist'}")
            prints[f"redis.{slots}"] = f"{len(items)}:{hashlib.sha256('|'.join(items).encode()).hexdigest()}"
    return prints


def mark_redis(stack: Stack, label: str) -> None:
    cluster = stack.endpoint("redis").client()
    try:
        cluster.set(f"marker:{label}", label)
    finally:
        cluster.close()


# ------------------------------------------------------------------------------------------------- RabbitMQ

def seed_rabbitmq(stack: Stack) -> None:
    rabbit = stack.endpoint("rabbitmq")
    auth = (rabbit.user, rabbit.password)
    verify_tls: str | bool = rabbit.tls.ca_file if rabbit.tls is not None else True
    base = rabbit.management_url()
    vhost = requests.utils.quote(rabbit.vhost, safe="")
    steps: list[tuple[str, str, dict[str, Any]]] = [
        *[("PUT", f"queues/{vhost}/{queue}", {"durable": True}) for queue in RABBIT_QUEUES],
        ("PUT", f"exchanges/{vhost}/billing", {"type": "topic", "durable": True}),
        ("POST", f"bindings/{vhost}/e/billing/q/invoices", {"routing_key": "invoice.#"}),
        ("PUT", f"policies/{vhost}/ttl", {"pattern": "^orders$", "definition": {"message-ttl": 60000},
                                          "apply-to": "queues"})]
    for method, path, body in steps:
        resp = requests.request(method, f"{base}/api/{path}", json=body, auth=auth, timeout=10, verify=verify_tls)
        assert resp.status_code in (201, 204), f"rabbitmq: {method} /api/{path} answered {resp.status_code}: " \
                                               f"{resp.text[:200]}"


def missing_rabbitmq(stack: Stack) -> list[str]:
    missing = []
    rabbit = stack.endpoint("rabbitmq")
    defs = rabbit.api("definitions").json()
    in_vhost = {k: [d for d in defs.get(k, []) if d.get("vhost") == rabbit.vhost]
                for k in ("queues", "exchanges", "bindings", "policies")}
    missing += [f"rabbitmq.queue {q}: absent" for q in RABBIT_QUEUES
                if q not in {d["name"] for d in in_vhost["queues"]}]
    if "billing" not in {d["name"] for d in in_vhost["exchanges"]}:
        missing.append("rabbitmq.exchange billing: absent")
    if not any(d["source"] == "billing" and d["destination"] == "invoices" and d["routing_key"] == "invoice.#"
               for d in in_vhost["bindings"]):
        missing.append("rabbitmq.binding billing -> invoices (invoice.#): absent")
    if not any(d["name"] == "ttl" and d["definition"] == {"message-ttl": 60000} for d in in_vhost["policies"]):
        missing.append("rabbitmq.policy ttl: absent")
    return missing


def fingerprints_rabbitmq(stack: Stack) -> dict[str, str]:
    defs = stack.endpoint("rabbitmq").api("definitions").json()
    picked = {k: sorted(json.dumps({f: d.get(f) for f in ("name", "vhost", "source", "destination", "routing_key",
                                                          "type", "durable", "pattern", "definition")},
                                   sort_keys=True) for d in defs.get(k, []))
              for k in ("vhosts", "queues", "exchanges", "bindings", "policies")}
    return {"rabbitmq.definitions": hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()}


# -------------------------------------------------------------------------------------------------- MongoDB
# Not run on this project's CI machine when no mongo image exists (the round trip skips naming the image).

def seed_mongodb(stack: Stack) -> None:
    ep = stack.endpoint("mongodb")
    with ep.client() as client:
        result = client[ep.database]["seed_docs"].insert_many([{"_id": i, "v": f"doc-{i}"} for i in range(MONGO_DOCS)])
        assert len(result.inserted_ids) == MONGO_DOCS, f"mongodb: inserted {len(result.inserted_ids)} documents, " \
                                                       f"expected {MONGO_DOCS}"


def missing_mongodb(stack: Stack) -> list[str]:
    ep = stack.endpoint("mongodb")
    with ep.client() as client:
        count = client[ep.database]["seed_docs"].count_documents({})
    return [] if count == MONGO_DOCS else [f"mongodb.seed_docs: {count} documents, seeded {MONGO_DOCS}"]


def fingerprints_mongodb(stack: Stack) -> dict[str, str]:
    ep = stack.endpoint("mongodb")
    with ep.client() as client:
        docs = [json.dumps(d, sort_keys=True) for d in client[ep.database]["seed_docs"].find().sort("_id", 1)]
    return {"mongodb.seed_docs": f"{len(docs)}:{hashlib.sha256('|'.join(docs).encode()).hexdigest()}"}


# ---------------------------------------------------------------------------------------------------- Vault

def seed_vault(stack: Stack) -> None:
    vault = stack.endpoint("vault").client()
    written = vault.secrets.kv.v2.create_or_update_secret(path="backup-seed", secret=VAULT_SEED, mount_point="secret")
    assert written["data"]["version"] >= 1, f"vault: writing backup-seed answered {written}"


def missing_vault(stack: Stack) -> list[str]:
    try:
        kv = stack.endpoint("vault").client().secrets.kv.v2.read_secret_version(
            path="backup-seed", mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    except hvac.exceptions.InvalidPath:
        kv = None
    return [] if kv == VAULT_SEED else ["vault.kv backup-seed: absent or different"]


def fingerprints_vault(stack: Stack) -> dict[str, str]:
    vault = stack.endpoint("vault").client()
    others = [name for name in stack.services if name != "vault"]
    return {
        "vault.kv": json.dumps(vault.secrets.kv.v2.read_secret_version(
            path="backup-seed", mount_point="secret", raise_on_deleted_version=True)["data"]["data"], sort_keys=True),
        "vault.ca": vault.read("pki_int/cert/ca")["data"]["certificate"],
        "vault.role_ids": json.dumps({s: vault.read(f"auth/approle/role/{s}/role-id")["data"]["role_id"]
                                      for s in others}, sort_keys=True)}


# ------------------------------------------------------------------------------------------------ the table

@dataclass(frozen=True)
class Seed:
    seed: Callable[[Stack], None]
    missing: Callable[[Stack], list[str]]
    fingerprints: Callable[[Stack], dict[str, str]]
    mark: Callable[[Stack, str], None] | None = None


SEEDS: dict[str, Seed] = {
    "vault": Seed(seed_vault, missing_vault, fingerprints_vault),
    "postgres": Seed(seed_postgres, missing_postgres, fingerprints_postgres, mark_postgres),
    "mysql": Seed(seed_mysql, missing_mysql, fingerprints_mysql),
    "mongodb": Seed(seed_mongodb, missing_mongodb, fingerprints_mongodb),
    "redis": Seed(seed_redis, missing_redis, fingerprints_redis, mark_redis),
    "rabbitmq": Seed(seed_rabbitmq, missing_rabbitmq, fingerprints_rabbitmq),
}


def seed_of(name: str) -> Seed:
    """The seed of a service; a backed-up service without one fails naming what to add."""
    if name not in SEEDS:
        raise AssertionError(f"the backup suite has no seed for service {name!r}: add one to SEEDS in "
                             "suites/backup/conftest.py (seed, missing, fingerprints)")
    return SEEDS[name]


def seed(stack: Stack, services: list[str]) -> None:
    """Deterministic data in every service of ``services``; every step checks its result."""
    for name in services:
        seed_of(name).seed(stack)


def missing_seed(stack: Stack, services: list[str]) -> list[str]:
    """Every seeded object that is not in ``stack``, as ``<service>.<what>: <seen>`` (empty when all are)."""
    return [m for name in services for m in seed_of(name).missing(stack)]


def fingerprints(stack: Stack, services: list[str]) -> dict[str, str]:
    return {k: v for name in services for k, v in seed_of(name).fingerprints(stack).items()}


def write_marker(stack: Stack, services: list[str], label: str) -> None:
    for name in services:
        mark = seed_of(name).mark
        if mark is not None:
            mark(stack, label)


def run_round_trip(settings: Any, services: list[str], root: Path, passphrase: bytes,
                   benchmarks: dict[str, Any], key: str) -> Iterator[dict[str, Any]]:
    """Seed a stack of its own running ``services``, back it up (encrypted) into ``root``, write more data (must
    not come back), remove the stack, restore into a fresh one and yield what the tests compare."""
    source = Stack(settings)
    try:
        source.start(services)
        for name in services:
            reason = source.unavailable_reason(name)
            if reason is not None:
                pytest.skip(reason=f"{name} unavailable here: {reason}")
        seed(source, services)
        write_marker(source, services, "canary")
        missing_at_backup = missing_seed(source, services)
        expected = fingerprints(source, services)
        t0 = time.monotonic()
        manifest = create(source, root, None, passphrase)
        backup_s = time.monotonic() - t0
        write_marker(source, services, "after")  # taken after the backup: must not come back
    finally:
        source.close()  # the whole stack is gone: containers, network, Vault
    t0 = time.monotonic()
    findings = verify(root, manifest.id, passphrase, basic_format_check)
    verify_s = time.monotonic() - t0
    fresh = Stack(settings)
    try:
        fresh.start(services)
        missing_in_empty_stack = missing_seed(fresh, services)  # the control: the check finds the seed absent
        fresh_passwords = {n: fresh.endpoint(n).password for n in services if n != "vault"}
        t0 = time.monotonic()
        timings = restore(fresh, root, manifest.id, passphrase, None)
        restore_s = time.monotonic() - t0
        benchmarks[key] = {
            "backup_s": round(backup_s, 2), "verify_s": round(verify_s, 3), "restore_s (RTO)": round(restore_s, 2),
            "restore_per_service_s": timings, "stored_bytes": manifest.totals["stored_bytes"],
            "artifacts": {a.name: a.size for a in manifest.artifacts}}
        yield {"root": root, "manifest": manifest, "expected": expected,
               "restored": fingerprints(fresh, services), "findings": findings, "fresh": fresh,
               "passphrase": passphrase, "fresh_passwords": fresh_passwords, "services": services,
               "missing": {"at backup": missing_at_backup, "after restore": missing_seed(fresh, services),
                           "in an empty stack": missing_in_empty_stack}}
    finally:
        fresh.close()


@pytest.fixture(scope="session")
def backup_round_trip() -> Callable[..., Iterator[dict[str, Any]]]:
    """:func:`run_round_trip`, for the round-trip fixtures of the backup test modules."""
    return run_round_trip
