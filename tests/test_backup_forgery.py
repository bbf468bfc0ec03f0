"""Backup forgery (issue 12 §1), on backups written to a temp dir with synthetic artifacts (no Docker).

Each tamper case of :mod:`harness.backup.tamper` is applied to the full backup of a two-backup encrypted chain
(full + incremental, one passphrase). Every case must be refused by ``verify`` with the problem named, by the
CLI's ``backup verify`` with exit 1, and by ``restore`` -- library and CLI -- before any service of the target
is touched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.backup import orchestration
from harness.backup.archive import (
    NOT_AUTHENTICATED,
    BackupError,
    Captured,
    Keys,
    NotAuthenticated,
    build_backup,
    read_artifacts,
    sign_manifest,
    verify,
)
from harness.backup.tamper import (
    CASES,
    FORGED_SQL,
    Chain,
    artifact_moved_hmac_kept,
    named,
    plain_sig,
    read_manifest,
    swap_artifact,
    write_manifest,
)
from harness.cli import main
from stack.errors import ConfigError

PASS = b"the owner's passphrase, 0600"


def _items(pg: bytes = b"PGDMP-one") -> list[Captured]:
    return [Captured("postgres", "postgres/devstack.dump", pg, 0.1),
            Captured("postgres", "postgres/globals.sql", b"--\n-- PostgreSQL database cluster dump\n--\n", 0.1),
            Captured("mysql", "mysql/devstack.sql", b"-- MariaDB dump\nCREATE TABLE accounts (id int);\n", 0.1),
            Captured("rabbitmq", "rabbitmq/definitions.json", b'{"queues": []}', 0.1)]


@dataclass
class Setup:
    chain: Chain
    passfile: Path

    @property
    def root(self) -> Path:
        return self.chain.root

    @property
    def full(self) -> str:
        return self.chain.target

    @property
    def inc(self) -> str:
        return self.chain.other


@pytest.fixture(scope="module")
def genuine_chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A full encrypted backup (the one tampered with) and an incremental on it that stores its own dump, written
    once for the module: (backups root, full id, incremental id). Each test tampers with a copy of its own (see
    ``setup``); writing the chain anew for every test derived two new scrypt keys each time."""
    root = tmp_path_factory.mktemp("genuine") / "backups"
    services = ["postgres", "mysql", "rabbitmq"]
    full = build_backup(root, _items(), services=services, versions={}, passphrase=PASS)
    inc = build_backup(root, _items(pg=b"PGDMP-two"), services=services, versions={}, passphrase=PASS,
                       parent_id=full.id)
    assert {a.name for a in inc.artifacts if a.stored_in == inc.id} == {"postgres/devstack.dump"}
    return root, full.id, inc.id


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, genuine_chain: tuple[Path, str, str]) -> Setup:
    """The genuine chain, copied (files and modes) into this test's state directory, and its passphrase file."""
    state = tmp_path / "state"
    monkeypatch.setenv("HARNESS_STATE_DIR", str(state))
    root = state / "backups"
    genuine, full, inc = genuine_chain
    shutil.copytree(genuine, root)
    passfile = tmp_path / "passphrase"
    passfile.write_bytes(PASS)
    passfile.chmod(0o600)
    return Setup(Chain(root, full, inc, forge="mysql/devstack.sql", moved="postgres/devstack.dump"), passfile)


def _problems(root: Path, backup_id: str, passphrase: bytes | None = PASS) -> list[tuple[str, str, str]]:
    return [(f.artifact, f.status, f.detail) for f in verify(root, backup_id, passphrase) if f.status != "ok"]


def test_genuine_chain_verifies_and_restores(setup: Setup) -> None:
    """The control: without tampering everything is ok, so the refusals below are not a blanket failure."""
    for backup_id in (setup.full, setup.inc):
        assert _problems(setup.root, backup_id) == []
        assert main(["backup", "verify", backup_id, "--passphrase-file", str(setup.passfile)]) == 0
    files = read_artifacts(setup.root, setup.inc, PASS)
    assert files["postgres/devstack.dump"][1] == b"PGDMP-two"
    assert files["mysql/devstack.sql"][1].startswith(b"-- MariaDB dump")


DOWNGRADE = ("manifest.json", "manifest tampered", "algorithm downgrade: manifest.sig says 'SHA256', but an "
             "encrypted backup must carry HMAC-SHA256 over its manifest")
