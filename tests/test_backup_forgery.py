"""Backup forgery (issue 12 §1), on backups written to a temp dir with synthetic artifacts (no Docker).

Each tamper case is applied to the full backup of a two-backup encrypted chain (full + incremental, one
passphrase). Every case must be refused by ``verify`` with the problem named, by the CLI's ``backup verify``
with exit 1, and by ``restore`` -- library and CLI -- before any service of the target is touched.
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

from harness import backup_services
from harness.backup import (
    NOT_AUTHENTICATED,
    BackupError,
    Captured,
    Keys,
    build_backup,
    read_artifacts,
    sign_manifest,
    verify,
)
from harness.cli import main
from harness.errors import ConfigError

PASS = b"the owner's passphrase, 0600"
FORGED_SQL = b"-- forged\nDROP DATABASE devstack;\n"


def _items(pg: bytes = b"PGDMP-one") -> list[Captured]:
    return [Captured("postgres", "postgres/devstack.dump", pg, 0.1),
            Captured("mysql", "mysql/devstack.sql", b"-- MariaDB dump\nCREATE TABLE accounts (id int);\n", 0.1),
            Captured("rabbitmq", "rabbitmq/definitions.json", b'{"queues": []}', 0.1)]


@dataclass
class Chain:
    root: Path
    full: str  # the backup every case tampers with
    inc: str  # an incremental on top of it (same passphrase, so the same keys)
    passfile: Path


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Chain:
    state = tmp_path / "state"
    monkeypatch.setenv("HARNESS_STATE_DIR", str(state))
    root = state / "backups"
    services = ["postgres", "mysql", "rabbitmq"]
    full = build_backup(root, _items(), services=services, versions={}, passphrase=PASS)
    inc = build_backup(root, _items(pg=b"PGDMP-two"), services=services, versions={}, passphrase=PASS,
                       parent_id=full.id)
    assert {a.name for a in inc.artifacts if a.stored_in == inc.id} == {"postgres/devstack.dump"}
    passfile = tmp_path / "passphrase"
    passfile.write_bytes(PASS)
    passfile.chmod(0o600)
    return Chain(root, full.id, inc.id, passfile)


# ------------------------------------------------------------------------------------------ tampering


def _read(c: Chain, backup_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((c.root / backup_id / "manifest.json").read_text())
    return data


def _write(c: Chain, backup_id: str, data: dict[str, Any]) -> None:
    (c.root / backup_id / "manifest.json").write_bytes(json.dumps(data, indent=2, sort_keys=True).encode())


def _plain_sig(c: Chain, backup_id: str) -> None:
    """manifest.sig rewritten as an attacker can: a plain SHA-256 of the manifest, no key needed."""
    raw = (c.root / backup_id / "manifest.json").read_bytes()
    (c.root / backup_id / "manifest.sig").write_text(json.dumps({"alg": "SHA256",
                                                                 "value": hashlib.sha256(raw).hexdigest()}))


def _swap_artifact(data: dict[str, Any], name: str, blob: bytes, **changes: Any) -> None:
    for art in data["artifacts"]:
        if art["name"] == name:
            art.update(sha256=hashlib.sha256(blob).hexdigest(), size=len(blob), **changes)


def alg_downgrade(c: Chain) -> None:
    _plain_sig(c, c.full)


def encrypted_flag_flip(c: Chain) -> None:
    """The issue's forgery: plaintext in place of the encrypted dump, flag false, new checksum, plain sig."""
    (c.root / c.full / "mysql/devstack.sql").write_bytes(FORGED_SQL)
    data = _read(c, c.full)
    _swap_artifact(data, "mysql/devstack.sql", FORGED_SQL, encrypted=False)
    _write(c, c.full, data)
    _plain_sig(c, c.full)


def encrypted_flag_flip_hmac_kept(c: Chain) -> None:
    (c.root / c.full / "mysql/devstack.sql").write_bytes(FORGED_SQL)
    data = _read(c, c.full)
    _swap_artifact(data, "mysql/devstack.sql", FORGED_SQL, encrypted=False)
    _write(c, c.full, data)


def encryption_block_removed(c: Chain) -> None:
    data = _read(c, c.full)
    data["encryption"] = None
    for art in data["artifacts"]:
        blob = FORGED_SQL if art["name"].endswith(".sql") else b'{"forged": true}' if art["name"].endswith(
            ".json") else b"PGDMP-forged"
        (c.root / c.full / art["name"]).write_bytes(blob)
        _swap_artifact(data, art["name"], blob, encrypted=False)
    _write(c, c.full, data)
    _plain_sig(c, c.full)


