"""Backup -> destroy the stack -> restore into a fresh stack -> the data is the same.

A module fixture starts a stack of its own, seeds deterministic data in every service (each step checked),
writes a canary, takes an encrypted backup, writes more data (which must *not* come back), removes the whole
stack, starts a fresh one (new containers, new Vault, new passwords) and restores into it. The tests check that
every seeded object is there before the backup and after the restore, then compare per-table, per-slot-range,
per-vhost and Vault fingerprints taken at backup time with the restored ones. The forgeries of
:mod:`harness.backup_tamper` are applied to copies of the real backup: each is refused, named, and restores
nothing into the running stack."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
import requests

from harness.backup import BackupError, basic_format_check, verify
from harness.backup_services import MYSQL_OPTIONS, RESTORE_DIR, StackTarget, create, restore
from harness.backup_tamper import CASES, Chain, named
from harness.engine import Stack

pytestmark = [pytest.mark.backup, pytest.mark.destructive, pytest.mark.own_stack, pytest.mark.vault,
              pytest.mark.postgres, pytest.mark.mysql, pytest.mark.redis, pytest.mark.rabbitmq]
SERVICES = ["vault", "postgres", "mysql", "redis", "rabbitmq"]
PG_TABLES = {"customers": 200, "orders": 500, "items": 50}
MY_TABLES = {"accounts": 150, "events": 400}
REDIS_KEYS = 300
RABBIT_QUEUES = ("orders", "invoices")
VAULT_SEED = {"colour": "teal", "n": 42}


def seed(stack: Stack) -> None:
    """Deterministic data in every service; every step checks its result."""
    with stack.endpoint("postgres").connect() as conn:
        for table, rows in PG_TABLES.items():
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, amount numeric)")
            inserted = conn.execute(
                f"INSERT INTO {table} SELECT g, '{table}-' || g, g * 1.25 FROM generate_series(1, {rows}) g").rowcount
            assert inserted == rows, f"postgres: INSERT into {table} wrote {inserted} rows, expected {rows}"
        conn.execute("CREATE TABLE canary (note text)")
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
    cluster = stack.endpoint("redis").client()
    try:
        for i in range(REDIS_KEYS):
            assert cluster.set(f"seed:{i}", f"value-{i}", ex=3600 if i % 3 == 0 else None) is True, f"SET seed:{i}"
        assert cluster.hset("seed:hash", mapping={"a": "1", "b": "2"}) == 2, "HSET seed:hash added fewer than 2 fields"
    finally:
        cluster.close()
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
    vault = stack.endpoint("vault").client()
    written = vault.secrets.kv.v2.create_or_update_secret(path="backup-seed", secret=VAULT_SEED, mount_point="secret")
    assert written["data"]["version"] >= 1, f"vault: writing backup-seed answered {written}"


def missing_seed(stack: Stack) -> list[str]:
    """Every seeded object that is not in ``stack``, as ``<service>.<what>: <seen>`` (empty when all are)."""
    missing = []
    with stack.endpoint("postgres").connect() as conn:
        for table, rows in PG_TABLES.items():
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
                missing.append(f"postgres.{table}: no such table")
                continue
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if count != rows:
                missing.append(f"postgres.{table}: {count} rows, seeded {rows}")
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
    try:
        kv = stack.endpoint("vault").client().secrets.kv.v2.read_secret_version(
            path="backup-seed", mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    except hvac.exceptions.InvalidPath:
        kv = None
    if kv != VAULT_SEED:
        missing.append("vault.kv backup-seed: absent or different")
    return missing


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
        missing_at_backup = missing_seed(source)
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
        missing_in_empty_stack = missing_seed(fresh)  # the control: the check finds the seed absent
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
               "findings": findings, "fresh": fresh, "passphrase": passphrase, "fresh_passwords": fresh_passwords,
               "missing": {"at backup": missing_at_backup, "after restore": missing_seed(fresh),
                           "in an empty stack": missing_in_empty_stack}}
    finally:
        fresh.close()


def test_backup_verifies(round_trip):
    bad = [f for f in round_trip["findings"] if f.status != "ok"]
    assert not bad, bad
    assert {a.service for a in round_trip["manifest"].artifacts} == set(SERVICES)
    assert all(a.encrypted for a in round_trip["manifest"].artifacts)


@pytest.mark.parametrize("part", ["postgres.", "mysql.", "redis.", "rabbitmq.", "vault."])
def test_restored_data_equals_backed_up_data(round_trip, part):
    missing = {when: [m for m in found if m.startswith(part)] for when, found in round_trip["missing"].items()}
    assert missing["in an empty stack"], f"the seed check finds nothing of {part} missing in an empty stack"
    assert missing["at backup"] == [] and missing["after restore"] == [], missing
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
    same = material.password == fresh.endpoint("postgres").password  # a bool: a failure prints no password
    assert same, "the restored Vault holds other PostgreSQL credentials than the live server (KV not written back)"


def test_services_keep_working_with_live_credentials(round_trip):
    fresh = round_trip["fresh"]
    for name, password in round_trip["fresh_passwords"].items():
        same = fresh.endpoint(name).password == password  # a bool: a failure prints no password
        assert same, f"{name}: the fresh stack's endpoint carries another password than the restored one"
    with fresh.endpoint("postgres").connect() as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (200,)
    fresh.endpoint("rabbitmq").connect().close()


# ----------------------------------------------------------------------------------- tampering and keys


def _copy(round_trip, tmp_path) -> tuple[Path, str]:
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
    from harness.backup import read_artifacts

    findings = verify(round_trip["root"], round_trip["manifest"].id, b"not the passphrase", basic_format_check)
    assert [f.status for f in findings] == ["wrong passphrase"]
    with pytest.raises(BackupError, match="wrong passphrase"):
        read_artifacts(round_trip["root"], round_trip["manifest"].id, b"not the passphrase")


# ------------------------------------------------------------------------------ forgeries of the real backup


@pytest.fixture(scope="module")
def real_chain(round_trip, tmp_path_factory) -> Chain:
    """The real encrypted backup plus an encrypted incremental of the running (restored) stack on top of it
    (same passphrase, so the same keys), in a directory of their own."""
    root = tmp_path_factory.mktemp("chain")
    shutil.copytree(round_trip["root"], root, dirs_exist_ok=True)
    full = round_trip["manifest"]
    inc = create(StackTarget(round_trip["fresh"]), root, None, round_trip["passphrase"], parent_id=full.id)
    own = sorted(a.name for a in inc.artifacts if a.stored_in == inc.id)
    assert own, "the incremental stored nothing of its own: no artifact to move between the two"
    forge = next(a.name for a in full.artifacts if a.service == "mysql")
    return Chain(root, full.id, inc.id, forge=forge, moved="vault/raft.snap" if "vault/raft.snap" in own else own[0])


class RecordingTarget(StackTarget):
    """The running stack as a restore target, recording every use: a refused restore must leave it untouched."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        self.calls: list[str] = []

    def endpoint(self, name: str) -> Any:
        self.calls.append(f"endpoint {name}")
        return super().endpoint(name)

    def containers(self, name: str) -> list[Any]:
        self.calls.append(f"containers {name}")
        return super().containers(name)

    def running(self) -> list[str]:
        self.calls.append("running")
        return super().running()


