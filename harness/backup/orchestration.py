"""Backup orchestration: which services a backup holds, in which order, and Vault's part.

Each service's own capture, restore and version live in its module in ``stack/`` (``SPEC.backup_ops``, a
:class:`~stack.backup_ops.BackupOps`); this module walks the registry in order over the running services:

* a service whose spec says ``backup=False`` is skipped and reported ("not backed up: no backup capability"),
  and refused by name when ``--services`` asks for it;
* a service with ``backup=True`` but no ``backup_ops`` is refused by name (``MissingCapability``) before
  anything is captured or restored;
* Vault, the root of trust, is captured and restored here (and first): a raft snapshot, and the unseal keys
  plus the harness's bootstrap record (admin token, AppRole credentials) needed to use the restored Vault:
  encrypted with everything else when encryption is on, otherwise stored like every artifact (0600 in a 0700
  directory) -- say so to whoever holds the backup. After a restore, the running servers' current
  credentials (each spec's ``backup_ops.live_credentials``) are written back into the restored KV.

Files written into a container for one step (option files with passwords, dumps to restore) are removed when
the step ends, also when it fails (:func:`stack.backup_ops.private_files`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from harness.backup.archive import VAULT, VAULT_KEYS, VAULT_SNAPSHOT, Artifact, BackupError, Manifest, incomplete
from harness.stacks.running import RunningStack
from stack import registry
from stack.backup_ops import RESTORE_DIR, BackupOps, BackupSource, Captured, StepFailed
from stack.service import MissingCapability

NOT_BACKED_UP = "not backed up: no backup capability"
__all__ = ["NOT_BACKED_UP", "RESTORE_DIR", "VAULT", "MissingBackupCapability", "create", "plan", "restorable",
           "restore", "restore_verified", "services_in"]


class MissingBackupCapability(MissingCapability, BackupError):
    """A service asked to back up or restore that declares no such capability (a ``BackupError`` too, so the
    CLI reports it as an error line naming service and capability)."""


def backup_ops(name: str) -> BackupOps:
    """The service's backup operations, or :class:`MissingCapability` naming what it lacks."""
    spec = registry.get(name)
    if not spec.backup:
        raise MissingBackupCapability(name, "backup",
                                      "set backup=True and backup_ops=BackupOps(...) in its ServiceSpec")
    if spec.backup_ops is None:
        raise MissingBackupCapability(name, "backup_ops", "give its ServiceSpec backup_ops=BackupOps(capture, "
                                                          "restore, version, ...) (stack.backup_ops)")
    return spec.backup_ops


def _source(t: RunningStack, name: str) -> BackupSource:
    def containers() -> list[Any]:
        found = t.containers(name)
        if not found:
            raise BackupError(f"no running {name} container in run {t.run_id}")
        return list(found)

    return BackupSource(t.endpoint(name), containers)


