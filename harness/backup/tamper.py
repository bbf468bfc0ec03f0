"""The forgeries ``verify`` and ``restore`` must refuse, as functions on a backup directory (issue 12 §1).

Each case does what someone who can write the backup directory, but does not know the passphrase, can do to
an encrypted backup. The fast self-tests apply them to synthetic backups, the backup suite to a real backup
of a running stack; both expect every case to be refused with the problem named.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORGED_SQL = b"-- forged\nDROP DATABASE devstack;\n"


@dataclass(frozen=True)
class Chain:
    """Two backups of one encrypted chain (one passphrase, so the same keys)."""

    root: Path
    target: str  # the backup every case tampers with
    other: str  # an incremental on top of it
    forge: str  # an artifact of ``target`` that the forgeries replace with plaintext
    moved: str  # an artifact stored in both backups: ``other``'s copy is moved into ``target``


def read_manifest(root: Path, backup_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / backup_id / "manifest.json").read_text())
    return data


def write_manifest(root: Path, backup_id: str, data: dict[str, Any]) -> None:
    (root / backup_id / "manifest.json").write_bytes(json.dumps(data, indent=2, sort_keys=True).encode())


def plain_sig(root: Path, backup_id: str) -> None:
    """manifest.sig rewritten as anyone can: a plain SHA-256 of the manifest, no key needed."""
    raw = (root / backup_id / "manifest.json").read_bytes()
    (root / backup_id / "manifest.sig").write_text(json.dumps({"alg": "SHA256",
                                                               "value": hashlib.sha256(raw).hexdigest()}))


def swap_artifact(data: dict[str, Any], name: str, blob: bytes, **changes: Any) -> None:
    """Point the manifest's entry for ``name`` at ``blob`` (size and SHA-256), plus ``changes``."""
    for art in data["artifacts"]:
        if art["name"] == name:
            art.update(sha256=hashlib.sha256(blob).hexdigest(), size=len(blob), **changes)


def _plaintext(c: Chain, resign_plain: bool) -> None:
    (c.root / c.target / c.forge).write_bytes(FORGED_SQL)
    data = read_manifest(c.root, c.target)
    swap_artifact(data, c.forge, FORGED_SQL, encrypted=False)
    write_manifest(c.root, c.target, data)
    if resign_plain:
        plain_sig(c.root, c.target)


def alg_downgrade(c: Chain) -> None:
    plain_sig(c.root, c.target)


def encrypted_flag_flip(c: Chain) -> None:
    """The issue's forgery: plaintext in place of an encrypted dump, flag false, new checksum, plain sig."""
    _plaintext(c, resign_plain=True)


def encrypted_flag_flip_hmac_kept(c: Chain) -> None:
    _plaintext(c, resign_plain=False)


def encryption_block_removed(c: Chain) -> None:
    """Every artifact replaced by plaintext, the encryption block dropped, a plain sig: an 'unencrypted' backup."""
    data = read_manifest(c.root, c.target)
    data["encryption"] = None
    for art in data["artifacts"]:
        if art["stored_in"] == c.target:
            (c.root / c.target / art["name"]).write_bytes(FORGED_SQL)
            swap_artifact(data, art["name"], FORGED_SQL, encrypted=False)
    write_manifest(c.root, c.target, data)
    plain_sig(c.root, c.target)


def sig_deleted(c: Chain) -> None:
    (c.root / c.target / "manifest.sig").unlink()


def sig_from_another_backup(c: Chain) -> None:
    shutil.copy(c.root / c.other / "manifest.sig", c.root / c.target / "manifest.sig")


def manifest_from_another_backup(c: Chain) -> None:
    """The other backup's manifest and signature put in place of the target's: both genuine, wrong place."""
    for name in ("manifest.json", "manifest.sig"):
        shutil.copy(c.root / c.other / name, c.root / c.target / name)


def _move(c: Chain, fix_checksum: bool, sig: bool) -> None:
    blob = (c.root / c.other / c.moved).read_bytes()
    (c.root / c.target / c.moved).write_bytes(blob)
    if fix_checksum:
        data = read_manifest(c.root, c.target)
        swap_artifact(data, c.moved, blob)
        write_manifest(c.root, c.target, data)
    if sig:
        plain_sig(c.root, c.target)


def artifact_moved(c: Chain) -> None:
    """The other backup's copy (same keys, same path) moved into the target, its checksum fixed, sig plain."""
    _move(c, fix_checksum=True, sig=True)


def artifact_moved_hmac_kept(c: Chain) -> None:
    _move(c, fix_checksum=True, sig=False)


def artifact_moved_manifest_untouched(c: Chain) -> None:
    _move(c, fix_checksum=False, sig=False)


@dataclass(frozen=True)
class Case:
    tamper: Callable[[Chain], None]
    status: str
    words: str  # the start of the finding's detail that names the problem
    on_moved: bool = False  # the finding is on the moved artifact (else on manifest.json)

    def expected(self, c: Chain) -> tuple[str, str, str]:
        return (c.moved if self.on_moved else "manifest.json", self.status, self.words)


TAMPERED = "manifest tampered"
CASES: dict[str, Case] = {
    "alg-downgrade": Case(alg_downgrade, TAMPERED, "algorithm downgrade"),
    "encrypted-flag-flip": Case(encrypted_flag_flip, TAMPERED, "unencrypted artifact"),
    "encrypted-flag-flip-hmac-kept": Case(encrypted_flag_flip_hmac_kept, TAMPERED, "unencrypted artifact"),
    "encryption-block-removed": Case(encryption_block_removed, TAMPERED, "encryption block missing"),
    "sig-deleted": Case(sig_deleted, TAMPERED, "signature missing"),
    "sig-from-another-backup": Case(sig_from_another_backup, TAMPERED, "signature mismatch"),
    "manifest-from-another-backup": Case(manifest_from_another_backup, TAMPERED, "wrong backup id"),
    "artifact-moved": Case(artifact_moved, TAMPERED, "algorithm downgrade"),
    "artifact-moved-hmac-kept": Case(artifact_moved_hmac_kept, TAMPERED, "signature mismatch"),
    "artifact-moved-manifest-untouched": Case(artifact_moved_manifest_untouched, "checksum mismatch",
                                              "stored bytes differ", on_moved=True),
}


def named(findings: list[tuple[str, str, str]], expected: tuple[str, str, str]) -> bool:
    """Whether ``(artifact, status, detail)`` findings hold the expected one (detail starting with its words)."""
    artifact, status, words = expected
    return any(a == artifact and s == status and d.startswith(words) for a, s, d in findings)
