"""Backup, verify and restore of every service, with an authenticated manifest and optional encryption.

Layout: ``<root>/<id>/manifest.json``, ``manifest.sig`` and one file per artifact (``<service>/<name>``).
Ids (``20261121T181516.123456Z-3fa2``) sort by time and differ even within one microsecond.

* Integrity: every stored file's size and SHA-256 are in the manifest, and the manifest names its own id.
* Authenticity (encrypted backups only): ``manifest.sig`` is an HMAC-SHA256 over the backup id and the
  manifest under a key derived from the passphrase. Which check applies is decided by the verifier -- an
  encryption block in the manifest, or a passphrase given, means the HMAC is required -- never by
  ``manifest.sig``'s own ``alg`` field, which anyone can write. Inside an encrypted backup every artifact must
  be encrypted; a passphrase given for a manifest without an encryption block means the block was removed.
* Unencrypted backups carry a plain SHA-256 of the manifest: it catches accidental corruption, not someone who
  rewrites files and manifest on purpose. A backup is *authenticated* only when its manifest's HMAC was checked
  under the passphrase's key; ``verify`` says when it is not, and ``read_artifacts`` (so every restore) refuses
  an unauthenticated backup unless the caller allows it (``--allow-unauthenticated``).
* Encryption: AES-256-GCM per file (random 96-bit nonce; associated data ``<backup id>/<artifact path>`` of the
  backup that stored it, so a ciphertext moved to another backup or path of the same chain does not decrypt),
  keys from the passphrase with scrypt (fixed parameters; salt recorded). Dumps are taken into memory and
  encrypted there; no plaintext dump is written to disk when encryption is on.
* Completeness: a backup holds every artifact its services declare (``BackupOps.artifacts``; Vault's here),
  else ``verify`` names each one missing and nothing is restored from it.
* Incremental: an artifact whose content fingerprint equals the one in the parent chain is not stored again;
  the manifest points at the backup that holds it (and pins its size and SHA-256). The parent chain is
  verified before an incremental is built on it, so a forged parent is never re-signed. Granularity: one
  artifact per database (PostgreSQL, MySQL, MongoDB), per Redis shard, RabbitMQ's definitions, Vault's
  snapshot (which changes every time).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import fnmatch
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from harness.reports.redact import register
from stack import registry
from stack.backup_ops import Captured as Captured  # re-exported: one artifact as a capture returns it
from stack.errors import ConfigError, HarnessError
from stack.files import write_file

SCHEMA = 2  # 2: HMAC bound to the backup id, AEAD data binds backup id + path, sub-keys per purpose
SCRYPT = {"n": 2**15, "r": 8, "p": 1, "length": 64}
NONCE_BYTES = 12
MAC_ALG = "HMAC-SHA256"
PLAIN_ALG = "SHA256"
UNAUTHENTICATED_LIMIT = ("the SHA-256 checks detect accidental corruption only, not someone who rewrites files and "
                         "manifest on purpose")
NOT_AUTHENTICATED = (f"NOT AUTHENTICATED (unencrypted backup): {UNAUTHENTICATED_LIMIT}; if this backup was made with "
                     "--encrypt, verify it with --passphrase-file")
AUTHENTICATED = f"authentic: {MAC_ALG} over the manifest and backup id, under the passphrase's key"
_ARTIFACT_PATH = re.compile(r"[a-z0-9_]+/[A-Za-z0-9][A-Za-z0-9._-]*")
_BACKUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a directory name under the backup root, never a path
#: Vault, the root of trust, is captured and restored by the harness itself (harness.backup.orchestration), so its
#: artifacts are declared here rather than in a ``BackupOps``.
VAULT = "vault"
VAULT_SNAPSHOT = "vault/raft.snap"
VAULT_KEYS = "vault/unseal.json"
VAULT_ARTIFACTS = (VAULT_SNAPSHOT, VAULT_KEYS)


class BackupError(HarnessError):
    """A backup could not be made, read or restored."""


class ManifestTampered(BackupError):
    """The manifest or its signature is not what the harness wrote (each problem named in ``problems``)."""

    def __init__(self, backup_id: str, problems: list[str]) -> None:
        super().__init__(f"backup {backup_id}: manifest tampered: " + "; ".join(problems))
        self.problems = problems


class WrongPassphrase(BackupError):
    """The passphrase does not open this backup."""


class NoSuchBackup(BackupError):
    """The backup asked for does not exist (or its id is not one)."""


class NotAuthenticated(BackupError):
    """A backup that verifies but is not authenticated (no passphrase, no HMAC), refused unless allowed."""

    def __init__(self, backup_id: str) -> None:
        super().__init__(f"backup {backup_id} is NOT AUTHENTICATED (unencrypted backup), nothing restored: "
                         f"{UNAUTHENTICATED_LIMIT}; if it was made with --encrypt, restore it with --passphrase-file; "
                         "to restore it unauthenticated, add --allow-unauthenticated")


# --------------------------------------------------------------------------------------------- crypto


def read_passphrase(path: Path) -> bytes:
    """The passphrase from a file that only its owner can read (mode 0600 or 0400), else refuse."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"passphrase file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"passphrase file {path} cannot be read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"passphrase file {path} has mode {stat.S_IMODE(mode):04o}; it must be 0600 (chmod 600 "
                          f"{path}) so nobody else can read it")
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"passphrase file {path} cannot be read: {exc.strerror}") from None
    if len(data) < 8:
        raise ConfigError(f"passphrase file {path} holds fewer than 8 bytes")
    return data


