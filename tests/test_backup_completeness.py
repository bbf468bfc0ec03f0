"""A backup holds every artifact its services declare (issue 21): ``verify`` names each one missing, ``create``
writes no incomplete backup, and a restore never hands a service's code a backup without one (no Docker:
synthetic artifacts, fake targets)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.backup import orchestration as bs
from harness.backup.archive import BackupError, Captured, build_backup, read_artifacts, verify
from stack import registry

GLOBALS = b"--\n-- PostgreSQL database cluster dump\n--\nCREATE ROLE devstack;\n"
UNSEAL = json.dumps({"init": {"keys": ["k1", "k2", "k3"], "root_token": "r", "shares": 3, "threshold": 2},
                     "bootstrap": {"admin_token": "a", "approles": {}, "names": {}, "root_revoked": True}}).encode()
PASS = b"a passphrase of some length"
REDIS_LINE = b'{"exp": -1, "k": "a2V5", "v": "dmFsdWU="}\n'
COMPLETE: dict[str, dict[str, bytes]] = {
    "vault": {"vault/raft.snap": b"\x1f\x8b-snapshot", "vault/unseal.json": UNSEAL},
    "postgres": {"postgres/devstack.dump": b"PGDMP-one", "postgres/globals.sql": GLOBALS},
    "mysql": {"mysql/devstack.sql": b"-- MariaDB dump\nCREATE TABLE accounts (id int);\n"},
    "mongodb": {"mongodb/devstack.archive.gz": b"\x1f\x8b-archive"},
    "redis": {"redis/shard-0-5460.jsonl": REDIS_LINE, "redis/shard-5461-10922.jsonl": b"",
              "redis/shard-10923-16383.jsonl": REDIS_LINE},
    "rabbitmq": {"rabbitmq/definitions.json": b'{"queues": []}'},
}


def _items(services: list[str], leave_out: tuple[str, ...] = ()) -> list[Captured]:
    return [Captured(service, name, data, 0.1) for service in services for name, data in COMPLETE[service].items()
            if name not in leave_out]


def _problems(root: Path, backup_id: str) -> list[tuple[str, str, str]]:
    from harness.backup.archive import basic_format_check

    return [(f.artifact, f.status, f.detail) for f in verify(root, backup_id, None, basic_format_check)
            if f.status != "ok"]


def test_each_backed_up_service_declares_the_artifacts_its_backup_holds() -> None:
    from harness.backup.archive import required_artifacts

    declared = {name: required_artifacts(name) for name in registry.with_capability("backup")}
    assert declared == {"vault": ("vault/raft.snap", "vault/unseal.json"),
                        "postgres": ("postgres/devstack.dump", "postgres/globals.sql"),
                        "mysql": ("mysql/devstack.sql",), "mongodb": ("mongodb/devstack.archive.gz",),
                        "redis": ("redis/shard-*.jsonl",), "rabbitmq": ("rabbitmq/definitions.json",)}


def test_a_complete_backup_of_every_service_verifies(tmp_path: Path) -> None:
    """The control: the synthetic artifacts above are complete and well-formed, so the refusals below are not a
    blanket failure."""
    services = list(COMPLETE)
    manifest = build_backup(tmp_path, _items(services), services=services, versions={}, passphrase=None)
    assert _problems(tmp_path, manifest.id) == []


@pytest.mark.parametrize(("service", "left_out"), [(s, n) for s, files in COMPLETE.items() for n in files
                                                    if s != "redis"])
def test_verify_names_a_missing_artifact(tmp_path: Path, service: str, left_out: str) -> None:
    manifest = build_backup(tmp_path, _items([service], (left_out,)), services=[service], versions={},
                            passphrase=None)
    assert _problems(tmp_path, manifest.id) == [("manifest.json", "incomplete",
                                                 f"{service}: missing artifact {left_out}")]


def test_a_service_listed_without_any_artifact_is_incomplete(tmp_path: Path) -> None:
    manifest = build_backup(tmp_path, _items(["mysql"]), services=["mysql", "rabbitmq"], versions={},
                            passphrase=None)
    assert _problems(tmp_path, manifest.id) == [("manifest.json", "incomplete",
                                                 "rabbitmq: missing artifact rabbitmq/definitions.json")]


def test_redis_shards_must_cover_every_slot(tmp_path: Path) -> None:
    manifest = build_backup(tmp_path, _items(["redis"], ("redis/shard-5461-10922.jsonl",)), services=["redis"],
                            versions={}, passphrase=None)
    assert _problems(tmp_path, manifest.id) == [("manifest.json", "incomplete",
                                                 "redis: slots 5461-10922 are in no shard artifact")]


def test_redis_without_any_shard_is_incomplete(tmp_path: Path) -> None:
    manifest = build_backup(tmp_path, _items(["mysql"]), services=["mysql", "redis"], versions={}, passphrase=None)
    assert _problems(tmp_path, manifest.id) == [
        ("manifest.json", "incomplete", "redis: missing artifact redis/shard-*.jsonl"),
        ("manifest.json", "incomplete", "redis: slots 0-16383 are in no shard artifact")]


def test_an_unregistered_service_in_a_backup_is_named(tmp_path: Path) -> None:
    manifest = build_backup(tmp_path, [*_items(["mysql"]), Captured("oracle", "oracle/db.dmp", b"x", 0.1)],
                            services=["mysql", "oracle"], versions={}, passphrase=None)
    assert _problems(tmp_path, manifest.id) == [
        ("manifest.json", "incomplete", "oracle: not a registered service (registered: vault, postgres, mysql, "
                                        "mongodb, redis, rabbitmq): its artifacts can be neither checked nor restored")]


def test_restore_of_an_incomplete_backup_is_refused_before_the_target(tmp_path: Path) -> None:
    manifest = build_backup(tmp_path, _items(["postgres"], ("postgres/devstack.dump",)), services=["postgres"],
                            versions={}, passphrase=None)
    with pytest.raises(BackupError) as refused:
        read_artifacts(tmp_path, manifest.id, None)
    assert str(refused.value) == (f"backup {manifest.id} does not verify, nothing restored: manifest.json: incomplete: "
                                  "postgres: missing artifact postgres/devstack.dump")


class Target:
    """A running stack as a restore target; records what a restore looks up. Its container is a bare object: a
    service's restore code that got this far would fail on it, or on the artifact it lacks."""

    def __init__(self, running: list[str]) -> None:
        self._running = running
        self.state_dir = Path("/nonexistent")
        self.calls: list[str] = []

    def endpoint(self, name: str) -> Any:
        self.calls.append(f"endpoint {name}")
        return SimpleNamespace(dbname="devstack", database="devstack", user="devstack")

    def containers(self, name: str) -> list[Any]:
        self.calls.append(f"containers {name}")
        return [object()]

    def running(self) -> list[str]:
        return list(self._running)