def sig_deleted(c: Chain) -> None:
    (c.root / c.full / "manifest.sig").unlink()


def sig_from_another_backup(c: Chain) -> None:
    shutil.copy(c.root / c.inc / "manifest.sig", c.root / c.full / "manifest.sig")


def manifest_and_sig_from_another_backup(c: Chain) -> None:
    """The incremental's manifest and signature put in place of the full backup's: both genuine, wrong place."""
    for name in ("manifest.json", "manifest.sig"):
        shutil.copy(c.root / c.inc / name, c.root / c.full / name)


def artifact_moved(c: Chain) -> None:
    """The incremental's dump (same keys, same path) put in the full backup, its checksum fixed, sig plain."""
    blob = (c.root / c.inc / "postgres/devstack.dump").read_bytes()
    (c.root / c.full / "postgres/devstack.dump").write_bytes(blob)
    data = _read(c, c.full)
    _swap_artifact(data, "postgres/devstack.dump", blob)
    _write(c, c.full, data)
    _plain_sig(c, c.full)


def artifact_moved_hmac_kept(c: Chain) -> None:
    blob = (c.root / c.inc / "postgres/devstack.dump").read_bytes()
    (c.root / c.full / "postgres/devstack.dump").write_bytes(blob)
    data = _read(c, c.full)
    _swap_artifact(data, "postgres/devstack.dump", blob)
    _write(c, c.full, data)


def artifact_moved_manifest_untouched(c: Chain) -> None:
    shutil.copy(c.root / c.inc / "postgres/devstack.dump", c.root / c.full / "postgres/devstack.dump")


# case -> (tamper, (artifact, status, words of the detail that name the problem))
CASES: dict[str, tuple[Callable[[Chain], None], tuple[str, str, str]]] = {
    "alg-downgrade": (alg_downgrade, ("manifest.json", "manifest tampered", "algorithm downgrade")),
    "encrypted-flag-flip": (encrypted_flag_flip,
                            ("manifest.json", "manifest tampered", "unencrypted artifact: mysql/devstack.sql")),
    "encrypted-flag-flip-hmac-kept": (encrypted_flag_flip_hmac_kept,
                                      ("manifest.json", "manifest tampered", "unencrypted artifact: mysql/")),
    "encryption-block-removed": (encryption_block_removed,
                                 ("manifest.json", "manifest tampered", "encryption block missing")),
    "sig-deleted": (sig_deleted, ("manifest.json", "manifest tampered", "signature missing")),
    "sig-from-another-backup": (sig_from_another_backup, ("manifest.json", "manifest tampered", "signature mismatch")),
    "manifest-from-another-backup": (manifest_and_sig_from_another_backup,
                                     ("manifest.json", "manifest tampered", "wrong backup id")),
    "artifact-moved": (artifact_moved, ("manifest.json", "manifest tampered", "algorithm downgrade")),
    "artifact-moved-hmac-kept": (artifact_moved_hmac_kept,
                                 ("manifest.json", "manifest tampered", "signature mismatch")),
    "artifact-moved-manifest-untouched": (artifact_moved_manifest_untouched,
                                          ("postgres/devstack.dump", "checksum mismatch", "stored bytes differ")),
}


def _problems(c: Chain, backup_id: str) -> list[tuple[str, str, str]]:
    return [(f.artifact, f.status, f.detail) for f in verify(c.root, backup_id, PASS) if f.status != "ok"]


def _named(problems: list[tuple[str, str, str]], expected: tuple[str, str, str]) -> bool:
    artifact, status, words = expected
    return any(a == artifact and s == status and words in d for a, s, d in problems)


def test_genuine_chain_verifies_and_restores(chain: Chain) -> None:
    """The control: without tampering everything is ok, so the refusals below are not a blanket failure."""
    for backup_id in (chain.full, chain.inc):
        assert _problems(chain, backup_id) == []
        assert main(["backup", "verify", backup_id, "--passphrase-file", str(chain.passfile)]) == 0
    files = read_artifacts(chain.root, chain.inc, PASS)
    assert files["postgres/devstack.dump"][1] == b"PGDMP-two"
    assert files["mysql/devstack.sql"][1].startswith(b"-- MariaDB dump")


@pytest.mark.parametrize("case", CASES)
def test_forgery_detected_and_named(chain: Chain, case: str) -> None:
    tamper, expected = CASES[case]
    tamper(chain)
    problems = _problems(chain, chain.full)
    assert _named(problems, expected), problems
    # The incremental builds on the tampered backup: its chain fails too, with the parent named.
    child = _problems(chain, chain.inc)
    assert any(a.startswith(f"{chain.full}/") for a, _, _ in child), child