@functools.lru_cache(maxsize=16)
def _scrypt(passphrase: bytes, salt: bytes) -> bytes:
    """scrypt with the fixed parameters. Memoised per process: verifying a backup, then restoring it (and every
    incremental's parent on the way) derives the same key from the same passphrase and salt, at 0.1-0.15 s of CPU
    each here. The result stays in this process's memory, where the passphrase already is; a new salt (every new
    backup) or another passphrase derives afresh."""
    return Scrypt(salt=salt, length=SCRYPT["length"], n=SCRYPT["n"], r=SCRYPT["r"], p=SCRYPT["p"]).derive(passphrase)


@dataclass(frozen=True)
class Keys:
    """The keys derived from a passphrase: one per purpose, so no MAC value can stand in for another."""

    enc: bytes  # AES-256-GCM
    mac: bytes  # the manifest's HMAC
    fingerprint: bytes  # content fingerprints for incrementals
    check: str  # tells a wrong passphrase from a tampered manifest (reveals nothing about the keys)
    salt: bytes

    @classmethod
    def derive(cls, passphrase: bytes, salt: bytes | None = None) -> Keys:
        salt = salt or secrets.token_bytes(16)
        register(passphrase)  # redacted from every output the harness writes (harness.reports.redact)
        raw = _scrypt(passphrase, salt)

        def sub(label: bytes) -> bytes:
            return hmac.new(raw[32:], b"devstack-harness " + label, hashlib.sha256).digest()

        return cls(enc=raw[:32], mac=sub(b"manifest"), fingerprint=sub(b"fingerprint"),
                   check=sub(b"passphrase check").hex()[:16], salt=salt)

    def describe(self) -> dict[str, Any]:
        return {"cipher": "AES-256-GCM", "nonce_bytes": NONCE_BYTES, "aad": "<backup id>/<artifact path>",
                "kdf": "scrypt", **dict(SCRYPT), "salt": self.salt.hex(), "manifest_mac": MAC_ALG,
                "check": self.check}

    def encrypt(self, data: bytes, aad: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(self.enc).encrypt(nonce, data, aad.encode())

    def decrypt(self, blob: bytes, aad: str) -> bytes:
        try:
            return AESGCM(self.enc).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode())
        except (InvalidTag, ValueError):
            raise BackupError(f"{aad}: decryption failed (the file was altered, or moved here from another "
                              "backup or path)") from None