def plan(t: RunningStack, services: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The services to back up (registry order) and those skipped with the reason. Refuses, before anything is
    captured: services asked for that do not run, are not registered or lack the backup capability; running
    services that declare ``backup=True`` without ``backup_ops``."""
    running = t.running()
    missing = sorted(set(services or []) - set(running))
    if missing:
        raise BackupError(f"not running in this stack: {', '.join(missing)}")
    asked = set(services or running)
    for name in asked:
        registry.get(name)  # an unregistered name is refused, never silently left out
    wanted: list[str] = []
    skipped: dict[str, str] = {}
    for spec in registry.specs():
        if spec.name not in asked:
            continue
        if spec.name == VAULT:
            wanted.append(spec.name)
        elif not spec.backup and not services:
            skipped[spec.name] = NOT_BACKED_UP
        else:
            backup_ops(spec.name)
            wanted.append(spec.name)
    return wanted, skipped


# ------------------------------------------------------------------------------------------------ capture


def capture_service(t: RunningStack, name: str) -> list[Captured]:
    """One service's artifacts (Vault here, every other service through its spec's ``backup_ops``)."""
    if name == VAULT:
        return capture_vault(t)
    try:
        return backup_ops(name).capture(_source(t, name))
    except StepFailed as exc:
        raise BackupError(str(exc)) from exc


def capture_vault(t: RunningStack) -> list[Captured]:
    ep = t.endpoint(VAULT)
    t0 = time.monotonic()
    resp = requests.get(f"{ep.url}/v1/sys/storage/raft/snapshot", headers={"X-Vault-Token": ep.token}, timeout=60)
    if resp.status_code != 200:
        raise BackupError(f"raft snapshot answered {resp.status_code}: {resp.text[:200]}")
    seconds = round(time.monotonic() - t0, 3)
    bundle = {"init": json.loads((t.state_dir / "vault-init.json").read_text()),
              "bootstrap": json.loads((t.state_dir / "vault-bootstrap.json").read_text())}
    return [Captured(VAULT, VAULT_SNAPSHOT, resp.content, seconds, {"tool": "sys/storage/raft/snapshot"}),
            Captured(VAULT, VAULT_KEYS, json.dumps(bundle, sort_keys=True).encode(), 0.0,
                     {"holds": "unseal keys, admin token, AppRole credentials"})]


def _version(t: RunningStack, name: str) -> str:
    try:
        ep = t.endpoint(name)
        if name == VAULT:
            return str(ep.client().sys.read_health_status(method="GET").get("version"))
        return backup_ops(name).version(ep)
    except Exception as exc:  # a version is descriptive; its absence must not stop a backup
        return f"unknown ({type(exc).__name__})"


def create(t: RunningStack, root: Path, services: list[str] | None, passphrase: bytes | None,
           parent_id: str | None = None, log: Callable[[str], None] | None = None) -> Manifest:
    """Back up the running services (or ``services``) into a new backup under ``root``; ``log`` hears which
    running services are not backed up and why. A capture without every artifact its service declares writes
    nothing."""
    from harness.backup.archive import build_backup

    wanted, skipped = plan(t, services)
    for name, reason in skipped.items():
        (log or (lambda _line: None))(f"{name}: {reason}")
    captured: list[Captured] = []
    for name in wanted:
        captured += capture_service(t, name)
    problems = incomplete(wanted, [item.name for item in captured])
    if problems:
        raise BackupError("backup incomplete, nothing written: " + "; ".join(problems))
    versions = {name: _version(t, name) for name in wanted}
    return build_backup(root, captured, services=wanted, versions=versions, passphrase=passphrase,
                        parent_id=parent_id)


# ------------------------------------------------------------------------------------------------ restore


def restore_service(t: RunningStack, name: str, files: dict[str, bytes]) -> None:
    """Put one service's artifacts back (Vault here, every other service through its spec's ``backup_ops``)."""
    if name == VAULT:
        restore_vault(t, files)
        return
    try:
        backup_ops(name).restore(_source(t, name), files)
    except StepFailed as exc:
        raise BackupError(str(exc)) from exc


def restore_vault(t: RunningStack, files: dict[str, bytes], timeout: float = 60) -> None:
    """Force-restore the raft snapshot, unseal with the backup's keys, make the harness use the backup's admin
    token and AppRole credentials (the stack's ``adopt_vault``), and write the live servers' credentials into the
    restored KV."""
    import hvac

    from stack.waiting import poll

    ep = t.endpoint(VAULT)
    bundle = json.loads(files[VAULT_KEYS])
    resp = requests.post(f"{ep.url}/v1/sys/storage/raft/snapshot-force", data=files[VAULT_SNAPSHOT],
                         headers={"X-Vault-Token": ep.token}, timeout=120)
    if resp.status_code not in (200, 204):
        raise BackupError(f"raft snapshot-force answered {resp.status_code}: {resp.text[:300]}")
    client = hvac.Client(url=ep.url, timeout=10)
    restored_admin = hvac.Client(url=ep.url, token=bundle["bootstrap"]["admin_token"], timeout=10)

    def restored() -> bool:
        # The restore seals Vault asynchronously (a snapshot from another cluster brings that cluster's keyring),
        # so "unsealed" alone proves nothing: ready means unsealed *and* the backup's admin token is valid.
        health: dict[str, Any] = requests.get(f"{ep.url}/v1/sys/health", params={"sealedcode": 200,
                                              "standbycode": 200, "uninitcode": 200}, timeout=5).json()
        if health.get("sealed"):
            for key in bundle["init"]["keys"][: bundle["init"]["threshold"]]:
                client.sys.submit_unseal_key(key)
            return False
        restored_admin.auth.token.lookup_self()
        return True

    poll(restored, what="the restored Vault to be unsealed (with the backup's keys) and to accept the backup's "
         "admin token", timeout=timeout, accept=bool,
         hint="a snapshot from another cluster needs that cluster's unseal keys, which the backup carries")
    t.adopt_vault(bundle["init"], bundle["bootstrap"])
    admin = t.endpoint(VAULT).client()
    for name in t.running():
        if name == VAULT:
            continue
        live = t.endpoint(name)
        ops = registry.get(name).backup_ops
        secret = admin.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                         raise_on_deleted_version=True)["data"]["data"]
        for field in ops.live_credentials if ops is not None else ("password",):
            secret[field] = getattr(live, field)
        admin.secrets.kv.v2.create_or_update_secret(path=name, secret=secret, mount_point="secret")


def restore(t: RunningStack, root: Path, backup_id: str, passphrase: bytes | None,
            services: list[str] | None, *, allow_unauthenticated: bool = False) -> dict[str, float]:
    """Verify, then restore each service of the backup that runs in ``t``; returns seconds per service. A backup
    that does not verify is refused before anything of ``t`` is touched, and so is one that is not authenticated
    (no passphrase: an unencrypted backup) unless ``allow_unauthenticated``."""
    from harness.backup.archive import read_artifacts

    artifacts = read_artifacts(root, backup_id, passphrase, allow_unauthenticated=allow_unauthenticated)
    return restore_verified(t, artifacts, services)


def services_in(artifacts: dict[str, tuple[Artifact, bytes]]) -> list[str]:
    """The services a backup holds, in restore order (the registry's; any it does not know last, so that the
    restore names them instead of leaving them out)."""
    held = {art.service for art, _ in artifacts.values()}
    known = [s for s in registry.names() if s in held]
    return known + sorted(held - set(known))


def restorable(artifacts: dict[str, tuple[Artifact, bytes]], services: list[str] | None) -> list[str]:
    """The services of ``artifacts`` to restore (``services``, or all it holds), in restore order; refuses a
    service asked for that the backup does not hold, and a service without every artifact it declares."""
    held = services_in(artifacts)
    not_held = [s for s in services or [] if s not in held]
    if not_held:
        raise BackupError(f"the backup holds no {', '.join(not_held)} (it holds {', '.join(held)}); nothing restored")
    wanted = [s for s in held if services is None or s in services]
    problems = incomplete(wanted, [name for name, (art, _) in artifacts.items() if art.service in wanted])
    if problems:
        raise BackupError("backup incomplete, nothing restored: " + "; ".join(problems))
    return wanted


def restore_verified(t: RunningStack, artifacts: dict[str, tuple[Artifact, bytes]],
                     services: list[str] | None) -> dict[str, float]:
    """Restore artifacts returned by :func:`harness.backup.archive.read_artifacts` (verified) into ``t``. Refused before
    anything of ``t`` is touched: what :func:`restorable` refuses, a service that does not run in ``t`` or lacks
    the backup capability."""
    wanted = restorable(artifacts, services)
    not_running = [s for s in wanted if s not in t.running()]
    if not_running:
        raise BackupError(f"the target stack does not run {', '.join(not_running)}; start it first")
    for name in wanted:
        if name != VAULT:
            backup_ops(name)  # every service can be restored, or nothing is touched
    timings = {}
    for name in wanted:
        files = {n: data for n, (art, data) in artifacts.items() if art.service == name}
        t0 = time.monotonic()
        restore_service(t, name, files)
        timings[name] = round(time.monotonic() - t0, 3)
    return timings