MISMATCH = ("manifest.json", "manifest tampered", "signature mismatch: manifest.sig does not match this manifest (the "
            "manifest was edited, or the signature comes from another backup)")
UNENCRYPTED = ("manifest.json", "manifest tampered", "unencrypted artifact: mysql/devstack.sql is marked unencrypted "
               "inside an encrypted backup")


def _moved_checksum(c: Chain) -> tuple[str, str, str]:
    stored = (c.root / c.target / c.moved).read_bytes()
    (listed,) = [a for a in read_manifest(c.root, c.target)["artifacts"] if a["name"] == c.moved]
    return (c.moved, "checksum mismatch", f"stored bytes differ from the manifest: {len(stored)} bytes, sha256 "
            f"{hashlib.sha256(stored).hexdigest()[:12]}…; the manifest says {listed['size']} bytes, "
            f"{listed['sha256'][:12]}… (replaced, moved from another backup, or corrupted)")


#: Every finding of each forgery, met with the passphrase, in verify's order: exactly these, nothing else.
EXACT: dict[str, Callable[[Chain], list[tuple[str, str, str]]]] = {
    "alg-downgrade": lambda c: [DOWNGRADE],
    "encrypted-flag-flip": lambda c: [DOWNGRADE, UNENCRYPTED],
    "encrypted-flag-flip-hmac-kept": lambda c: [MISMATCH, UNENCRYPTED],
    "encryption-block-removed": lambda c: [(
        "manifest.json", "manifest tampered", "encryption block missing: a passphrase was given but the manifest has "
        "no encryption block (it was removed, or this backup was made without --encrypt: verify that one without "
        "--passphrase-file)")],
    "sig-deleted": lambda c: [("manifest.json", "manifest tampered", "signature missing: manifest.sig was deleted")],
    "sig-from-another-backup": lambda c: [MISMATCH],
    "manifest-from-another-backup": lambda c: [MISMATCH, (
        "manifest.json", "manifest tampered", f"wrong backup id: the manifest names backup '{c.other}' but lies in "
        f"{c.target} (copied from another backup)")],
    "artifact-moved": lambda c: [DOWNGRADE],
    "artifact-moved-hmac-kept": lambda c: [MISMATCH],
    "artifact-moved-manifest-untouched": lambda c: [_moved_checksum(c)],
}


def _line(findings: list[tuple[str, str, str]]) -> str:
    return "; ".join(f"{a}: {s}: {d}" for a, s, d in findings)


def test_every_forgery_has_its_exact_findings() -> None:
    assert set(EXACT) == set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_forgery_detected_and_named(setup: Setup, case: str) -> None:
    CASES[case].tamper(setup.chain)
    problems = _problems(setup.root, setup.full)
    assert named(problems, CASES[case].expected(setup.chain)), problems  # what the backup suite checks, too
    assert problems == EXACT[case](setup.chain)
    # The incremental builds on the tampered backup: its chain fails too, with the parent named.
    child = _problems(setup.root, setup.inc)
    assert any(a.startswith(f"{setup.full}/") for a, _, _ in child), child