@pytest.fixture
def probe(round_trip):
    """A row of the running stack that a restore of the backup would change back (then read it)."""
    fresh = round_trip["fresh"]
    with fresh.endpoint("postgres").connect() as conn:
        assert conn.execute("UPDATE customers SET name = 'tamper-probe' WHERE id = 1").rowcount == 1

    def read() -> str:
        with fresh.endpoint("postgres").connect() as conn:
            return str(conn.execute("SELECT name FROM customers WHERE id = 1").fetchone()[0])

    yield read
    with fresh.endpoint("postgres").connect() as conn:
        conn.execute("UPDATE customers SET name = 'customers-1' WHERE id = 1")


@pytest.mark.parametrize("case", CASES)
def test_forgery_of_the_real_backup_is_refused(round_trip, real_chain, probe, tmp_path, monkeypatch, capsys, case):
    """Each forgery: verify names it, the CLI exits 1, restore refuses before touching the running stack."""
    from harness.cli import main

    root = tmp_path / "backups"
    shutil.copytree(real_chain.root, root)
    chain = Chain(root, real_chain.target, real_chain.other, real_chain.forge, real_chain.moved)
    CASES[case].tamper(chain)
    passphrase = round_trip["passphrase"]
    findings = [(f.artifact, f.status, f.detail) for f in verify(root, chain.target, passphrase, basic_format_check)
                if f.status != "ok"]
    assert named(findings, CASES[case].expected(chain)), findings
    passfile = tmp_path / "passphrase"
    passfile.write_bytes(passphrase)
    passfile.chmod(0o600)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path))
    assert main(["backup", "verify", chain.target, "--passphrase-file", str(passfile)]) == 1
    assert CASES[case].status in capsys.readouterr().out
    target = RecordingTarget(round_trip["fresh"])
    with pytest.raises(BackupError, match=f"nothing restored.*{CASES[case].status}: {CASES[case].words}"):
        restore(target, root, chain.target, passphrase, None, target.adopt_vault)
    assert target.calls == []
    assert probe() == "tamper-probe"  # the running stack's data is unchanged


def test_genuine_chain_restores_over_the_probe(round_trip, real_chain, probe):
    """The control for the probe: restoring the untampered backup's PostgreSQL does change it back."""
    target = RecordingTarget(round_trip["fresh"])
    restore(target, real_chain.root, real_chain.target, round_trip["passphrase"], ["postgres"], target.adopt_vault)
    assert target.calls and probe() == "customers-1"


def test_no_password_file_left_in_the_mysql_container(round_trip, tmp_path):
    """client.cnf (root's password) exists in the container only while a dump or a restore runs."""
    target = StackTarget(round_trip["fresh"])
    create(target, tmp_path, ["mysql"], None)
    container = target.containers("mysql")[0]
    # The directory the option file was written to exists (the check looks at the right place) and is empty.
    assert container.exec_run(["test", "-d", RESTORE_DIR], user="root").exit_code == 0
    listing = container.exec_run(["ls", "-A", RESTORE_DIR], user="root").output.decode().split()
    assert listing == [], f"left in {RESTORE_DIR}: {listing}"
    assert container.exec_run(["test", "-e", MYSQL_OPTIONS], user="root").exit_code == 1


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