def artifact_aad(stored_in: str, name: str) -> str:
    """The AEAD associated data of an artifact: the backup that stored it and its path there."""
    return f"{stored_in}/{name}"


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
    fingerprint: str  # of the content (HMAC under the fingerprint key when encrypted), for incrementals
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
        """The manifest in ``raw``; ``BackupError`` naming the first thing that is not what the harness writes
        (bad JSON, another schema, a field unknown, missing or of the wrong type)."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise BackupError(str(exc)) from None
        if not isinstance(data, dict):
            raise BackupError("not a JSON object")
        if data.get("schema") != SCHEMA:
            raise BackupError(f"manifest schema {data.get('schema')} is not supported (expected {SCHEMA}; schema 1 "
                              "backups let manifest.sig choose its own check and cannot be trusted)")
        problem = _shape_problem(data)
        if problem is not None:
            raise BackupError(problem)
        data["artifacts"] = [Artifact(**a) for a in data["artifacts"]]
        return cls(**data)


Check = Callable[[Any], str | None]  # a field's value -> "<what it is>, not <what it must be>", or None if fine


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _of(types: tuple[type, ...], wanted: str) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        return None if ok else f"{_kind(value)}, not {wanted}"
    return check


def _backup_id_or(null: bool) -> Check:
    wanted = "a backup id or null" if null else "a backup id"

    def check(value: Any) -> str | None:
        if (value is None and null) or (isinstance(value, str) and _BACKUP_ID.fullmatch(value)):
            return None
        return f"{value!r}, not {wanted}" if isinstance(value, str) else f"{_kind(value)}, not {wanted}"
    return check


def _size(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value >= 0 else f"{value}, not an integer >= 0"
    return f"{_kind(value)}, not an integer >= 0"


def _backup_type(value: Any) -> str | None:
    return None if value in ("full", "incremental") else f"{value!r}, not full or incremental"


def _names(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"{_kind(value)}, not a list of service names"
    odd = [v for v in value if not isinstance(v, str)]
    return f"a list with {_kind(odd[0])}, not a list of service names" if odd else None


_STR, _OBJECT = _of((str,), "a string"), _of((dict,), "an object")
_MANIFEST_FIELDS: dict[str, Check] = {
    "schema": _of((int,), "an integer"), "id": _backup_id_or(null=False), "created": _STR, "type": _backup_type,
    "parent": _backup_id_or(null=True), "services": _names, "versions": _OBJECT,
    "encryption": _of((dict, type(None)), "an object or null"), "artifacts": _of((list,), "a list"),
    "totals": _OBJECT}
_ARTIFACT_FIELDS: dict[str, Check] = {
    "service": _STR, "name": _STR, "stored_in": _backup_id_or(null=False), "size": _size, "sha256": _STR,
    "fingerprint": _STR, "encrypted": _of((bool,), "true or false"), "duration_s": _of((int, float), "a number"),
    "meta": _OBJECT}


def _shape_problem(data: dict[str, Any]) -> str | None:
    """The first field of a parsed manifest that is not what the harness writes, named; None when all are. What
    a manifest holds reaches paths, tables and arithmetic: none of it is used before this check."""
    artifacts = data.get("artifacts")
    records = [("", _MANIFEST_FIELDS, data)] + [(f"artifacts[{i}] ", _ARTIFACT_FIELDS, art) for i, art in
                                               enumerate(artifacts if isinstance(artifacts, list) else [])]
    for where, fields, record in records:
        if not isinstance(record, dict):
            return f"{where.strip()} is {_kind(record)}, not an object"
        unknown = sorted(set(record) - set(fields))
        if unknown:
            return f"{where}unknown field {unknown[0]!r}"
        for key, check in fields.items():
            problem = check(record[key]) if key in record else "missing"
            if problem is not None:
                return f"{where}field {key!r} is {problem}"
    return None


def new_backup_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(2)}"


def sign_manifest(backup_id: str, raw: bytes, keys: Keys | None) -> dict[str, str]:
    """``manifest.sig``: HMAC-SHA256 over the backup id and the manifest (encrypted), else a plain SHA-256."""
    if keys is None:
        return {"alg": PLAIN_ALG, "value": _sha256(raw)}
    message = b"devstack-harness manifest\0" + backup_id.encode() + b"\0" + raw
    return {"alg": MAC_ALG, "value": hmac.new(keys.mac, message, hashlib.sha256).hexdigest()}


def write_backup(root: Path, manifest: Manifest, files: Mapping[str, bytes], keys: Keys | None) -> Path:
    """Write the stored files, the manifest and its signature (directories 0700, files 0600)."""
    directory = root / manifest.id
    directory.mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    for name, blob in files.items():
        write_file(directory / name, blob)
    raw = manifest.to_json()
    write_file(directory / "manifest.json", raw)
    write_file(directory / "manifest.sig", json.dumps(sign_manifest(manifest.id, raw, keys)))
    return directory


def _manifest_problems(directory: Path, backup_id: str, raw: bytes, data: dict[str, Any],
                       keys: Keys | None) -> list[str]:
    """Everything wrong with a manifest and its signature, each named. ``keys`` (None for a backup that is
    unencrypted and opened without a passphrase) decides the required check; ``manifest.sig`` never does."""
    problems = []
    expected = sign_manifest(backup_id, raw, keys)
    try:
        sig = json.loads((directory / "manifest.sig").read_bytes())
    except FileNotFoundError:
        problems.append("signature missing: manifest.sig was deleted")
    except (ValueError, OSError) as exc:
        problems.append(f"signature unreadable: manifest.sig ({type(exc).__name__})")
    else:
        alg = sig.get("alg") if isinstance(sig, dict) else None
        if keys is not None and alg != MAC_ALG:
            problems.append(f"algorithm downgrade: manifest.sig says {alg!r}, but an encrypted backup must carry "
                            f"{MAC_ALG} over its manifest")
        elif keys is None and alg == MAC_ALG:
            problems.append(f"encryption block missing: manifest.sig holds an {MAC_ALG} but the manifest has no "
                            "encryption block (it was removed; give --passphrase-file to check the HMAC)")
        elif alg != expected["alg"]:
            problems.append(f"signature algorithm {alg!r} is not the {expected['alg']} this backup needs")
        elif not hmac.compare_digest(expected["value"], str(sig.get("value"))):
            problems.append("signature mismatch: manifest.sig does not match this manifest (the manifest was "
                            "edited, or the signature comes from another backup)")
    if data.get("id") != backup_id:
        problems.append(f"wrong backup id: the manifest names backup {data.get('id')!r} but lies in {backup_id} "
                        "(copied from another backup)")
    artifacts = data.get("artifacts")
    for art in artifacts if isinstance(artifacts, list) else []:
        name = art.get("name") if isinstance(art, dict) else None
        if not isinstance(name, str) or not _ARTIFACT_PATH.fullmatch(name):
            problems.append(f"bad artifact path: {name!r} is not <service>/<file>")
        elif art.get("service") != name.split("/", 1)[0]:
            problems.append(f"artifact under another service: {name} is marked as service {art.get('service')!r}")
        elif keys is not None and art.get("encrypted") is not True:
            problems.append(f"unencrypted artifact: {name} is marked unencrypted inside an encrypted backup")
        elif keys is None and art.get("encrypted"):
            problems.append(f"encryption block missing: {name} is marked encrypted but the manifest has no "
                            "encryption block")
    return problems


class _Opener:
    """Reads and authenticates manifests for one passphrase, deriving each salt's keys once."""

    def __init__(self, root: Path, passphrase: bytes | None) -> None:
        self.root = root
        self.passphrase = passphrase
        self._keys: dict[bytes, Keys] = {}

    def keys(self, backup_id: str, data: dict[str, Any]) -> Keys | None:
        """The keys of a backup; None for an unencrypted one opened without a passphrase."""
        enc = data.get("encryption")
        if not enc:
            if self.passphrase is not None:
                raise ManifestTampered(backup_id, [
                    "encryption block missing: a passphrase was given but the manifest has no encryption block (it "
                    "was removed, or this backup was made without --encrypt: verify that one without "
                    "--passphrase-file)"])
            return None
        if self.passphrase is None:
            raise ConfigError(f"backup {backup_id} is encrypted: give --passphrase-file")
        try:
            salt, check = bytes.fromhex(str(enc["salt"])), str(enc["check"])
        except (TypeError, KeyError, ValueError):
            raise ManifestTampered(backup_id, ["encryption block unreadable: no valid salt and check"]) from None
        if salt not in self._keys:
            self._keys[salt] = Keys.derive(self.passphrase, salt)
        keys = self._keys[salt]
        if not hmac.compare_digest(keys.check, check):
            raise WrongPassphrase(f"wrong passphrase for backup {backup_id} (or its encryption block was altered)")
        return keys

    def open(self, backup_id: str) -> tuple[Manifest, Keys | None]:
        """The authenticated manifest of a backup and its keys; raises on any problem."""
        if not _BACKUP_ID.fullmatch(backup_id):
            raise NoSuchBackup(f"not a backup id: {backup_id!r} (ids look like 20261121T181516.123456Z-3fa2)")
        directory = self.root / backup_id
        if not (directory / "manifest.json").is_file():
            raise NoSuchBackup(f"no backup {backup_id} in {self.root}")
        try:
            raw = (directory / "manifest.json").read_bytes()
        except OSError as exc:
            raise ManifestTampered(backup_id, [f"manifest unreadable: {exc.strerror}"]) from None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ManifestTampered(backup_id, [f"manifest unreadable: {exc}"]) from None
        if not isinstance(data, dict):
            raise ManifestTampered(backup_id, ["manifest unreadable: not a JSON object"])
        keys = self.keys(backup_id, data)
        problems = _manifest_problems(directory, backup_id, raw, data, keys)
        if problems:
            raise ManifestTampered(backup_id, problems)
        try:
            return Manifest.from_json(raw), keys
        except BackupError as exc:
            raise ManifestTampered(backup_id, [f"manifest unreadable: {exc}"]) from None