@pytest.mark.parametrize("case", CASES)
def test_cli_verify_exits_1_naming_the_problem(setup: Setup, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    CASES[case].tamper(setup.chain)
    assert main(["backup", "verify", setup.full, "--passphrase-file", str(setup.passfile)]) == 1
    shown = capsys.readouterr()
    assert " ".join(shown.err.split()) == (f"error: backup {setup.full} does not verify: "
                                           f"{_line(EXACT[case](setup.chain))}")
    assert "verdict:" not in shown.out


class SpyTarget:
    """A restore target that records every use; a refused restore must leave it untouched."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.state_dir = Path("/nonexistent")

    def endpoint(self, name: str) -> Any:
        self.calls.append(f"endpoint {name}")
        raise AssertionError("a refused restore looked up an endpoint")

    def containers(self, name: str) -> list[Any]:
        self.calls.append(f"containers {name}")
        return []

    def running(self) -> list[str]:
        self.calls.append("running")
        return ["vault", "postgres", "mysql", "rabbitmq"]

    def adopt_vault(self, init: dict[str, Any], bootstrap: dict[str, Any]) -> None:
        self.calls.append("adopt_vault")


@pytest.fixture
def spy_restores(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every per-service restore function replaced by one that records its call."""
    called: list[str] = []
    monkeypatch.setattr(orchestration, "restore_service", lambda t, name, files: called.append(name))
    return called


def test_spy_sees_a_genuine_restore(setup: Setup, spy_restores: list[str]) -> None:
    """The spies work: an untampered backup does reach the restore functions."""
    target = SpyTarget()
    orchestration.restore(target, setup.root, setup.full, PASS, None)
    assert spy_restores == ["postgres", "mysql", "rabbitmq"]


@pytest.mark.parametrize("case", CASES)
def test_restore_refuses_before_touching_the_target(setup: Setup, case: str, spy_restores: list[str]) -> None:
    CASES[case].tamper(setup.chain)
    target = SpyTarget()
    with pytest.raises(BackupError) as refused:
        orchestration.restore(target, setup.root, setup.full, PASS, None)
    assert str(refused.value) == (f"backup {setup.full} does not verify, nothing restored: "
                                  f"{_line(EXACT[case](setup.chain))}")
    assert target.calls == [] and spy_restores == []


@pytest.mark.parametrize("fresh", [False, True], ids=["up-stack", "fresh"])
@pytest.mark.parametrize("case", CASES)
def test_cli_restore_refuses_before_any_stack(setup: Setup, case: str, fresh: bool, spy_restores: list[str],
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli
    from harness.stacks import engine

    CASES[case].tamper(setup.chain)
    used: list[str] = []
    target = SpyTarget()
    monkeypatch.setattr(cli, "_kept_stack", lambda settings: used.append("up stack") or target)

    class NoStack:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            used.append("fresh stack")
            raise AssertionError("a refused restore started a stack")

    monkeypatch.setattr(engine, "Stack", NoStack)
    argv = ["backup", "restore", setup.full, "--yes", "--passphrase-file", str(setup.passfile)]
    assert main(argv + (["--fresh"] if fresh else [])) == 1
    assert " ".join(capsys.readouterr().err.split()) == (f"error: backup {setup.full} does not verify, nothing "
                                                         f"restored: {_line(EXACT[case](setup.chain))}")
    assert used == [] and target.calls == [] and spy_restores == []


# ------------------------------------------------------------------------------- defences behind the HMAC


def _resign_genuinely(root: Path, backup_id: str) -> None:
    """Sign a modified manifest with the real key: what only the passphrase holder (or a harness bug) can do.
    Used to prove the checks that stand behind the HMAC."""
    data = read_manifest(root, backup_id)
    keys = Keys.derive(PASS, bytes.fromhex(data["encryption"]["salt"]))
    raw = (root / backup_id / "manifest.json").read_bytes()
    (root / backup_id / "manifest.sig").write_text(json.dumps(sign_manifest(backup_id, raw, keys)))


def test_moved_ciphertext_does_not_decrypt_even_under_a_valid_hmac(setup: Setup) -> None:
    """The AEAD associated data binds backup id + path: the incremental's dump (same keys, same path) put in
    the full backup fails decryption although checksum and HMAC are right."""
    artifact_moved_hmac_kept(setup.chain)
    _resign_genuinely(setup.root, setup.full)
    problems = _problems(setup.root, setup.full)
    assert [(a, s) for a, s, _ in problems] == [("postgres/devstack.dump", "checksum mismatch")], problems
    assert "decryption failed" in problems[0][2] and "moved here from another backup" in problems[0][2]


def test_artifact_outside_the_chain_is_refused(setup: Setup) -> None:
    other = build_backup(setup.root, _items(pg=b"PGDMP-other"), services=["postgres"], versions={}, passphrase=PASS)
    stored = next(a for a in other.artifacts if a.name == "postgres/devstack.dump")
    data = read_manifest(setup.root, setup.inc)
    for art in data["artifacts"]:
        if art["name"] == stored.name:
            art.update(stored_in=other.id, sha256=stored.sha256, size=stored.size)
    write_manifest(setup.root, setup.inc, data)
    (setup.root / setup.inc / stored.name).unlink()
    _resign_genuinely(setup.root, setup.inc)
    problems = _problems(setup.root, setup.inc)
    assert [(a, s) for a, s, _ in problems] == [(f"{stored.name} (in {other.id})", "manifest tampered")]
    assert problems[0][2].startswith("artifact outside the chain")


@pytest.mark.parametrize("case", ["alg-downgrade", "encrypted-flag-flip", "artifact-moved"])
def test_no_incremental_on_a_forged_parent(setup: Setup, case: str) -> None:
    """An incremental re-signs its parents' checksums under the HMAC: building on a forged parent would
    launder the forgery, so the parent chain must verify first."""
    CASES[case].tamper(setup.chain)
    with pytest.raises(BackupError, match=r"does not verify, so no incremental is built on it.*manifest tampered"):
        build_backup(setup.root, _items(), services=["postgres"], versions={}, passphrase=PASS, parent_id=setup.full)
    assert sorted(p.name for p in setup.root.iterdir()) == sorted([setup.full, setup.inc])


def test_unencrypted_backup_says_it_is_not_authenticated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path))
    root = tmp_path / "backups"
    plain = build_backup(root, _items(), services=["postgres"], versions={}, passphrase=None)
    findings = verify(root, plain.id)
    assert findings[0].detail == NOT_AUTHENTICATED and all(f.status == "ok" for f in findings)
    assert main(["backup", "verify", plain.id]) == 3  # not authenticated (tests/test_backup_cli.py: the verdicts)
    shown = " ".join(capsys.readouterr().out.split())
    assert "NOT AUTHENTICATED" in shown and "detect accidental corruption only" in shown
    # The stated limit, shown to hold: rewriting an artifact and the manifest on purpose is not detected ...
    (root / plain.id / "mysql/devstack.sql").write_bytes(FORGED_SQL)
    data = read_manifest(root, plain.id)
    swap_artifact(data, "mysql/devstack.sql", FORGED_SQL)
    write_manifest(root, plain.id, data)
    plain_sig(root, plain.id)
    assert all(f.status == "ok" for f in verify(root, plain.id))
    # ... which is why nothing unauthenticated is restored unless the caller opts in.
    with pytest.raises(NotAuthenticated, match=f"^backup {plain.id} is NOT AUTHENTICATED"):
        read_artifacts(root, plain.id, None)


