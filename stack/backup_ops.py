"""What a service's backup operations are, and the small tools they share (no harness imports).

A service module that can be backed up declares ``backup_ops=BackupOps(capture, restore, version,
artifacts=...)`` in its ``SPEC``; :mod:`harness.backup.orchestration` walks the registry and calls them, and ``backup
verify`` refuses a backup that lacks one of the declared artifacts. Each operation gets a
:class:`BackupSource` (the service's endpoint and, on demand, its containers) and reports a failed command as
:class:`StepFailed`, which the harness turns into its ``BackupError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: where files a backup or restore step needs inside a container live (removed when the step ends).
RESTORE_DIR = "/run/harness/restore"


class StepFailed(RuntimeError):
    """A command of a backup or restore step failed (the message names the tool and its exit code)."""


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


@dataclass(frozen=True)
class BackupSource:
    """One running service as its backup operations see it.

    Attributes:
        endpoint: the service's endpoint (credentials, clients).
        containers: its containers, looked up only when called (the first runs the service's tools).
    """

    endpoint: Any
    containers: Callable[[], Sequence[Any]]

    def container(self) -> Any:
        return self.containers()[0]


@dataclass(frozen=True)
class BackupSeed:
    """The deterministic data the backup round trips (``suites/backup/``) write into the service before a backup
    and find again after a restore into a fresh stack; each gets the service's endpoint.

    Attributes:
        seed: write the data, checking every step's result.
        missing: what of the data is not there, as ``<service>.<what>: <seen>`` (empty when all of it is).
        fingerprints: ``name -> digest`` of the data, compared at backup time and after the restore.
        mark: write a marker labelled ``label`` (before the backup: must come back; after it: must not), or None.
    """

    seed: Callable[[Any], None]
    missing: Callable[[Any], list[str]]
    fingerprints: Callable[[Any], dict[str, str]]
    mark: Callable[[Any, str], None] | None = None


@dataclass(frozen=True)
class BackupOps:
    """A service's backup capability.

    Attributes:
        capture: take the service's artifacts (names ``<service>/...``).
        restore: put a backup's artifacts of this service (``name -> bytes``) back into the running service.
        version: the server's version string, recorded in the manifest.
        live_credentials: the KV fields (equal to endpoint attributes) whose live values are written back into
            a restored Vault, so the restored KV matches the running server.
        format_check: the local check of its artifacts' format (``name, data`` -> problem or None) that ``backup
            verify`` runs instead of the generic checks by file extension, or None for those.
        seed: the data the backup round trips write and find again (:class:`BackupSeed`); the per-service round
            trip fails naming a backed-up service without one.
        artifacts: the artifacts every backup of the service must hold, as names or ``fnmatch`` patterns
            (``redis/shard-*.jsonl``); ``verify`` names each one missing (``postgres: missing artifact
            postgres/devstack.dump``), ``create`` writes no backup without one, and ``restore`` never calls
            ``restore`` without one.
        completeness: further checks of the artifact names a backup holds for the service (sorted) -> the
            problems, e.g. Redis slots in no shard; None for none.
        upgrade_gaps: the known incompatibilities of an upgrade between release lines (``python -m harness drill
            upgrade``), ``"<from flavor>-><to flavor>"`` -> why: such a pair that does not carry everything over is
            reported with the reason instead of failing the drill.
    """

    capture: Callable[[BackupSource], list[Captured]]
    restore: Callable[[BackupSource, Mapping[str, bytes]], None]
    version: Callable[[Any], str]
    live_credentials: tuple[str, ...] = ("password",)
    format_check: Callable[[str, bytes], str | None] | None = None
    seed: BackupSeed | None = None
    artifacts: tuple[str, ...] = ()
    completeness: Callable[[Sequence[str]], list[str]] | None = None
    upgrade_gaps: Mapping[str, str] = field(default_factory=dict)


def run_checked(container: Any, cmd: list[str], user: str = "", what: str = "") -> bytes:
    """Run ``cmd`` in ``container``; its stdout, or :class:`StepFailed` with the tail of its stderr."""
    result = container.exec_run(cmd, user=user, demux=True)
    out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
    if result.exit_code != 0:
        raise StepFailed(f"{what or cmd[0]} exited {result.exit_code}: {(err or b'').decode(errors='replace')[-500:]}")
    return out or b""


def timed(fn: Callable[[], bytes]) -> tuple[bytes, float]:
    """``fn()`` and how long it took, in seconds."""
    t0 = time.monotonic()
    data = fn()
    return data, round(time.monotonic() - t0, 3)


@contextmanager
def private_files(container: Any, files: dict[str, tuple[bytes, str]], what: str) -> Iterator[None]:
    """Files (mode 0600) in a container for the duration of a step; removed afterwards, also on failure."""
    from stack.base import put_private_files

    put_private_files(container, files, what)
    try:
        yield
    finally:
        run_checked(container, ["rm", "-f", *files], "root", f"removing {', '.join(files)} from the {what} container")


def tool_path(container: Any, *names: str) -> str:
    """The first of ``names`` found on the container's PATH."""
    found = run_checked(container, ["sh", "-c", " || ".join(f"command -v {n}" for n in names)],
                        what="locating the client")
    return found.decode().strip().splitlines()[0]
