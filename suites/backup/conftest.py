"""What the backup round trips seed, check and fingerprint, per service, and the round trip itself.

Each backed-up service declares its seed in its module (``SPEC.backup_ops.seed``, a
:class:`~stack.backup_ops.BackupSeed`; Vault's is in ``harness.drills.upgrade``): deterministic data written with every
step checked, a list of the seeded objects missing from a stack, fingerprints to compare at backup time and after a
restore, and optionally a marker written before the backup (must come back) and after it (must not).
:func:`run_round_trip` seeds a stack of its own with some services, backs it up encrypted, removes it (containers,
network, Vault), starts a fresh one and restores into it. The whole-stack round trip (``test_backup_restore.py``)
and the per-service round trips (``test_backup_per_service.py``) both use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness.backup.archive import basic_format_check, verify
from harness.backup.orchestration import create, restore
from harness.drills.upgrade import fingerprints, missing_seed, seed, seed_of
from harness.stacks.engine import Stack

# The seeds (Vault's and every service's, ``seed_of``) live in harness.drills.upgrade: the upgrade drill proves the same
# data across release lines.


def write_marker(stack: Stack, services: list[str], label: str) -> None:
    for name in services:
        mark = seed_of(name).mark
        if mark is not None:
            mark(stack, label)


def run_round_trip(settings: Any, services: list[str], root: Path, passphrase: bytes,
                   benchmarks: dict[str, Any], key: str) -> Iterator[dict[str, Any]]:
    """Seed a stack of its own running ``services``, back it up (encrypted) into ``root``, write more data (must
    not come back), remove the stack, restore into a fresh one and yield what the tests compare.

    The fresh stack (new containers, network and Vault; nothing shared with the source) starts in a thread beside
    the source, which saves most of one stack start per round trip; the source is removed before the restore
    begins, so the restore cannot lean on anything of it."""
    source = Stack(settings)
    fresh = Stack(settings)
    starting: Future[None] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fresh-stack") as pool:
        try:
            try:
                source.resolve(services)  # images only: a service without one skips before anything starts
                for name in services:
                    reason = source.unavailable_reason(name)
                    if reason is not None:
                        pytest.skip(reason=f"{name} unavailable here: {reason}")
                starting = pool.submit(fresh.start, services)
                source.start(services)
                seed(source, services)
                write_marker(source, services, "canary")
                missing_at_backup = missing_seed(source, services)
                expected = fingerprints(source, services)
                t0 = time.monotonic()
                manifest = create(source, root, None, passphrase)
                backup_s = time.monotonic() - t0
                write_marker(source, services, "after")  # taken after the backup: must not come back
            finally:
                source.close()  # the whole stack is gone: containers, network, Vault
                if starting is not None:
                    starting.result()  # the fresh stack's start error, if any, after the source is gone
            t0 = time.monotonic()
            findings = verify(root, manifest.id, passphrase, basic_format_check)
            verify_s = time.monotonic() - t0
            missing_in_empty_stack = missing_seed(fresh, services)  # the control: the check finds the seed absent
            fresh_passwords = {n: fresh.endpoint(n).password for n in services if n != "vault"}
            t0 = time.monotonic()
            timings = restore(fresh, root, manifest.id, passphrase, None)
            restore_s = time.monotonic() - t0
            benchmarks[key] = {
                "backup_s": round(backup_s, 2), "verify_s": round(verify_s, 3), "restore_s (RTO)": round(restore_s, 2),
                "restore_per_service_s": timings, "stored_bytes": manifest.totals["stored_bytes"],
                "artifacts": {a.name: a.size for a in manifest.artifacts}}
            yield {"root": root, "manifest": manifest, "expected": expected,
                   "restored": fingerprints(fresh, services), "findings": findings, "fresh": fresh,
                   "passphrase": passphrase, "fresh_passwords": fresh_passwords, "services": services,
                   "missing": {"at backup": missing_at_backup, "after restore": missing_seed(fresh, services),
                               "in an empty stack": missing_in_empty_stack}}
        finally:
            fresh.close()


@pytest.fixture(scope="session")
def backup_round_trip() -> Callable[..., Iterator[dict[str, Any]]]:
    """:func:`run_round_trip`, for the round-trip fixtures of the backup test modules."""
    return run_round_trip