def test_passphrase_for_an_unencrypted_backup_is_refused(tmp_path: Path) -> None:
    plain = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=None)
    assert [(f.status, f.detail.split(":")[0]) for f in verify(tmp_path, plain.id, PASS)] == [
        ("manifest tampered", "encryption block missing")]


def test_encrypted_backup_without_passphrase_is_refused(setup: Setup) -> None:
    with pytest.raises(ConfigError, match="is encrypted: give --passphrase-file"):
        verify(setup.root, setup.full)
    with pytest.raises(ConfigError, match="is encrypted: give --passphrase-file"):
        read_artifacts(setup.root, setup.full, None)


def test_parent_loop_is_named_not_a_crash(tmp_path: Path) -> None:
    plain = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=None)
    data = read_manifest(tmp_path, plain.id)
    data["parent"] = plain.id
    write_manifest(tmp_path, plain.id, data)
    plain_sig(tmp_path, plain.id)
    problems = _problems(tmp_path, plain.id, None)
    assert [(a, s) for a, s, _ in problems] == [(f"{plain.id}/manifest.json", "manifest tampered")]
    assert problems[0][2].startswith("chain loop:")


def test_artifact_path_outside_the_backup_is_refused(tmp_path: Path) -> None:
    plain = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=None)
    data = read_manifest(tmp_path, plain.id)
    data["artifacts"][0]["name"] = "../../etc/passwd"
    write_manifest(tmp_path, plain.id, data)
    plain_sig(tmp_path, plain.id)
    assert _problems(tmp_path, plain.id, None) == [
        ("manifest.json", "manifest tampered", "bad artifact path: '../../etc/passwd' is not <service>/<file>")]
    with pytest.raises(BackupError, match="manifest tampered: bad artifact path"):
        read_artifacts(tmp_path, plain.id, None)


def test_schema_1_backups_are_refused(setup: Setup) -> None:
    data = read_manifest(setup.root, setup.full)
    data["schema"] = 1
    write_manifest(setup.root, setup.full, data)
    _resign_genuinely(setup.root, setup.full)
    problems = _problems(setup.root, setup.full)
    assert [(a, s) for a, s, _ in problems] == [("manifest.json", "manifest tampered")]
    assert "schema 1" in problems[0][2]
