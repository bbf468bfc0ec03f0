"""The upgrade drill: data seeded on one Debian release line, backed up with the harness's own backup code, restored
into a fresh stack of another line, and proven there.

``python -m harness drill upgrade --from bookworm --to sid [--services LIST] [--flavor SERVICE=FLAVOR]`` runs one
*pair* per service (Vault and the service on a stack of the old line; the backup; a fresh stack of the new line;
the restore). Per pair: the servers and the versions they reported, what carried over (each fingerprint of the
service's backup seed, :class:`stack.backup_ops.BackupSeed`, equal on both sides), what did not and why (a
fingerprint that differs, a seeded object missing, a step that failed), and the time taken. Vault (OpenBao) is in
every pair: its snapshot goes back into the same OpenBao on the new line, and its seed (below) is compared too.

A pair passes when everything carried over. A pair that fails is a failure of the drill (exit 1) unless the
service's module lists it as a known gap (``BackupOps.upgrade_gaps``: ``"<from flavor>-><to flavor>"`` -> why),
in which case the report says so with the reason: reported, not hidden.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac.exceptions

from harness.settings import Settings
from harness.stacks.engine import Stack
from stack import registry
from stack.errors import HarnessError
from stack.service import MissingCapability

#: The Vault seed: a KV document every backup round trip and upgrade pair writes before the backup and finds again.
VAULT_SEED = {"colour": "teal", "n": 42}


def seed_vault(stack: Any) -> None:
    vault = stack.endpoint("vault").client()
    written = vault.secrets.kv.v2.create_or_update_secret(path="backup-seed", secret=VAULT_SEED, mount_point="secret")
    if written["data"]["version"] < 1:
        raise HarnessError(f"vault: writing backup-seed answered {written}")


def missing_vault(stack: Any) -> list[str]:
    try:
        kv = stack.endpoint("vault").client().secrets.kv.v2.read_secret_version(
            path="backup-seed", mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    except hvac.exceptions.InvalidPath:
        kv = None
    return [] if kv == VAULT_SEED else ["vault.kv backup-seed: absent or different"]


def fingerprints_vault(stack: Any) -> dict[str, str]:
    vault = stack.endpoint("vault").client()
    others = [name for name in stack.services if name != "vault"]
    return {
        "vault.kv": json.dumps(vault.secrets.kv.v2.read_secret_version(
            path="backup-seed", mount_point="secret", raise_on_deleted_version=True)["data"]["data"], sort_keys=True),
        "vault.ca": vault.read("pki_int/cert/ca")["data"]["certificate"],
        "vault.role_ids": json.dumps({s: vault.read(f"auth/approle/role/{s}/role-id")["data"]["role_id"]
                                      for s in others}, sort_keys=True)}


@dataclass(frozen=True)
class Seed:
    """A service's backup seed as a stack sees it: write it, list what of it is missing, fingerprint it, and
    optionally write a labelled marker."""

    seed: Callable[[Any], None]
    missing: Callable[[Any], list[str]]
    fingerprints: Callable[[Any], dict[str, str]]
    mark: Callable[[Any, str], None] | None = None


#: Vault, the root of trust, is backed up by the harness itself: its seed is here. Every other service declares
#: its own in its module (``SPEC.backup_ops.seed``).
VAULT = Seed(seed_vault, missing_vault, fingerprints_vault)


def seed_of(name: str) -> Seed:
    """The seed of a service, from its spec; a backed-up service without one fails naming the capability."""
    if name == "vault":
        return VAULT
    ops = registry.get(name).backup_ops
    declared = ops.seed if ops is not None else None
    if declared is None:
        raise MissingCapability(name, "backup_ops.seed",
                                "give its ServiceSpec backup_ops=BackupOps(..., seed=BackupSeed(...)) "
                                "(stack.backup_ops)")
    mark = declared.mark
    return Seed(lambda stack: declared.seed(stack.endpoint(name)),
                lambda stack: declared.missing(stack.endpoint(name)),
                lambda stack: declared.fingerprints(stack.endpoint(name)),
                None if mark is None else lambda stack, label: mark(stack.endpoint(name), label))


def seed(stack: Any, services: list[str]) -> None:
    """Deterministic data in every service of ``services``; every step checks its result."""
    for name in services:
        seed_of(name).seed(stack)


def missing_seed(stack: Any, services: list[str]) -> list[str]:
    """Every seeded object that is not in ``stack``, as ``<service>.<what>: <seen>`` (empty when all are)."""
    return [m for name in services for m in seed_of(name).missing(stack)]


def fingerprints(stack: Any, services: list[str]) -> dict[str, str]:
    return {k: v for name in services for k, v in seed_of(name).fingerprints(stack).items()}


@dataclass
class UpgradePair:
    """One service's upgrade from one release line to another, as measured."""

    service: str
    from_release: str
    to_release: str
    from_server: str = ""  # the product of each line's image (MariaDB 10.11, MySQL 9.7)
    to_server: str = ""
    from_version: str | None = None  # what each server reported
    to_version: str | None = None
    carried: list[str] = field(default_factory=list)  # fingerprints equal after the restore
    not_carried: dict[str, str] = field(default_factory=dict)  # what did not carry over -> why
    seconds: float | None = None
    known_gap: str | None = None  # the module's reason, when the pair is a listed known incompatibility
    problems: list[str] = field(default_factory=list)


