"""What a service declares about its resilience drills (no harness imports).

A drill is a capability a service module declares: its ``SPEC`` lists ``drills=(ServiceDrill(...), ...)``. Each
entry names the drill (``postgres-crash``), its *kind* -- the measuring loop in the harness that runs it
(``sql-crash``, ``broker-loss``, ``vault-seal``) -- the faults it offers, and the service-specific operations that
loop calls (how to open a client, create the drill's table, write a numbered item, read the set back, which server
process to SIGKILL). The loop, the fault injection, the figures and the reports live in ``harness/``
(:mod:`harness.drill_service`); one generic SQL crash loop serves PostgreSQL and MariaDB alike.

Faults (the names the CLI's ``--fault`` takes):

* ``docker-kill``: ``docker kill`` of the container (SIGKILL of its PID 1, the server); the harness starts the
  container again.
* ``sigkill``: SIGKILL of a server process *inside* the running container (:attr:`SqlCrashOps.kill_server`); the
  server recovers by itself, the container never stops. Only declared where such a process exists: a server that
  is its container's PID 1 cannot be SIGKILLed from inside (the kernel ignores signals to a namespace's init that
  it has no handler for), and from outside that is ``docker-kill``.
* ``restart`` / ``kill`` (Vault): ``docker restart`` (SIGTERM, graceful) or ``docker kill`` + start; either way
  Vault comes back sealed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stack.errors import HarnessError

DRILL_KINDS = ("sql-crash", "broker-loss", "declare-durability", "vault-seal")
#: Every fault a service drill may declare, with what it does (``--fault`` help and docs).
FAULT_HELP = {
    "docker-kill": "docker kill of the container (SIGKILL of the server, its PID 1); the harness starts it again",
    "sigkill": "SIGKILL of a server process inside the running container; the server recovers by itself",
    "restart": "docker restart (graceful stop, start); Vault comes back sealed",
    "kill": "docker kill + start; Vault comes back sealed",
}


class FaultError(HarnessError):
    """A fault could not be injected (the message says which command failed and how)."""


@dataclass(frozen=True)
class SqlCrashOps:
    """What the generic SQL crash drill needs from a SQL service. ``{table}`` in a statement is the drill's own
    table name (``drill_<hex>``, made by the harness); ``%s`` is the row number (DB-API ``format`` style).

    Attributes:
        connect: ``(endpoint) -> connection``: a DB-API connection, autocommit off, short connect and read
            timeouts (a crashed server must not hang the writer).
        create: statements that create ``{table}`` (a transactional, crash-safe engine).
        insert: insert one row numbered ``%s`` into ``{table}``.
        select: every row number in ``{table}``.
        drop: remove ``{table}``.
        durability: ``(connection) -> problems``: the server settings that would let an acknowledged commit be
            lost in a crash (empty when every acknowledged commit is flushed to the log first).
        recovery_log: text the server logs when it starts crash recovery (the proof that the fault was a crash,
            not a clean shutdown); the harness looks for it in the log written after the fault.
        server_process: ``(container) -> ServerProcess``: the server process inside the running container that the
            ``sigkill`` fault kills, or None when the server is the container's PID 1.
    """

    connect: Callable[[Any], Any]
    create: tuple[str, ...]
    insert: str
    select: str
    drop: str
    durability: Callable[[Any], list[str]]
    recovery_log: str
    server_process: Callable[[Any], ServerProcess] | None = None


@dataclass(frozen=True)
class ServerProcess:
    """A process inside a container: its PID there, its owner, and what killing it does."""

    pid: int
    user: str
    what: str


@dataclass(frozen=True)
class BrokerOps:
    """What the broker-loss drill needs from an AMQP 0-9-1 broker.

    Attributes:
        connect: ``(endpoint) -> pika.BlockingConnection`` with short socket and heartbeat timeouts.
        settle_metadata: ``(docker container) -> None``: make every declaration the broker acknowledged so far
            durable on disk (the broker-loss drill runs it after declaring its queue, so a lost queue is a failure
            of the broker, not the known window of a just-declared one); None when a declare-ok already means that.
        hold_metadata: ``(docker container) -> None``: hold back the broker's metadata commit decisions (the
            ``declare-durability`` drill's fault: what a kill right after a declare-ok meets); None when the
            broker has no such window.
        metadata_store: ``(docker container) -> str``: which metadata store the running broker uses (RabbitMQ:
            ``mnesia`` or ``khepri``); asked of the server that runs, not of its version.
        unsettled_declare_lost: metadata store -> whether a durable queue killed right after its ``declare-ok``
            (decisions held back where the store has such a step) is expected to be gone after the restart: the
            facts the ``declare-durability`` drill pins, per store.
    """

    connect: Callable[[Any], Any]
    settle_metadata: Callable[[Any], None] | None = None
    hold_metadata: Callable[[Any], None] | None = None
    metadata_store: Callable[[Any], str] | None = None
    unsettled_declare_lost: Mapping[str, bool] | None = None


@dataclass(frozen=True)
class ServiceDrill:
    """One drill a service offers.

    Attributes:
        name: the CLI name (``python -m harness drill NAME``) and the report's ``drill``.
        kind: the harness loop that runs it, one of :data:`DRILL_KINDS`.
        faults: the faults it offers, in the order ``--fault cycle`` takes them (names of :data:`FAULT_HELP`).
        summary: one line for ``--help`` and the docs.
        ops: the kind's operations (:class:`SqlCrashOps`, :class:`BrokerOps`), or None (``vault-seal``: the harness
            owns Vault's unseal keys and bootstrap, nothing else is needed).
    """

    name: str
    kind: str
    faults: tuple[str, ...]
    summary: str
    ops: Any = None

    def __post_init__(self) -> None:
        if self.kind not in DRILL_KINDS:
            raise ValueError(f"drill {self.name!r}: unknown kind {self.kind!r}; one of {', '.join(DRILL_KINDS)}")
        unknown = [f for f in self.faults if f not in FAULT_HELP]
        if not self.faults or unknown:
            raise ValueError(f"drill {self.name!r}: faults must be some of {', '.join(FAULT_HELP)}, got "
                             f"{', '.join(self.faults) or 'none'}")


def find_pids(container: Any, prefix: str, user: str) -> list[int]:
    """PIDs (inside ``container``) of the processes whose command line starts with ``prefix`` (read from /proc:
    the images ship no ``pgrep``)."""
    script = ('for d in /proc/[0-9]*; do c=$(tr "\\0" " " < "$d/cmdline" 2>/dev/null) || continue; '
              'case "$c" in "$0"*) echo "${d#/proc/}";; esac; done')
    result = container.exec_run(["sh", "-c", script, prefix], user=user)
    if result.exit_code != 0:
        raise FaultError(f"listing processes in the container exited {result.exit_code}: "
                           f"{result.output.decode(errors='replace')[-300:]}")
    return [int(p) for p in result.output.decode().split() if p.isdigit()]


def sigkill(container: Any, pid: int, user: str) -> None:
    """``kill -9 <pid>`` inside ``container`` as ``user`` (the process's owner; the shell's builtin ``kill``: the
    images ship no kill binary)."""
    result = container.exec_run(["sh", "-c", 'kill -9 "$0"', str(pid)], user=user)
    if result.exit_code != 0:
        raise FaultError(f"kill -9 {pid} exited {result.exit_code}: {result.output.decode(errors='replace')[-300:]}")