def list_backups(root: Path) -> list[Manifest]:
    """Every backup's manifest as written (a listing; nothing here is authenticated -- verify does that)."""
    found = []
    for path in sorted(root.glob("*/manifest.json")) if root.is_dir() else []:
        try:
            found.append(Manifest.from_json(path.read_bytes()))
        except (BackupError, OSError):
            continue
    return found


# --------------------------------------------------------------------------------------- completeness


def required_artifacts(service: str) -> tuple[str, ...]:
    """The artifacts (names or ``fnmatch`` patterns) every backup of ``service`` must hold: Vault's here, every
    other service's in its spec's ``backup_ops.artifacts``."""
    if service == VAULT:
        return VAULT_ARTIFACTS
    ops = registry.get(service).backup_ops
    return ops.artifacts if ops is not None else ()


def incomplete(services: Iterable[str], names: Collection[str]) -> list[str]:
    """What a backup of ``services`` that holds the artifacts ``names`` lacks, each as ``<service>: <problem>``
    (``postgres: missing artifact postgres/devstack.dump``); registry order, services it does not know last."""
    wanted = set(services)
    problems = []
    for service in [s for s in registry.names() if s in wanted] + sorted(wanted - set(registry.names())):
        if service not in registry.names():
            problems.append(f"{service}: not a registered service (registered: {', '.join(registry.names())}): its "
                            "artifacts can be neither checked nor restored")
            continue
        own = sorted(n for n in names if n.split("/", 1)[0] == service)
        problems += [f"{service}: missing artifact {pattern}" for pattern in required_artifacts(service)
                     if not any(fnmatch.fnmatchcase(name, pattern) for name in own)]
        ops = registry.get(service).backup_ops
        if ops is not None and ops.completeness is not None:
            problems += [f"{service}: {problem}" for problem in ops.completeness(own)]
    return problems


