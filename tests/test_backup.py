"""Backup format, encryption, manifest signature and incremental chains, with synthetic artifacts."""

from __future__ import annotations

import json

import pytest

from harness.backup.archive import (
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


MALFORMED = {
    "field missing": (lambda d: d.pop("created"), "field 'created' is missing"),
    "unknown field": (lambda d: d.update(hook="sh"), "unknown field 'hook'"),
    "id a path": (lambda d: d.update(id="../x"), "field 'id' is '../x', not a backup id"),
    "type": (lambda d: d.update(type="differential"), "field 'type' is 'differential', not full or incremental"),
    "parent": (lambda d: d.update(parent=["x"]), "field 'parent' is list, not a backup id or null"),
    "services": (lambda d: d.update(services="postgres"), "field 'services' is str, not a list of service names"),
    "service name": (lambda d: d.update(services=["postgres", 1]),
                     "field 'services' is a list with int, not a list of service names"),
    "versions": (lambda d: d.update(versions=None), "field 'versions' is null, not an object"),
    "encryption": (lambda d: d.update(encryption="aes"), "field 'encryption' is str, not an object or null"),
    "artifacts": (lambda d: d.update(artifacts={}), "field 'artifacts' is dict, not a list"),
    "artifact": (lambda d: d["artifacts"].append(5), "artifacts[3] is int, not an object"),
    "artifact field missing": (lambda d: d["artifacts"][0].pop("fingerprint"),
                               "artifacts[0] field 'fingerprint' is missing"),
    "artifact unknown field": (lambda d: d["artifacts"][0].update(x=1), "artifacts[0] unknown field 'x'"),
    "stored_in": (lambda d: d["artifacts"][0].update(stored_in=None), "artifacts[0] field 'stored_in' is null, not "
                                                                      "a backup id"),
    "size negative": (lambda d: d["artifacts"][0].update(size=-1), "artifacts[0] field 'size' is -1, not an integer "
                                                                   ">= 0"),
    "size bool": (lambda d: d["artifacts"][0].update(size=True), "artifacts[0] field 'size' is bool, not an integer "
                                                                 ">= 0"),
    "sha256": (lambda d: d["artifacts"][0].update(sha256=None), "artifacts[0] field 'sha256' is null, not a string"),
    "encrypted": (lambda d: d["artifacts"][0].update(encrypted="no"), "artifacts[0] field 'encrypted' is str, not "
                                                                      "true or false"),
    "duration": (lambda d: d["artifacts"][0].update(duration_s="1s"), "artifacts[0] field 'duration_s' is str, not a "
                                                                      "number"),
    "meta": (lambda d: d["artifacts"][0].update(meta=[]), "artifacts[0] field 'meta' is list, not an object"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_manifest_is_named_not_a_crash(tmp_path, case):
    """Everything in a manifest is checked for what the harness writes before any of it is used: an unencrypted
    backup's manifest is anyone's to write (paths, tables and arithmetic would otherwise meet what it says)."""
    from harness.backup.archive import Manifest

    manifest = build_backup(tmp_path, _items(), services=["postgres", "rabbitmq"], versions={}, passphrase=None)
    data = json.loads((tmp_path / manifest.id / "manifest.json").read_bytes())
    assert Manifest.from_json(json.dumps(data).encode()) == manifest  # the control: as written, it reads back
    change, problem = MALFORMED[case]
    change(data)
    with pytest.raises(BackupError) as refused:
        Manifest.from_json(json.dumps(data).encode())
    assert str(refused.value) == problem


_UNSEAL = {"init": {"keys": ["k1", "k2"], "root_token": "r", "shares": 2, "threshold": 2},
           "bootstrap": {"admin_token": "a", "approles": {}, "names": {}, "root_revoked": True}}


def _unseal(part: str, **changes: object) -> bytes:
    bundle = json.loads(json.dumps(_UNSEAL))
    bundle[part].update(changes)
    return json.dumps(bundle).encode()


RECORD = "line 1: not a key record (an object with k and v in base64 and exp an integer)"
SHARD = "redis/shard-0-16383.jsonl"
FORMATS = {
    # name -> (artifact, content, the check's answer): what each service's restore code would otherwise meet
    "redis ok": (SHARD, b'{"k": "a2V5", "v": "dg==", "exp": -1}\n', None),
    "redis empty shard": (SHARD, b"", None),
    "redis not json": (SHARD, b"{k\n", RECORD),
    "redis not base64": (SHARD, b'{"k": "a2V5", "v": "***", "exp": -1}\n', RECORD),
    "redis exp bool": (SHARD, b'{"k": "a2V5", "v": "dg==", "exp": true}\n', RECORD),
    "redis blank line": (SHARD, b'{"k": "a2V5", "v": "dg==", "exp": 1}\n\n{}', RECORD.replace("line 1", "line 2")),
    "rabbitmq ok": ("rabbitmq/definitions.json", b'{"users": [{"name": "x"}]}', None),
    "rabbitmq user not an object": ("rabbitmq/definitions.json", b'{"users": ["x"]}',
                                    "'users' is not a list of objects"),
    "vault ok": ("vault/unseal.json", json.dumps(_UNSEAL).encode(), None),
    "vault snapshot not gzip": ("vault/raft.snap", b"raft", "not a gzip raft snapshot"),
    "vault keys not json": ("vault/unseal.json", b"{", "not valid JSON: Expecting property name enclosed in double "
                                                      "quotes: line 1 column 2 (char 1)"),
    "vault no keys": ("vault/unseal.json", _unseal("init", keys=[]), "init.keys is not a list of unseal keys"),
    "vault threshold 0": ("vault/unseal.json", _unseal("init", threshold=0),
                          "init.threshold is not a number from 1 to the number of keys"),
    "vault no root token": ("vault/unseal.json", _unseal("init", root_token=None),
                            "init.root_token or init.shares is missing"),
    "vault admin token": ("vault/unseal.json", _unseal("bootstrap", admin_token=7),
                          "bootstrap.admin_token is not a string"),
}


@pytest.mark.parametrize("case", FORMATS)
def test_format_checks_name_what_a_restore_could_not_read(case):
    name, data, answer = FORMATS[case]
    assert basic_format_check(name, data) == answer
