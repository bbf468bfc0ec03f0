"""Backup, verify and restore of every service, with an authenticated manifest and optional encryption.

Layout: ``<root>/<id>/manifest.json``, ``manifest.sig`` and one file per artifact (``<service>/<name>``).
Ids (``20261121T181516.123456Z-3fa2``) sort by time and differ even within one microsecond.

* Integrity: every stored file's size and SHA-256 are in the manifest. Encrypted backups sign the manifest
  with HMAC-SHA256 under a key derived from the passphrase, so editing the manifest (or swapping files and
  fixing the checksums) is detected. Unencrypted backups carry a plain SHA-256 of the manifest: it catches
  corruption and careless edits, not someone who rewrites both files on purpose.
* Encryption: AES-256-GCM per file (random 96-bit nonce, the artifact's path as associated data), keys from
  the passphrase with scrypt (parameters and salt recorded). Dumps are taken into memory and encrypted there;
  no plaintext dump is written to disk when encryption is on.
* Incremental: an artifact whose content fingerprint equals the one in the parent chain is not stored again;
  the manifest points at the backup that holds it. Granularity: one artifact per database (PostgreSQL,
  MySQL, MongoDB), per Redis shard, RabbitMQ's definitions, Vault's snapshot (which changes every time).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from harness.errors import ConfigError, HarnessError
from harness.files import write_file
from harness.redact import register

SCHEMA = 1
SCRYPT = {"n": 2**15, "r": 8, "p": 1, "length": 64}
NONCE_BYTES = 12


class BackupError(HarnessError):
    """A backup could not be made, read or restored."""


# --------------------------------------------------------------------------------------------- crypto


def read_passphrase(path: Path) -> bytes:
    """The passphrase from a file that only its owner can read (mode 0600 or 0400), else refuse."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"passphrase file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"passphrase file {path} has mode {stat.S_IMODE(mode):04o}; it must be 0600 (chmod 600 "
                          f"{path}) so nobody else can read it")
    data = path.read_bytes().strip()
    if len(data) < 8:
        raise ConfigError(f"passphrase file {path} holds fewer than 8 bytes")
    return data


@dataclass(frozen=True)
class Keys:
    """The encryption and MAC keys derived from a passphrase."""

    enc: bytes
    mac: bytes
    salt: bytes

    @classmethod
    def derive(cls, passphrase: bytes, salt: bytes | None = None) -> Keys:
        salt = salt or secrets.token_bytes(16)
        register(passphrase)  # redacted from every output the harness writes
        raw = Scrypt(salt=salt, length=SCRYPT["length"], n=SCRYPT["n"], r=SCRYPT["r"], p=SCRYPT["p"]).derive(passphrase)
        return cls(enc=raw[:32], mac=raw[32:], salt=salt)

    def describe(self) -> dict[str, Any]:
        return {"cipher": "AES-256-GCM", "nonce_bytes": NONCE_BYTES, "aad": "artifact path",
                "kdf": "scrypt", **dict(SCRYPT), "salt": self.salt.hex(),
                "manifest_mac": "HMAC-SHA256", "check": self.check()}

    def check(self) -> str:
        """A value that tells a wrong passphrase from a tampered manifest (reveals nothing about the key)."""
        return hmac.new(self.mac, b"devstack-harness passphrase check", hashlib.sha256).hexdigest()[:16]

    def encrypt(self, data: bytes, aad: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(self.enc).encrypt(nonce, data, aad.encode())

    def decrypt(self, blob: bytes, aad: str) -> bytes:
        try:
            return AESGCM(self.enc).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode())
        except InvalidTag:
            raise BackupError(f"{aad}: decryption failed (wrong passphrase, or the file was altered)") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------- manifest


@dataclass
class Artifact:
    service: str
    name: str  # path inside a backup directory: <service>/<file>
    stored_in: str  # id of the backup that holds the file (itself, or a parent for an incremental)
    size: int
    sha256: str  # of the stored bytes (ciphertext when encrypted)
    fingerprint: str  # of the content (HMAC under the MAC key when encrypted), for incrementals
    encrypted: bool
    duration_s: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    id: str
    created: str
    type: str
    parent: str | None
    services: list[str]
    versions: dict[str, str]
    encryption: dict[str, Any] | None
    artifacts: list[Artifact]
    totals: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA

    def to_json(self) -> bytes:
        data = {**self.__dict__, "artifacts": [a.__dict__ for a in self.artifacts]}
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        if data.get("schema") != SCHEMA:
            raise BackupError(f"manifest schema {data.get('schema')} is not supported (expected {SCHEMA})")
        data["artifacts"] = [Artifact(**a) for a in data["artifacts"]]
        return cls(**data)


def new_backup_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(2)}"


def _signature(manifest: bytes, keys: Keys | None) -> dict[str, str]:
    if keys is None:
        return {"alg": "SHA256", "value": _sha256(manifest)}
    return {"alg": "HMAC-SHA256", "value": hmac.new(keys.mac, manifest, hashlib.sha256).hexdigest()}