# --------------------------------------------------------------------------------------------- verify


@dataclass
class Finding:
    artifact: str
    status: str  # ok | checksum mismatch | missing | unreadable | unexpected extra file | manifest tampered |
    # bad format | incomplete
    detail: str = ""


FormatCheck = Callable[[str, bytes], str | None]


def verify(root: Path, backup_id: str, passphrase: bytes | None = None,
           format_check: FormatCheck | None = None) -> list[Finding]:
    """Authenticate the manifest (HMAC when encrypted, see the module doc), then check every artifact of the
    chain (size, SHA-256, decryption, format) and look for files the manifest does not know. The first finding
    says whether the manifest is authenticated; any problem is a finding whose status is not ``ok``.
    :class:`NoSuchBackup` when ``backup_id`` is not a backup (a missing parent is a finding)."""
    return _Verifier(root, passphrase, format_check).run(backup_id)


class _Verifier:
    def __init__(self, root: Path, passphrase: bytes | None, format_check: FormatCheck | None) -> None:
        self.root = root
        self.opener = _Opener(root, passphrase)
        self.format_check = format_check

    def run(self, backup_id: str, keep: dict[str, tuple[Artifact, bytes]] | None = None) -> list[Finding]:
        """Findings for the backup and its chain; with ``keep``, the checked plaintext of each artifact."""
        return self._chain(backup_id, (), keep)[0]

    def _chain(self, backup_id: str, children: tuple[str, ...],
               keep: dict[str, tuple[Artifact, bytes]] | None) -> tuple[list[Finding], set[str]]:
        if backup_id in children:
            return [Finding("manifest.json", "manifest tampered",
                            f"chain loop: {' -> '.join(children)} -> {backup_id}")], set()
        try:
            manifest, keys = self.opener.open(backup_id)
        except NoSuchBackup as exc:
            if not children:
                raise
            return [Finding("manifest.json", "missing", str(exc))], {backup_id}
        except ManifestTampered as exc:
            return [Finding("manifest.json", "manifest tampered", p) for p in exc.problems], {backup_id}
        except WrongPassphrase as exc:
            return [Finding("manifest.json", "wrong passphrase", str(exc))], {backup_id}
        except BackupError as exc:
            return [Finding("manifest.json", "missing", str(exc))], {backup_id}
        findings = [Finding("manifest.json", "ok", AUTHENTICATED if keys is not None else NOT_AUTHENTICATED)]
        chain = {backup_id}
        if manifest.parent:
            parent, chain_above = self._chain(manifest.parent, (*children, backup_id), None)
            findings += [Finding(f"{manifest.parent}/{f.artifact}", f.status, f.detail)
                         for f in parent if f.status != "ok"]
            chain |= chain_above | {manifest.parent}
        directory = self.root / backup_id
        known = {"manifest.json", "manifest.sig"} | {a.name for a in manifest.artifacts if a.stored_in == backup_id}
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            rel = path.relative_to(directory).as_posix()
            if rel not in known:
                findings.append(Finding(rel, "unexpected extra file"))
        for art in manifest.artifacts:
            label = art.name if art.stored_in == backup_id else f"{art.name} (in {art.stored_in})"
            if art.stored_in not in chain:
                findings.append(Finding(label, "manifest tampered",
                                        f"artifact outside the chain: stored in {art.stored_in}, which is neither "
                                        f"{backup_id} nor one of its parents"))
                continue
            finding, plain = self._artifact(label, art, keys)
            findings.append(finding)
            if keep is not None and plain is not None:
                keep[art.name] = (art, plain)
        findings += [Finding("manifest.json", "incomplete", problem) for problem in
                     incomplete([*manifest.services, *(a.service for a in manifest.artifacts)],
                                [a.name for a in manifest.artifacts])]
        return findings, chain

    def _artifact(self, label: str, art: Artifact, keys: Keys | None) -> tuple[Finding, bytes | None]:
        path = self.root / art.stored_in / art.name
        if not path.is_file():
            return Finding(label, "missing"), None
        try:
            blob = path.read_bytes()  # read once: what is checked is what a restore gets
        except OSError as exc:
            return Finding(label, "unreadable", exc.strerror or type(exc).__name__), None
        if len(blob) != art.size or _sha256(blob) != art.sha256:
            return Finding(label, "checksum mismatch",
                           f"stored bytes differ from the manifest: {len(blob)} bytes, sha256 {_sha256(blob)[:12]}…; "
                           f"the manifest says {art.size} bytes, {art.sha256[:12]}… (replaced, moved from another "
                           "backup, or corrupted)"), None
        if keys is not None:
            try:
                blob = keys.decrypt(blob, artifact_aad(art.stored_in, art.name))
            except BackupError as exc:
                return Finding(label, "checksum mismatch", str(exc)), None
        if self.format_check is not None:
            bad = self.format_check(art.name, blob)
            if bad:
                return Finding(label, "bad format", bad), None
        return Finding(label, "ok"), blob