@pytest.mark.parametrize("case", CASES)
def test_cli_verify_exits_1_naming_the_problem(chain: Chain, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    tamper, (artifact, status, words) = CASES[case]
    tamper(chain)
    assert main(["backup", "verify", chain.full, "--passphrase-file", str(chain.passfile)]) == 1
    shown = capsys.readouterr().out
    assert status in shown and artifact in shown
    assert words.split(":")[0].split()[-1] in shown  # the table wraps long details; one word of the name


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
    fakes = {name: (lambda t, files, _n=name: called.append(_n)) for name in backup_services.RESTORE}
    monkeypatch.setattr(backup_services, "RESTORE", fakes)
    monkeypatch.setattr(backup_services, "restore_vault", lambda t, files, adopt, timeout=60: called.append("vault"))
    return called


def test_spy_sees_a_genuine_restore(chain: Chain, spy_restores: list[str]) -> None:
    """The spies work: an untampered backup does reach the restore functions."""
    target = SpyTarget()
    backup_services.restore(target, chain.root, chain.full, PASS, None, target.adopt_vault)
    assert spy_restores == ["postgres", "mysql", "rabbitmq"]


@pytest.mark.parametrize("case", CASES)
def test_restore_refuses_before_touching_the_target(chain: Chain, case: str, spy_restores: list[str]) -> None:
    tamper, (_, status, words) = CASES[case]
    tamper(chain)
    target = SpyTarget()
    with pytest.raises(BackupError, match=f"{status}.*{words.split(':')[0]}"):
        backup_services.restore(target, chain.root, chain.full, PASS, None, target.adopt_vault)
    assert target.calls == [] and spy_restores == []


@pytest.mark.parametrize("fresh", [False, True], ids=["up-stack", "fresh"])
@pytest.mark.parametrize("case", CASES)
def test_cli_restore_refuses_before_any_stack(chain: Chain, case: str, fresh: bool, spy_restores: list[str],
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli, engine

    tamper, (_, status, _) = CASES[case]
    tamper(chain)
    used: list[str] = []
    target = SpyTarget()
    monkeypatch.setattr(cli, "_up_target", lambda: used.append("up stack") or target)

    class NoStack:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            used.append("fresh stack")
            raise AssertionError("a refused restore started a stack")

    monkeypatch.setattr(engine, "Stack", NoStack)
    argv = ["backup", "restore", chain.full, "--yes", "--passphrase-file", str(chain.passfile)]
    assert main(argv + (["--fresh"] if fresh else [])) == 1
    assert status in capsys.readouterr().err
    assert used == [] and target.calls == [] and spy_restores == []


# ------------------------------------------------------------------------------- defences behind the HMAC


def _resign_genuinely(c: Chain, backup_id: str) -> None:
    """Sign a modified manifest with the real key: what only the passphrase holder (or a harness bug) can do.
    Used to prove the checks that stand behind the HMAC."""
    data = _read(c, backup_id)
    keys = Keys.derive(PASS, bytes.fromhex(data["encryption"]["salt"]))
    raw = (c.root / backup_id / "manifest.json").read_bytes()
    (c.root / backup_id / "manifest.sig").write_text(json.dumps(sign_manifest(backup_id, raw, keys)))


def test_moved_ciphertext_does_not_decrypt_even_under_a_valid_hmac(chain: Chain) -> None:
    """The AEAD associated data binds backup id + path: the incremental's dump (same keys, same path) put in
    the full backup fails decryption although checksum and HMAC are right."""
    artifact_moved_hmac_kept(chain)
    _resign_genuinely(chain, chain.full)
    problems = _problems(chain, chain.full)
    assert [(a, s) for a, s, _ in problems] == [("postgres/devstack.dump", "checksum mismatch")], problems
    assert "decryption failed" in problems[0][2] and "moved here from another backup" in problems[0][2]


def test_artifact_outside_the_chain_is_refused(chain: Chain, tmp_path: Path) -> None:
    other = build_backup(chain.root, _items(pg=b"PGDMP-other"), services=["postgres"], versions={}, passphrase=PASS)
    data = _read(chain, chain.inc)
    for art in data["artifacts"]:
        if art["name"] == "postgres/devstack.dump":
            art["stored_in"] = other.id
            art.update(sha256=next(a.sha256 for a in other.artifacts if a.name == art["name"]),
                       size=next(a.size for a in other.artifacts if a.name == art["name"]))
    _write(chain, chain.inc, data)
    (chain.root / chain.inc / "postgres/devstack.dump").unlink()
    _resign_genuinely(chain, chain.inc)
    problems = _problems(chain, chain.inc)
    assert [(a, s) for a, s, _ in problems] == [(f"postgres/devstack.dump (in {other.id})", "manifest tampered")]
    assert "artifact outside the chain" in problems[0][2]


@pytest.mark.parametrize("case", ["alg-downgrade", "encrypted-flag-flip", "artifact-moved"])
def test_no_incremental_on_a_forged_parent(chain: Chain, case: str) -> None:
    """An incremental re-signs its parents' checksums under the HMAC: building on a forged parent would
    launder the forgery, so the parent chain must verify first."""
    CASES[case][0](chain)
    with pytest.raises(BackupError, match=r"does not verify, so no incremental is built on it.*manifest tampered"):
        build_backup(chain.root, _items(), services=["postgres"], versions={}, passphrase=PASS, parent_id=chain.full)
    assert sorted(p.name for p in chain.root.iterdir()) == sorted([chain.full, chain.inc])


def test_unencrypted_backup_says_it_is_not_authenticated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path))
    plain = build_backup(tmp_path / "backups", _items(), services=["postgres"], versions={}, passphrase=None)
    findings = verify(tmp_path / "backups", plain.id)
    assert findings[0].detail == NOT_AUTHENTICATED and all(f.status == "ok" for f in findings)
    assert main(["backup", "verify", plain.id]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "NOT AUTHENTICATED" in shown and "detect accidental corruption only" in shown
    # The stated limit, shown to hold: rewriting an artifact and the manifest on purpose is not detected.
    c = Chain(tmp_path / "backups", plain.id, plain.id, tmp_path / "unused")
    (c.root / plain.id / "mysql/devstack.sql").write_bytes(FORGED_SQL)
    data = _read(c, plain.id)
    _swap_artifact(data, "mysql/devstack.sql", FORGED_SQL)
    _write(c, plain.id, data)
    _plain_sig(c, plain.id)
    assert all(f.status == "ok" for f in verify(c.root, plain.id))


def test_passphrase_for_an_unencrypted_backup_is_refused(tmp_path: Path) -> None:
    plain = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=None)
    assert [(f.status, f.detail.split(":")[0]) for f in verify(tmp_path, plain.id, PASS)] == [
        ("manifest tampered", "encryption block missing")]


