"""Backup -> destroy the stack -> restore into a fresh stack -> the data is the same.

A module fixture starts a stack of its own, seeds deterministic data in every service, writes a canary,
takes an encrypted backup, writes more data (which must *not* come back), removes the whole stack, starts a
fresh one (new containers, new Vault, new passwords) and restores into it. The tests compare per-table,
per-slot-range, per-vhost and Vault fingerprints taken at backup time with the restored ones."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path

import pytest

from harness.backup import basic_format_check, verify
from harness.backup_services import StackTarget, create, restore
from harness.engine import Stack

pytestmark = [pytest.mark.backup, pytest.mark.destructive, pytest.mark.own_stack, pytest.mark.vault,
              pytest.mark.postgres, pytest.mark.mysql, pytest.mark.redis, pytest.mark.rabbitmq]
SERVICES = ["vault", "postgres", "mysql", "redis", "rabbitmq"]
PG_TABLES = {"customers": 200, "orders": 500, "items": 50}
MY_TABLES = {"accounts": 150, "events": 400}


def seed(stack: Stack) -> None:
    with stack.endpoint("postgres").connect() as conn:
        for table, rows in PG_TABLES.items():
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, amount numeric)")
            conn.execute(f"INSERT INTO {table} SELECT g, '{table}-' || g, g * 1.25 FROM generate_series(1, {rows}) g")
        conn.execute("CREATE TABLE canary (note text)")
    my = stack.endpoint("mysql").connect()
    try:
        with my.cursor() as cur:
            for table, rows in MY_TABLES.items():
                cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, label VARCHAR(64), qty INT)")
                cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)",
                                [(i, f"{table}-{i}", i * 3) for i in range(1, rows + 1)])
        my.commit()
    finally:
        my.close()
    cluster = stack.endpoint("redis").client()
    try:
        for i in range(300):
            cluster.set(f"seed:{i}", f"value-{i}", ex=3600 if i % 3 == 0 else None)
        cluster.hset("seed:hash", mapping={"a": "1", "b": "2"})
    finally:
        cluster.close()
    rabbit = stack.endpoint("rabbitmq")
    import requests

    auth = (rabbit.user, rabbit.password)
    base = rabbit.management_url()
    vhost = requests.utils.quote(rabbit.vhost, safe="")
    for queue in ("orders", "invoices"):
        requests.put(f"{base}/api/queues/{vhost}/{queue}", json={"durable": True}, auth=auth, timeout=10)
    requests.put(f"{base}/api/exchanges/{vhost}/billing", json={"type": "topic", "durable": True}, auth=auth,
                 timeout=10)
    requests.post(f"{base}/api/bindings/{vhost}/e/billing/q/invoices", json={"routing_key": "invoice.#"}, auth=auth,
                  timeout=10)
    requests.put(f"{base}/api/policies/{vhost}/ttl", json={"pattern": "^orders$", "definition": {"message-ttl": 60000},
                                                          "apply-to": "queues"}, auth=auth, timeout=10)
    vault = stack.endpoint("vault").client()
    vault.secrets.kv.v2.create_or_update_secret(path="backup-seed", secret={"colour": "teal", "n": 42},
                                                mount_point="secret")


def fingerprints(stack: Stack) -> dict[str, str]:
    prints: dict[str, str] = {}
    with stack.endpoint("postgres").connect() as conn:
        for table in [*PG_TABLES, "canary"]:
            count, digest = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
            ).fetchone()
            prints[f"postgres.{table}"] = f"{count}:{digest}"
    my = stack.endpoint("mysql").connect()
    try:
        with my.cursor() as cur:
            for table in MY_TABLES:
                cur.execute(f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, label, qty))), 0) FROM {table}")
                count, crc = cur.fetchone()
                prints[f"mysql.{table}"] = f"{count}:{crc}"
    finally:
        my.close()
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
    rabbit = stack.endpoint("rabbitmq")
    defs = rabbit.api("definitions").json()
    picked = {k: sorted(json.dumps({f: d.get(f) for f in ("name", "vhost", "source", "destination", "routing_key",
                                                          "type", "durable", "pattern", "definition")},
                                   sort_keys=True) for d in defs.get(k, []))
              for k in ("vhosts", "queues", "exchanges", "bindings", "policies")}
    prints["rabbitmq.definitions"] = hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()
    vault = stack.endpoint("vault").client()
    prints["vault.kv"] = json.dumps(vault.secrets.kv.v2.read_secret_version(
        path="backup-seed", mount_point="secret", raise_on_deleted_version=True)["data"]["data"], sort_keys=True)
    prints["vault.ca"] = vault.read("pki_int/cert/ca")["data"]["certificate"]
    prints["vault.role_ids"] = json.dumps({s: vault.read(f"auth/approle/role/{s}/role-id")["data"]["role_id"]
                                           for s in ("postgres", "mysql", "redis", "rabbitmq")}, sort_keys=True)
    return prints


def write_marker(stack: Stack, label: str) -> None:
    with stack.endpoint("postgres").connect() as conn:
        conn.execute("INSERT INTO canary VALUES (%s)", (label,))
    cluster = stack.endpoint("redis").client()
    try:
        cluster.set(f"marker:{label}", label)
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def round_trip(harness_stack, tmp_path_factory, harness_benchmarks):
    settings = harness_stack.settings
    root = tmp_path_factory.mktemp("backups")
    passphrase = secrets.token_hex(16).encode()
    source = Stack(settings)
    try:
        source.start(SERVICES)
        seed(source)
        write_marker(source, "canary")
        expected = fingerprints(source)
        t0 = time.monotonic()
        manifest = create(StackTarget(source), root, None, passphrase)
        backup_s = time.monotonic() - t0
        write_marker(source, "after")  # taken after the backup: must not come back
    finally:
        source.close()  # the whole stack is gone: containers, network, Vault
    t0 = time.monotonic()
    findings = verify(root, manifest.id, passphrase, basic_format_check)
    verify_s = time.monotonic() - t0
    fresh = Stack(settings)
    try:
        fresh.start(SERVICES)
        fresh_passwords = {n: fresh.endpoint(n).password for n in SERVICES if n != "vault"}
        target = StackTarget(fresh)
        t0 = time.monotonic()
        timings = restore(target, root, manifest.id, passphrase, None, target.adopt_vault)
        restore_s = time.monotonic() - t0
        harness_benchmarks["backup"] = {
            "backup_s": round(backup_s, 2), "verify_s": round(verify_s, 3), "restore_s (RTO)": round(restore_s, 2),
            "restore_per_service_s": timings, "stored_bytes": manifest.totals["stored_bytes"],
            "artifacts": {a.name: a.size for a in manifest.artifacts}}
        yield {"root": root, "manifest": manifest, "expected": expected, "restored": fingerprints(fresh),
               "findings": findings, "fresh": fresh, "passphrase": passphrase, "fresh_passwords": fresh_passwords}
    finally:
        fresh.close()


def test_backup_verifies(round_trip):
    bad = [f for f in round_trip["findings"] if f.status != "ok"]
    assert not bad, bad
    assert {a.service for a in round_trip["manifest"].artifacts} == set(SERVICES)
    assert all(a.encrypted for a in round_trip["manifest"].artifacts)


@pytest.mark.parametrize("part", ["postgres.", "mysql.", "redis.", "rabbitmq.", "vault."])
def test_restored_data_equals_backed_up_data(round_trip, part):
    expected = {k: v for k, v in round_trip["expected"].items() if k.startswith(part)}
    restored = {k: v for k, v in round_trip["restored"].items() if k.startswith(part)}
    assert expected, f"nothing fingerprinted for {part}"
    assert restored == expected


def test_canary_back_and_later_writes_absent(round_trip):
    fresh = round_trip["fresh"]
    with fresh.endpoint("postgres").connect() as conn:
        notes = [r[0] for r in conn.execute("SELECT note FROM canary")]
    assert notes == ["canary"]
    cluster = fresh.endpoint("redis").client()
    try:
        assert cluster.get("marker:canary") == "canary"
        assert cluster.get("marker:after") is None
        assert 0 < cluster.ttl("seed:0") <= 3600 and cluster.ttl("seed:1") == -1
    finally:
        cluster.close()


def test_vault_restored_and_usable(round_trip):
    fresh = round_trip["fresh"]
    vault = fresh.endpoint("vault").client()
    issued = vault.write_data("pki_int/issue/postgres", data={"common_name": "postgres", "ttl": "1h"})["data"]
    assert "BEGIN CERTIFICATE" in issued["certificate"]
    assert issued["issuing_ca"].strip() == round_trip["expected"]["vault.ca"].strip()
    material = fresh.material("postgres")  # the backup's AppRole credentials log in to the restored Vault
    assert material.password == fresh.endpoint("postgres").password  # live credentials written back to KV


def test_services_keep_working_with_live_credentials(round_trip):
    fresh = round_trip["fresh"]
    for name, password in round_trip["fresh_passwords"].items():
        assert fresh.endpoint(name).password == password
    with fresh.endpoint("postgres").connect() as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (200,)
    fresh.endpoint("rabbitmq").connect().close()


# ----------------------------------------------------------------------------------- tampering and keys


def _copy(round_trip, tmp_path) -> tuple[Path, str]:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(round_trip["root"], root)
    return root, round_trip["manifest"].id


def _statuses(root, backup_id, passphrase):
    return {(f.artifact, f.status) for f in verify(root, backup_id, passphrase, basic_format_check) if f.status != "ok"}


@pytest.mark.parametrize("case", ["flip", "truncate", "delete", "extra", "manifest"])
def test_tampering_is_detected_and_named(round_trip, tmp_path, case):
    root, backup_id = _copy(round_trip, tmp_path)
    target = root / backup_id / "postgres" / "devstack.dump"
    if case == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        expected = {("postgres/devstack.dump", "checksum mismatch")}
    elif case == "truncate":
        target.write_bytes(target.read_bytes()[:-10])
        expected = {("postgres/devstack.dump", "checksum mismatch")}
    elif case == "delete":
        target.unlink()
        expected = {("postgres/devstack.dump", "missing")}
    elif case == "extra":
        (root / backup_id / "postgres" / "stray.sql").write_text("-- not from the harness")
        expected = {("postgres/stray.sql", "unexpected extra file")}
    else:
        manifest = root / backup_id / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"type": "full"', '"type": "incremental"'))
        expected = {("manifest.json", "manifest tampered")}
    assert _statuses(root, backup_id, round_trip["passphrase"]) == expected


def test_manifest_edit_with_recomputed_checksum_still_detected(round_trip, tmp_path):
    """Swap in another file and fix its checksum in the manifest: the HMAC still catches it."""
    import hashlib as h

    root, backup_id = _copy(round_trip, tmp_path)
    directory = root / backup_id
    target = directory / "mysql" / "devstack.sql"
    target.write_bytes(b"-- forged\n")
    data = json.loads((directory / "manifest.json").read_text())
    for art in data["artifacts"]:
        if art["name"] == "mysql/devstack.sql":
            art["sha256"], art["size"] = h.sha256(b"-- forged\n").hexdigest(), 10
    (directory / "manifest.json").write_text(json.dumps(data, indent=2, sort_keys=True))
    assert ("manifest.json", "manifest tampered") in _statuses(root, backup_id, round_trip["passphrase"])


def test_wrong_passphrase_restores_nothing(round_trip):
    from harness.backup import BackupError, read_artifacts

    findings = verify(round_trip["root"], round_trip["manifest"].id, b"not the passphrase", basic_format_check)
    assert [f.status for f in findings] == ["wrong passphrase"]
    with pytest.raises(BackupError, match="wrong passphrase"):
        read_artifacts(round_trip["root"], round_trip["manifest"].id, b"not the passphrase")


def test_passphrase_file_must_be_private(tmp_path):
    from harness.backup import read_passphrase
    from harness.errors import ConfigError

    path = tmp_path / "pass"
    path.write_text("correct horse battery staple")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="mode 0644"):
        read_passphrase(path)
    path.chmod(0o600)
    assert read_passphrase(path) == b"correct horse battery staple"


def test_no_plaintext_on_disk_when_encrypted(round_trip):
    needles = [b"customers-17", b"value-42", b"teal", b"PGDMP", b"CREATE TABLE"]
    for path in (round_trip["root"] / round_trip["manifest"].id).rglob("*"):
        if path.is_file() and path.name not in ("manifest.json", "manifest.sig"):
            blob = path.read_bytes()
            assert not any(n in blob for n in needles), f"{path.name} holds plaintext"
    unseal = round_trip["root"] / round_trip["manifest"].id / "vault" / "unseal.json"
    assert b'"keys"' not in unseal.read_bytes()  # the unseal keys are encrypted like everything else


# -------------------------------------------------------------------------------------------- incremental


def test_incremental_stores_only_what_changed_and_restores_latest(round_trip, tmp_path):
    fresh = round_trip["fresh"]
    target = StackTarget(fresh)
    data_services = ["postgres", "mysql", "redis", "rabbitmq"]
    root = tmp_path / "chain"
    full = create(target, root, data_services, None)
    with fresh.endpoint("postgres").connect() as conn:
        conn.execute("INSERT INTO canary VALUES ('in-incremental')")
    incremental = create(target, root, data_services, None, parent_id=full.id)
    stored = {a.name for a in incremental.artifacts if a.stored_in == incremental.id}
    assert stored == {"postgres/devstack.dump"}, stored
    assert incremental.type == "incremental" and incremental.parent == full.id
    assert incremental.totals["stored"] == 1 and incremental.totals["artifacts"] == len(full.artifacts)
    assert all(f.status == "ok" for f in verify(root, incremental.id, None, basic_format_check))
    with fresh.endpoint("postgres").connect() as conn:
        conn.execute("INSERT INTO canary VALUES ('after-incremental')")
        conn.execute("DELETE FROM customers WHERE id <= 10")
    restore(target, root, incremental.id, None, ["postgres"], target.adopt_vault)
    with fresh.endpoint("postgres").connect() as conn:
        notes = sorted(r[0] for r in conn.execute("SELECT note FROM canary"))
        customers = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    assert notes == ["canary", "in-incremental"] and customers == 200
    # A broken parent breaks the chain, and verify says where.
    (root / full.id / "mysql" / "devstack.sql").write_bytes(b"-- damaged")
    bad = {f.artifact for f in verify(root, incremental.id, None, basic_format_check) if f.status != "ok"}
    assert any("mysql/devstack.sql" in a for a in bad), bad