def vault_format_check(name: str, data: bytes) -> str | None:
    """Vault's artifacts: a gzip raft snapshot, and the keys bundle as
    :func:`harness.backup.orchestration.restore_vault` reads it (the unseal keys and threshold, the root token, the
    bootstrap record's fields)."""
    if name == VAULT_SNAPSHOT:
        return None if data.startswith(b"\x1f\x8b") else "not a gzip raft snapshot"
    if name != VAULT_KEYS:
        return None
    from harness.trust.bootstrap import BootstrapResult

    try:
        bundle = json.loads(data)
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    init = bundle.get("init") if isinstance(bundle, dict) else None
    bootstrap = bundle.get("bootstrap") if isinstance(bundle, dict) else None
    if not isinstance(init, dict) or not isinstance(bootstrap, dict):
        return "not an object with init and bootstrap objects"
    keys, threshold = init.get("keys"), init.get("threshold")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        return "init.keys is not a list of unseal keys"
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 1 <= threshold <= len(keys):
        return "init.threshold is not a number from 1 to the number of keys"
    if not isinstance(init.get("root_token"), str) or not isinstance(init.get("shares"), int):
        return "init.root_token or init.shares is missing"
    fields = dataclasses.fields(BootstrapResult)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    optional = [f.name for f in fields if f.name not in required]
    if not set(required) <= set(bootstrap) <= {f.name for f in fields}:
        return f"bootstrap does not hold exactly {', '.join(required)} (and {', '.join(optional)})"
    if not isinstance(bootstrap["admin_token"], str):
        return "bootstrap.admin_token is not a string"
    return None