def test_encrypted_backup_without_passphrase_is_refused(chain: Chain) -> None:
    with pytest.raises(ConfigError, match="is encrypted: give --passphrase-file"):
        verify(chain.root, chain.full)
    with pytest.raises(ConfigError, match="is encrypted: give --passphrase-file"):
        read_artifacts(chain.root, chain.full, None)


def test_parent_loop_is_named_not_a_crash(tmp_path: Path) -> None:
    plain = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=None)
    c = Chain(tmp_path, plain.id, plain.id, tmp_path / "unused")
    data = _read(c, plain.id)
    data["parent"] = plain.id
    _write(c, plain.id, data)
    _plain_sig(c, plain.id)
    problems = _problems_plain(tmp_path, plain.id)
    assert [(a, s) for a, s, _ in problems] == [(f"{plain.id}/manifest.json", "manifest tampered")]
    assert problems[0][2].startswith("chain loop:")


def _problems_plain(root: Path, backup_id: str) -> list[tuple[str, str, str]]:
    return [(f.artifact, f.status, f.detail) for f in verify(root, backup_id) if f.status != "ok"]


def test_artifact_path_outside_the_backup_is_refused(tmp_path: Path) -> None:
    plain = build_backup(tmp_path, _items(), services=["postgres"], versions={}, passphrase=None)
    c = Chain(tmp_path, plain.id, plain.id, tmp_path / "unused")
    data = _read(c, plain.id)
    data["artifacts"][0]["name"] = "../../etc/passwd"
    _write(c, plain.id, data)
    _plain_sig(c, plain.id)
    assert _problems_plain(tmp_path, plain.id) == [
        ("manifest.json", "manifest tampered", "bad artifact path: '../../etc/passwd' is not <service>/<file>")]
    with pytest.raises(BackupError, match="manifest tampered: bad artifact path"):
        read_artifacts(tmp_path, plain.id, None)


def test_schema_1_backups_are_refused(chain: Chain) -> None:
    data = _read(chain, chain.full)
    data["schema"] = 1
    _write(chain, chain.full, data)
    _resign_genuinely(chain, chain.full)
    problems = _problems(chain, chain.full)
    assert [(a, s) for a, s, _ in problems] == [("manifest.json", "manifest tampered")]
    assert "schema 1" in problems[0][2]