def write_backup(root: Path, manifest: Manifest, files: Mapping[str, bytes], keys: Keys | None) -> Path:
    """Write the stored files, the manifest and its signature (directories 0700, files 0600)."""
    directory = root / manifest.id
    directory.mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    for name, blob in files.items():
        write_file(directory / name, blob)
    raw = manifest.to_json()
    write_file(directory / "manifest.json", raw)
    write_file(directory / "manifest.sig", json.dumps(_signature(raw, keys)))
    return directory


def load_manifest(root: Path, backup_id: str, keys: Keys | None = None) -> Manifest:
    """Read a manifest; with ``keys`` its HMAC is checked (a mismatch raises)."""
    directory = root / backup_id
    if not (directory / "manifest.json").is_file():
        raise BackupError(f"no backup {backup_id} in {root}")
    raw = (directory / "manifest.json").read_bytes()
    problem = _manifest_problem(directory, raw, keys)
    if problem:
        raise BackupError(f"backup {backup_id}: {problem}")
    return Manifest.from_json(raw)


def _manifest_problem(directory: Path, raw: bytes, keys: Keys | None) -> str | None:
    try:
        sig = json.loads((directory / "manifest.sig").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return "manifest tampered: manifest.sig is missing or unreadable"
    if sig.get("alg") == "HMAC-SHA256" and keys is None:
        return None  # checked when the passphrase is given
    expected = _signature(raw, keys if sig.get("alg") == "HMAC-SHA256" else None)
    if not hmac.compare_digest(expected["value"], str(sig.get("value"))):
        return "manifest tampered: its signature does not match" + (
            " (or the passphrase is wrong)" if sig.get("alg") == "HMAC-SHA256" else "")
    return None


def list_backups(root: Path) -> list[Manifest]:
    found = []
    for path in sorted(root.glob("*/manifest.json")) if root.is_dir() else []:
        try:
            found.append(Manifest.from_json(path.read_bytes()))
        except (BackupError, json.JSONDecodeError, TypeError, KeyError):
            continue
    return found


def keys_for(root: Path, backup_id: str, passphrase: bytes | None) -> Keys | None:
    """Keys for an encrypted backup (salt from its manifest), None for a plain one; refuses a missing
    passphrase for an encrypted backup."""
    raw = json.loads((root / backup_id / "manifest.json").read_text())
    enc = raw.get("encryption")
    if not enc:
        return None
    if passphrase is None:
        raise ConfigError(f"backup {backup_id} is encrypted: give --passphrase-file")
    keys = Keys.derive(passphrase, bytes.fromhex(enc["salt"]))
    if enc.get("check") and not hmac.compare_digest(keys.check(), str(enc["check"])):
        raise BackupError(f"wrong passphrase for backup {backup_id}")
    return keys


# --------------------------------------------------------------------------------------------- verify


@dataclass
class Finding:
    artifact: str
    status: str  # ok | checksum mismatch | missing | unexpected extra file | manifest tampered | bad format
    detail: str = ""


FormatCheck = Callable[[str, bytes], str | None]


def verify(root: Path, backup_id: str, passphrase: bytes | None = None,
           format_check: FormatCheck | None = None) -> list[Finding]:
    """Check the manifest's signature, every artifact of the chain (size, SHA-256, decryption with the
    passphrase, format) and look for files the manifest does not know."""
    directory = root / backup_id
    if not (directory / "manifest.json").is_file():
        return [Finding("manifest.json", "missing", f"no backup {backup_id}")]
    raw = (directory / "manifest.json").read_bytes()
    try:
        keys = keys_for(root, backup_id, passphrase)
    except BackupError as exc:
        return [Finding("manifest.json", "wrong passphrase", str(exc))]
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        return [Finding("manifest.json", "manifest tampered", f"unreadable: {exc}")]
    problem = _manifest_problem(directory, raw, keys)
    if problem:
        return [Finding("manifest.json", "manifest tampered", problem)]
    try:
        manifest = Manifest.from_json(raw)
    except (BackupError, json.JSONDecodeError, TypeError, KeyError) as exc:
        return [Finding("manifest.json", "manifest tampered", str(exc))]
    findings: list[Finding] = []
    if manifest.parent:
        findings += [Finding(f"{manifest.parent}/{f.artifact}", f.status, f.detail)
                     for f in verify(root, manifest.parent, passphrase, format_check) if f.status != "ok"]
    known = {"manifest.json", "manifest.sig"} | {a.name for a in manifest.artifacts if a.stored_in == backup_id}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel not in known:
            findings.append(Finding(rel, "unexpected extra file"))
    for art in manifest.artifacts:
        findings.append(_check_artifact(root, backup_id, art, keys, format_check))
    return findings


def _check_artifact(root: Path, backup_id: str, art: Artifact, keys: Keys | None,
                    format_check: FormatCheck | None) -> Finding:
    label = art.name if art.stored_in == backup_id else f"{art.name} (in {art.stored_in})"
    path = root / art.stored_in / art.name
    if not path.is_file():
        return Finding(label, "missing")
    blob = path.read_bytes()
    if len(blob) != art.size or _sha256(blob) != art.sha256:
        return Finding(label, "checksum mismatch", f"{len(blob)} bytes, manifest says {art.size}")
    if art.encrypted:
        if keys is None:
            return Finding(label, "ok", "checksum ok; not decrypted (no passphrase)")
        try:
            blob = keys.decrypt(blob, art.name)
        except BackupError as exc:
            return Finding(label, "checksum mismatch", str(exc))
    if format_check is not None:
        bad = format_check(art.name, blob)
        if bad:
            return Finding(label, "bad format", bad)
    return Finding(label, "ok")


def basic_format_check(name: str, data: bytes) -> str | None:
    """Cheap local checks of each artifact kind (no server needed)."""
    if name.endswith(".dump") and not data.startswith(b"PGDMP"):
        return "not a pg_dump custom-format archive (no PGDMP header)"
    if name.endswith(".sql") and b"-- " not in data[:200] and name != "postgres/globals.sql":
        return "not a SQL dump"
    if name.endswith(".snap") and not data.startswith(b"\x1f\x8b"):
        return "not a gzip raft snapshot"
    if name.endswith(".json") or name.endswith(".jsonl"):
        try:
            lines = data.splitlines() if name.endswith(".jsonl") else [data]
            for line in lines:
                json.loads(line)
        except json.JSONDecodeError as exc:
            return f"not valid JSON: {exc}"
    if name.endswith(".archive.gz") and not data.startswith(b"\x1f\x8b"):
        return "not a gzip archive"
    return None


# ---------------------------------------------------------------------------------------------- create


@dataclass
class Captured:
    """One artifact as taken from a service (plaintext, in memory)."""

    service: str
    name: str
    data: bytes
    duration_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    # Content minus volatile parts (dump dates, TTLs counting down), for incremental comparisons.
    stable: bytes | None = None


def build_backup(root: Path, captured: Iterable[Captured], *, services: list[str], versions: dict[str, str],
                 passphrase: bytes | None, parent_id: str | None = None) -> Manifest:
    """Encrypt (optionally), deduplicate against the parent chain (incremental) and write a backup."""
    t0 = time.monotonic()
    backup_id = new_backup_id()
    parent_keys: Keys | None = None
    previous: dict[str, Artifact] = {}
    encryption = None
    if parent_id is not None:
        parent_keys = keys_for(root, parent_id, passphrase)  # one scrypt derivation, reused below
        parent = load_manifest(root, parent_id, parent_keys)
        if (parent.encryption is None) != (passphrase is None):
            raise ConfigError("an incremental backup must use the same encryption (and passphrase) as its parent")
        encryption = parent.encryption
        previous = {a.name: a for a in parent.artifacts}
    keys = parent_keys if parent_keys is not None else (Keys.derive(passphrase) if passphrase else None)
    if keys is not None:
        encryption = keys.describe()
    artifacts: list[Artifact] = []
    files: dict[str, bytes] = {}
    for item in captured:
        content = item.stable if item.stable is not None else item.data
        fingerprint = (hmac.new(keys.mac, content, hashlib.sha256).hexdigest() if keys else _sha256(content))
        old = previous.get(item.name)
        if old is not None and old.fingerprint == fingerprint:
            artifacts.append(Artifact(item.service, item.name, old.stored_in, old.size, old.sha256, fingerprint,
                                      old.encrypted, item.duration_s, {**item.meta, "unchanged_since": old.stored_in}))
            continue
        blob = keys.encrypt(item.data, item.name) if keys else item.data
        files[item.name] = blob
        artifacts.append(Artifact(item.service, item.name, backup_id, len(blob), _sha256(blob), fingerprint,
                                  keys is not None, item.duration_s, item.meta))
    totals = {"artifacts": len(artifacts), "stored": len(files), "stored_bytes": sum(len(b) for b in files.values()),
              "chain_bytes": sum(a.size for a in artifacts), "duration_s": round(time.monotonic() - t0, 3)}
    manifest = Manifest(id=backup_id, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        type="incremental" if parent_id else "full", parent=parent_id, services=services,
                        versions=versions, encryption=encryption, artifacts=artifacts, totals=totals)
    write_backup(root, manifest, files, keys)
    return manifest


def read_artifacts(root: Path, backup_id: str, passphrase: bytes | None) -> dict[str, tuple[Artifact, bytes]]:
    """Every artifact of a backup (resolving the incremental chain), decrypted; refuses on any problem."""
    found = [f for f in verify(root, backup_id, passphrase) if f.status != "ok"]
    if found and found[0].status == "wrong passphrase":
        raise BackupError(found[0].detail)
    keys = keys_for(root, backup_id, passphrase)
    manifest = Manifest.from_json((root / backup_id / "manifest.json").read_bytes())  # signature checked by verify
    if found:
        raise BackupError("backup does not verify: " + "; ".join(f"{f.artifact}: {f.status} {f.detail}".strip()
                                                                  for f in found))
    out = {}
    for art in manifest.artifacts:
        blob = (root / art.stored_in / art.name).read_bytes()
        out[art.name] = (art, keys.decrypt(blob, art.name) if art.encrypted and keys else blob)
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