def is_authenticated(findings: list[Finding]) -> bool:
    """Whether :func:`verify` authenticated the manifest (checked its HMAC under the passphrase's key)."""
    return bool(findings) and findings[0].status == "ok" and findings[0].detail == AUTHENTICATED


def basic_format_check(name: str, data: bytes) -> str | None:
    """Cheap local checks of each artifact kind (no server needed): the service's own ``format_check`` where its
    spec declares one (artifacts are named ``<service>/...``), else checks by file extension."""
    service = name.split("/", 1)[0]
    if service == VAULT:
        return vault_format_check(name, data)
    ops = registry.get(service).backup_ops if service in registry.names() else None
    if ops is not None and ops.format_check is not None:
        return ops.format_check(name, data)
    if name.endswith(".dump") and not data.startswith(b"PGDMP"):
        return "not a pg_dump custom-format archive (no PGDMP header)"
    if name.endswith(".sql") and b"-- " not in data[:200]:
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


def refusal(backup_id: str, findings: list[Finding], what: str = "") -> BackupError | None:
    """The error naming every problem of :func:`verify`'s findings (``what`` says what follows from it), or None
    when there is none."""
    bad = [f for f in findings if f.status != "ok"]
    if not bad:
        return None
    if bad[0].status == "wrong passphrase":
        return WrongPassphrase(bad[0].detail)
    return BackupError(f"backup {backup_id} does not verify{', ' + what if what else ''}: "
                       + "; ".join(f"{f.artifact}: {f.status}: {f.detail}".rstrip(": ") for f in bad))


