"""Backup format, encryption, manifest signature and incremental chains, with synthetic artifacts."""

from __future__ import annotations

import json

import pytest

from harness.backup import (
    BackupError,
    Captured,
    basic_format_check,
    build_backup,
    new_backup_id,
    read_artifacts,
    verify,
)

PASS = b"a passphrase of some length"


def _items(pg: bytes = b"PGDMP-one") -> list[Captured]:
    return [Captured("postgres", "postgres/devstack.dump", pg, 0.1),
            Captured("postgres", "postgres/globals.sql", b"--\n-- PostgreSQL database cluster dump\n--\n", 0.1),
            Captured("rabbitmq", "rabbitmq/definitions.json", b'{"queues": []}', 0.1)]


def test_ids_sort_by_time_and_are_unique():
    ids = [new_backup_id() for _ in range(200)]
    assert len(set(ids)) == 200 and ids == sorted(ids)


@pytest.mark.parametrize("passphrase", [None, PASS], ids=["plain", "encrypted"])
def test_round_trip(tmp_path, passphrase):
    manifest = build_backup(tmp_path, _items(), services=["postgres", "rabbitmq"], versions={}, passphrase=passphrase)
    assert all(f.status == "ok" for f in verify(tmp_path, manifest.id, passphrase, basic_format_check))
    files = read_artifacts(tmp_path, manifest.id, passphrase, allow_unauthenticated=passphrase is None)
    assert files["postgres/devstack.dump"][1] == b"PGDMP-one"
    stored = (tmp_path / manifest.id / "postgres" / "devstack.dump").read_bytes()
    assert (stored == b"PGDMP-one") is (passphrase is None)


def test_encrypted_needs_the_right_passphrase(tmp_path):
    manifest = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=PASS)
    assert [f.status for f in verify(tmp_path, manifest.id, b"wrong passphrase")] == ["wrong passphrase"]
    with pytest.raises(BackupError, match="wrong passphrase"):
        read_artifacts(tmp_path, manifest.id, b"wrong passphrase")


def test_plain_manifest_edit_detected(tmp_path):
    manifest = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=None)
    path = tmp_path / manifest.id / "manifest.json"
    data = json.loads(path.read_text())
    data["type"] = "incremental"
    path.write_text(json.dumps(data))
    assert [f.status for f in verify(tmp_path, manifest.id)] == ["manifest tampered"]


def test_format_check_catches_a_non_dump(tmp_path):
    manifest = build_backup(tmp_path, _items(pg=b"not a dump"), services=["postgres"], versions={},
                            passphrase=None)
    bad = [f for f in verify(tmp_path, manifest.id, None, basic_format_check) if f.status != "ok"]
    assert [(f.artifact, f.status) for f in bad] == [("postgres/devstack.dump", "bad format")]


def test_incremental_references_unchanged_content(tmp_path):
    full = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=PASS)
    same = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=PASS, parent_id=full.id)
    assert same.totals["stored"] == 0 and all(a.stored_in == full.id for a in same.artifacts)
    changed = build_backup(tmp_path, _items(pg=b"PGDMP-two"), services=["postgres"], versions={}, passphrase=PASS,
                           parent_id=same.id)
    assert {a.name for a in changed.artifacts if a.stored_in == changed.id} == {"postgres/devstack.dump"}
    assert read_artifacts(tmp_path, changed.id, PASS)["rabbitmq/definitions.json"][1] == b'{"queues": []}'
    (tmp_path / full.id / "rabbitmq" / "definitions.json").write_bytes(b"x")
    assert any(f.status == "checksum mismatch" for f in verify(tmp_path, changed.id, PASS))


def test_incremental_keeps_the_parents_encryption(tmp_path):
    full = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=None)
    from stack.errors import ConfigError

    with pytest.raises(ConfigError, match="same encryption"):
        build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=PASS, parent_id=full.id)
