"""Backup -> destroy the stack -> restore into a fresh stack -> the data is the same, for the whole stack.

A module fixture starts a stack of its own with every backed-up service whose image always exists, seeds
deterministic data in each (each step checked; the seeds are in ``conftest.py``), writes a canary, takes an
encrypted backup, writes more data (which must *not* come back), removes the whole stack, starts a fresh one (new
containers, new Vault, new passwords) and restores into it. The tests check that every seeded object is there
before the backup and after the restore, then compare per-table, per-slot-range, per-vhost and Vault fingerprints
taken at backup time with the restored ones. The forgeries of :mod:`harness.backup.tamper` are applied to copies
of the real backup: each is refused, named, and restores nothing into the running stack.

Selection: these tests carry no service marker (``whole_stack`` instead), so ``-m postgres`` does not pull in the
whole stack; each service's own round trip is in ``test_backup_per_service.py``. Run this one with
``-m whole_stack`` (or ``-m backup``, which also runs the per-service round trips)."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.backup.archive import BackupError, basic_format_check, verify
from harness.backup.orchestration import create, restore
from harness.backup.tamper import CASES, Chain, named
from harness.stacks.engine import Stack
from stack import registry
from stack.backup_ops import RESTORE_DIR
from stack.mysql import MYSQL_OPTIONS

pytestmark = [pytest.mark.backup, pytest.mark.whole_stack, pytest.mark.destructive, pytest.mark.own_stack]
#: Vault and every backed-up service whose image always exists (MongoDB's may not: its round trip is per service).
SERVICES = [s for s in registry.with_capability("backup") if not registry.get(s).image_optional]


@pytest.fixture(scope="module")
def round_trip(harness_settings, tmp_path_factory, harness_benchmarks, backup_round_trip):
    yield from backup_round_trip(harness_settings, SERVICES, tmp_path_factory.mktemp("backups"),
                                 secrets.token_hex(16).encode(), harness_benchmarks, "backup")


def test_backup_verifies(round_trip):
    bad = [f for f in round_trip["findings"] if f.status != "ok"]
    assert not bad, bad
    assert {a.service for a in round_trip["manifest"].artifacts} == set(SERVICES)
    assert all(a.encrypted for a in round_trip["manifest"].artifacts)


@pytest.mark.parametrize("part", [f"{name}." for name in SERVICES])
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
    from harness.backup.archive import read_artifacts

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
    inc = create(round_trip["fresh"], root, None, round_trip["passphrase"], parent_id=full.id)
    own = sorted(a.name for a in inc.artifacts if a.stored_in == inc.id)
    assert own, "the incremental stored nothing of its own: no artifact to move between the two"
    forge = next(a.name for a in full.artifacts if a.service == "mysql")
    return Chain(root, full.id, inc.id, forge=forge, moved="vault/raft.snap" if "vault/raft.snap" in own else own[0])


class RecordingTarget:
    """The running stack as a restore target, recording every use: a refused restore must leave it untouched."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:  # the rest of the RunningStack protocol, recorded too
        self.calls.append(name)
        return getattr(self.stack, name)

    def endpoint(self, name: str) -> Any:
        self.calls.append(f"endpoint {name}")
        return self.stack.endpoint(name)

    def containers(self, name: str) -> list[Any]:
        self.calls.append(f"containers {name}")
        return self.stack.containers(name)

    def running(self) -> list[str]:
        self.calls.append("running")
        return self.stack.running()


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
    artifact, status, words = CASES[case].expected(chain)
    error = " ".join(capsys.readouterr().err.split())  # one error line naming every finding (rich wraps it)
    assert f"error: backup {chain.target} does not verify: " in error and f"{artifact}: {status}: {words}" in error, \
        error
    target = RecordingTarget(round_trip["fresh"])
    with pytest.raises(BackupError, match=f"nothing restored.*{CASES[case].status}: {CASES[case].words}"):
        restore(target, root, chain.target, passphrase, None)
    assert target.calls == []
    assert probe() == "tamper-probe"  # the running stack's data is unchanged


def test_genuine_chain_restores_over_the_probe(round_trip, real_chain, probe):
    """The control for the probe: restoring the untampered backup's PostgreSQL does change it back."""
    target = RecordingTarget(round_trip["fresh"])
    restore(target, real_chain.root, real_chain.target, round_trip["passphrase"], ["postgres"])
    assert target.calls and probe() == "customers-1"


def test_no_password_file_left_in_the_mysql_container(round_trip, tmp_path):
    """client.cnf (root's password) exists in the container only while a dump or a restore runs."""
    target = round_trip["fresh"]
    create(target, tmp_path, ["mysql"], None)
    container = target.containers("mysql")[0]
    # The directory the option file was written to exists (the check looks at the right place) and is empty.
    assert container.exec_run(["test", "-d", RESTORE_DIR], user="root").exit_code == 0
    listing = container.exec_run(["ls", "-A", RESTORE_DIR], user="root").output.decode().split()
    assert listing == [], f"left in {RESTORE_DIR}: {listing}"
    assert container.exec_run(["test", "-e", MYSQL_OPTIONS], user="root").exit_code == 1


def test_passphrase_file_must_be_private(tmp_path):
    from harness.backup.archive import read_passphrase
    from stack.errors import ConfigError

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
    target = fresh
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
    restore(target, root, incremental.id, None, ["postgres"], allow_unauthenticated=True)  # unencrypted chain
    with fresh.endpoint("postgres").connect() as conn:
        notes = sorted(r[0] for r in conn.execute("SELECT note FROM canary"))
        customers = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    assert notes == ["canary", "in-incremental"] and customers == 200
    # A broken parent breaks the chain, and verify says where.
    (root / full.id / "mysql" / "devstack.sql").write_bytes(b"-- damaged")
    bad = {f.artifact for f in verify(root, incremental.id, None, basic_format_check) if f.status != "ok"}
    assert any("mysql/devstack.sql" in a for a in bad), bad