def compare(expected: Mapping[str, str], restored: Mapping[str, str], missing: list[str]) -> tuple[list[str],
                                                                                                  dict[str, str]]:
    """(fingerprints that carried over, what did not -> why): a fingerprint must be equal after the restore, and
    no seeded object may be missing."""
    carried = sorted(k for k in expected if restored.get(k) == expected[k])
    not_carried = {k: "absent after the restore" if k not in restored else "differs after the restore"
                   for k in sorted(expected) if restored.get(k) != expected[k]}
    not_carried.update({m.split(":", 1)[0]: f"missing after the restore: {m}" for m in missing})
    return carried, not_carried


def pair_verdict(pair: UpgradePair) -> list[str]:
    """A pair's problems: anything that did not carry over (none when a known gap explains the pair)."""
    if not pair.not_carried or pair.known_gap:
        return []
    return [f"{pair.service} {pair.from_server} ({pair.from_release}) -> {pair.to_server} ({pair.to_release}): "
            f"{what}: {why}" for what, why in pair.not_carried.items()]


def _gap(name: str, old: Settings, new: Settings) -> str | None:
    ops = registry.get(name).backup_ops
    return None if ops is None else ops.upgrade_gaps.get(f"{old.image_of(name).flavor}->{new.image_of(name).flavor}")


def upgrade_pair(old: Settings, new: Settings, name: str, log: Callable[[str], None] = lambda _: None
                 ) -> UpgradePair:
    """Seed ``name`` (and Vault) on ``old``'s line, back them up, restore into a fresh stack of ``new``'s line."""
    from harness.backup.orchestration import _version, create, restore

    services = ["vault", name] if name != "vault" else ["vault"]
    pair = UpgradePair(name, old.release, new.release, old.image_of(name).product, new.image_of(name).product,
                       known_gap=_gap(name, old, new) if name != "vault" else None)
    passphrase = secrets.token_hex(16).encode()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dsh-upgrade-") as tmp:
        source = Stack(old)
        try:
            log(f"{name}: starting {pair.from_server} on {old.release}")
            source.start(services)
            seed(source, services)
            expected = fingerprints(source, services)
            pair.from_version = _version(source, name)
            manifest = create(source, Path(tmp), services, passphrase)
        finally:
            source.close()
        target = Stack(new)
        try:
            log(f"{name}: restoring into {pair.to_server} on {new.release}")
            target.start(services)
            pair.to_version = _version(target, name)
            try:
                restore(target, Path(tmp), manifest.id, passphrase, None)
            except HarnessError as exc:  # the pair could not be restored: reported with the step's own error
                pair.not_carried["restore"] = str(exc).splitlines()[0][:500]
            else:
                missing = missing_seed(target, services)
                restored: dict[str, str] = {}
                for s in services:
                    try:
                        restored.update(seed_of(s).fingerprints(target))
                    except Exception as exc:  # a fingerprint that cannot be read did not carry over: say why
                        pair.not_carried[f"{s} fingerprints"] = f"unreadable: {type(exc).__name__}: {exc}"[:300]
                pair.carried, not_carried = compare(expected, restored, missing)
                pair.not_carried.update(not_carried)
        finally:
            target.close()
    pair.seconds = round(time.monotonic() - t0, 1)
    pair.problems = pair_verdict(pair)
    return pair


def pair_lines(pairs: list[UpgradePair]) -> list[str]:
    """Each pair's table row, then what did not carry over and the known gaps with their reasons."""
    lines = ["service   from -> to                                        versions               carried  not  "
             "seconds  verdict"]
    for p in pairs:
        verdict = "ok" if not p.not_carried else ("known gap" if p.known_gap else "FAILED")
        lines.append(f"{p.service:9} {p.from_server} ({p.from_release}) -> {p.to_server} ({p.to_release})"
                     f"  {p.from_version} -> {p.to_version}  {len(p.carried):7}  {len(p.not_carried):3}  "
                     f"{p.seconds}  {verdict}")
    for p in pairs:
        for what, why in p.not_carried.items():
            lines.append(f"{p.service}: not carried over: {what}: {why}")
        if p.known_gap and p.not_carried:
            lines.append(f"{p.service}: known gap ({p.from_server} -> {p.to_server}): {p.known_gap}")
    return lines