# ---------------------------------------------------------------------------------------------- create


def build_backup(root: Path, captured: Iterable[Captured], *, services: list[str], versions: dict[str, str],
                 passphrase: bytes | None, parent_id: str | None = None) -> Manifest:
    """Encrypt (optionally), deduplicate against the parent chain (incremental) and write a backup."""
    t0 = time.monotonic()
    backup_id = new_backup_id()
    keys: Keys | None = None
    previous: dict[str, Artifact] = {}
    encryption = None
    if parent_id is not None:
        parent_file = root / parent_id / "manifest.json"
        if not parent_file.is_file():
            raise BackupError(f"no backup {parent_id} in {root}")
        try:
            parent_encrypted = bool(json.loads(parent_file.read_bytes()).get("encryption"))
        except (ValueError, AttributeError):
            parent_encrypted = False  # unreadable: the verification below names it
        if parent_encrypted != (passphrase is not None):
            raise ConfigError("an incremental backup must use the same encryption (and passphrase) as its parent")
        # The whole parent chain must verify: the new manifest re-signs the parents' checksums.
        verifier = _Verifier(root, passphrase, None)
        refused = refusal(parent_id, verifier.run(parent_id), "so no incremental is built on it")
        if refused is not None:
            raise refused
        parent, keys = verifier.opener.open(parent_id)  # one scrypt derivation, reused below
        encryption = parent.encryption
        previous = {a.name: a for a in parent.artifacts}
    elif passphrase is not None:
        keys = Keys.derive(passphrase)
    if keys is not None:
        encryption = keys.describe()
    artifacts: list[Artifact] = []
    files: dict[str, bytes] = {}
    for item in captured:
        content = item.stable if item.stable is not None else item.data
        fingerprint = (hmac.new(keys.fingerprint, content, hashlib.sha256).hexdigest() if keys else _sha256(content))
        old = previous.get(item.name)
        if old is not None and old.fingerprint == fingerprint:
            artifacts.append(Artifact(item.service, item.name, old.stored_in, old.size, old.sha256, fingerprint,
                                      old.encrypted, item.duration_s, {**item.meta, "unchanged_since": old.stored_in}))
            continue
        blob = keys.encrypt(item.data, artifact_aad(backup_id, item.name)) if keys else item.data
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


def read_artifacts(root: Path, backup_id: str, passphrase: bytes | None, *,
                   allow_unauthenticated: bool = False) -> dict[str, tuple[Artifact, bytes]]:
    """Every artifact of a backup (resolving the incremental chain), decrypted, exactly the bytes that were
    verified (format checks included: no service's restore code gets content it cannot read); refuses
    (``BackupError`` naming each problem) on anything ``verify`` finds, then (:class:`NotAuthenticated`) a backup
    that verifies but is not authenticated, unless ``allow_unauthenticated``."""
    keep: dict[str, tuple[Artifact, bytes]] = {}
    findings = _Verifier(root, passphrase, basic_format_check).run(backup_id, keep)
    refused = refusal(backup_id, findings, "nothing restored")
    if refused is not None:
        raise refused
    if not is_authenticated(findings) and not allow_unauthenticated:
        raise NotAuthenticated(backup_id)
    return keep


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
