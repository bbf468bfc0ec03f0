"""Private state of test runs (``<state_dir>/runs/<run-id>/``): who owns it, and removing it once the run is over.

Each run's directory holds Vault's unseal keys, the (revoked) root token, the admin token, AppRole secret-ids
and the service certificates and keys. It is needed while the run's containers exist (``down``, ``certs`` and
``backup`` of a kept ``up`` stack read it) and not after. So a directory is *protected* while

* a container or network labelled with its run id exists (a kept ``up`` stack, a running session, a killed
  run's leftovers until ``down --stale`` removes them), or
* the process that created it (``owner.json``) is still alive on this host (a run between creating the
  directory and its first container);

every other directory belongs to a finished run. Of those, the newest ``keep_run_state`` (by run id, which
sorts by start time) are kept for debugging and the rest removed. The compose stack's state lives in
``<state_dir>/compose`` and is never touched here; directory names that are not run ids are left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from stack.base import LABEL_RUN_ID
from stack.files import write_file

RUN_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}")  # harness.stacks.engine.new_run_id
OWNER_FILE = "owner.json"


def write_owner(run_dir: Path, *, keep: bool) -> None:
    """Record the creating process (pid and host) in the run's directory (0600)."""
    write_file(run_dir / OWNER_FILE, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "keep": keep}))


def owner_alive(run_dir: Path) -> bool:
    """Whether the process that created ``run_dir`` still runs. A run of another host is not ours to judge
    (alive); a directory without a readable owner record has no owner to wait for (not alive)."""
    try:
        owner = json.loads((run_dir / OWNER_FILE).read_text())
        host, pid = str(owner["host"]), int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that pid: alive
        return True
    return True


@dataclass
class Pruned:
    """What :func:`prune_runs` did, by run id."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # finished, kept for debugging (the newest ``keep``)
    protected: list[str] = field(default_factory=list)  # containers exist or the owner still runs
    failed: dict[str, str] = field(default_factory=dict)  # could not be removed: why


def prune_runs(runs: Path, keep: int, live: Iterable[str], finished: Iterable[str] = (),
               alive: Callable[[Path], bool] = owner_alive) -> Pruned:
    """Remove the private state of finished runs under ``runs``, keeping the newest ``keep`` of them.

    Args:
        runs: ``<state_dir>/runs``.
        keep: how many finished runs to keep (0: none).
        live: run ids that still have containers or networks.
        finished: run ids the caller has just ended (its own process is alive, but the run is over).
        alive: whether a directory's owning process still runs (:func:`owner_alive`).
    """
    if keep < 0:
        raise ValueError(f"keep must be >= 0, not {keep}")
    result = Pruned()
    if not runs.is_dir():
        return result
    live, finished = set(live), set(finished)
    done: list[Path] = []
    for run_dir in sorted(runs.iterdir()):
        if not run_dir.is_dir() or run_dir.is_symlink() or not RUN_ID.fullmatch(run_dir.name):
            continue
        if run_dir.name in live or (run_dir.name not in finished and alive(run_dir)):
            result.protected.append(run_dir.name)
        else:
            done.append(run_dir)
    cut = max(len(done) - keep, 0)
    result.kept = [d.name for d in done[cut:]]
    for run_dir in done[:cut]:
        try:
            shutil.rmtree(run_dir)
            result.removed.append(run_dir.name)
        except OSError as exc:
            result.failed[run_dir.name] = f"{type(exc).__name__}: {exc.strerror or exc}"
    return result


def live_run_ids(client: Any) -> set[str]:
    """Run ids of every harness container (running or not) and network on the engine."""
    labelled = [*client.containers.list(all=True, filters={"label": LABEL_RUN_ID}),
                *client.networks.list(filters={"label": LABEL_RUN_ID})]
    ids = set()
    for obj in labelled:
        labels = obj.attrs.get("Config", {}).get("Labels") or obj.attrs.get("Labels") or {}
        if labels.get(LABEL_RUN_ID):
            ids.add(labels[LABEL_RUN_ID])
    return ids


_ENDED_HERE: set[str] = set()  # runs this process has ended: its own liveness protects them no longer


def prune_run_state(client: Any, state_dir: Path, keep: int, finished: Iterable[str] = ()) -> Pruned | None:
    """:func:`prune_runs` on ``<state_dir>/runs`` with the engine's live runs; None (nothing removed) when the
    engine cannot be asked: without knowing which runs still have containers, no state is safe to remove.

    ``finished`` is remembered for the life of the process, so a session that ends several stacks one after
    the other counts each of them as finished when the last one prunes (the process, their owner, still runs).
    """
    _ENDED_HERE.update(finished)
    try:
        live = live_run_ids(client)
    except (docker.errors.DockerException, OSError):
        return None
    return prune_runs(state_dir / "runs", keep, live, set(_ENDED_HERE))