def test_restore_never_hands_a_service_a_backup_without_its_artifact() -> None:
    """Artifacts given straight to ``restore_verified`` (as a caller holding verified bytes would): PostgreSQL's
    restore code is never reached without its dump."""
    held = {name: (SimpleNamespace(service="postgres", name=name), data)
            for name, data in COMPLETE["postgres"].items() if name != "postgres/devstack.dump"}
    target = Target(["postgres"])
    with pytest.raises(BackupError) as refused:
        bs.restore_verified(target, held, None)
    assert str(refused.value) == ("backup incomplete, nothing restored: postgres: missing artifact "
                                  "postgres/devstack.dump")
    assert target.calls == []


def test_restore_of_a_service_the_backup_does_not_hold_is_refused(tmp_path: Path) -> None:
    manifest = build_backup(tmp_path, _items(["mysql"]), services=["mysql"], versions={}, passphrase=PASS)
    target = Target(["postgres", "mysql"])
    with pytest.raises(BackupError) as refused:
        bs.restore(target, tmp_path, manifest.id, PASS, ["postgres"])
    assert str(refused.value) == "the backup holds no postgres (it holds mysql); nothing restored"
    assert target.calls == []


def test_create_writes_no_incomplete_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture that returns fewer artifacts than the service declares (a bug, or a tool that printed nothing)
    is refused before anything is written."""
    monkeypatch.setattr(bs, "capture_service", lambda t, name: _items([name], ("postgres/globals.sql",)))
    monkeypatch.setattr(bs, "_version", lambda t, name: "15")
    with pytest.raises(BackupError) as refused:
        bs.create(Target(["postgres"]), tmp_path / "backups", ["postgres"], None)
    assert str(refused.value) == "backup incomplete, nothing written: postgres: missing artifact postgres/globals.sql"
    assert not (tmp_path / "backups").exists()


def test_a_redis_artifact_that_is_no_shard_is_named(tmp_path: Path) -> None:
    items = [*_items(["redis"]), Captured("redis", "redis/notes.jsonl", b"", 0.1)]
    manifest = build_backup(tmp_path, items, services=["redis"], versions={}, passphrase=None)
    assert _problems(tmp_path, manifest.id) == [
        ("manifest.json", "incomplete", "redis: redis/notes.jsonl is not a shard artifact "
                                        "(redis/shard-<lo>-<hi>[_<lo>-<hi>...].jsonl)")]


def test_an_artifact_filed_under_another_service_is_refused(tmp_path: Path) -> None:
    """Completeness is counted by artifact path; a manifest entry whose service differs from its path's (which
    would hand one service's restore another's file) is a forgery."""
    from harness.backup.tamper import plain_sig, read_manifest, write_manifest

    manifest = build_backup(tmp_path, _items(["postgres", "mysql"]), services=["postgres", "mysql"], versions={},
                            passphrase=None)
    data = read_manifest(tmp_path, manifest.id)
    for art in data["artifacts"]:
        if art["name"] == "mysql/devstack.sql":
            art["service"] = "postgres"
    write_manifest(tmp_path, manifest.id, data)
    plain_sig(tmp_path, manifest.id)
    assert _problems(tmp_path, manifest.id) == [
        ("manifest.json", "manifest tampered",
         "artifact under another service: mysql/devstack.sql is marked as service 'postgres'")]
