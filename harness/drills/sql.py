"""The SQL crash drill (kind ``sql-crash``): one loop for every SQL service that declares
:class:`~stack.drill_ops.SqlCrashOps` (``postgres-crash``, ``mysql-crash``).

A round, on the drill's own table ``drill_<hex>``:

1. Preconditions, each polled with a deadline: the server accepts a login; its durability settings let an
   acknowledged commit survive a crash (``fsync``/``synchronous_commit`` on, or InnoDB with
   ``innodb_flush_log_at_trx_commit = 1``: a commit is acknowledged only once its log record is flushed); the
   writer has 50 acknowledged commits; a second session has inserted the *in-flight* row (number 0) and not
   committed, and 20 more commits were acknowledged after that insert was.
2. The fault at ``t0``: ``docker-kill`` (the container is killed; the harness starts it again) or ``sigkill`` (a
   server process is SIGKILLed inside the container; the server recovers by itself). The undo (start the container
   unless it runs) is in ``finally``.
3. Figures: ``accepting_ms`` (t0 -> a login through the published port answers again; the port is looked up again,
   Docker may publish a restarted container elsewhere), ``client_outage_ms`` (the writer's longest silence between
   acknowledged commits around the fault; it reconnects by itself, 2 s connect timeout), ``in_doubt`` (commits
   whose answer the crash swallowed: either outcome is correct).
4. Invariants (:func:`sql_verdict`): ``committed_missing`` = acknowledged rows not read back (must be 0);
   ``in_flight_present`` = the uncommitted row read back (must be 0); rows nobody committed (must be none). And the
   server's log after the fault shows crash recovery (``SqlCrashOps.recovery_log``): otherwise it was no crash.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.drills.kit import (
    POLL_S,
    DrillError,
    Timeline,
    ensure_running,
    fault_applied,
    ms,
    outage_ms,
    wait_acks,
)
from stack import registry
from stack.drill_ops import ServiceDrill, SqlCrashOps, sigkill
from stack.errors import ReadinessTimeout
from stack.waiting import poll

SQL_METRICS = ("accepting_ms", "client_outage_ms", "committed_missing", "in_flight_present", "in_doubt")
IN_FLIGHT = 0  # the uncommitted row's number (the writer numbers from 1)
BEFORE_FAULT = 50  # acknowledged commits before the in-flight insert
AROUND_IN_FLIGHT = 20  # acknowledged commits after it, before the fault; and after the service is back
MAX_ROWS = 50_000


@dataclass
class SqlCrashRound:
    round: int
    fault: str
    victim: str
    accepting_ms: float | None = None
    client_outage_ms: float | None = None
    # None: not counted (the round ended before it read the rows back or the server's log)
    rows_committed: int | None = None
    committed_missing: int | None = None
    in_flight_present: int | None = None
    in_doubt: int | None = None
    in_doubt_present: int | None = None
    recovery_logged: bool | None = None
    writer_errors: dict[str, int] = field(default_factory=dict)
    fault_detail: str = ""
    problems: list[str] = field(default_factory=list)


def _few(numbers: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" … (+{len(numbers) - limit})" if len(numbers) > limit else "")


def sql_verdict(acked: set[int], in_doubt: set[int], aborted: set[int], present: set[int],
                in_flight: int = IN_FLIGHT) -> tuple[dict[str, int], list[str]]:
    """Counts and problems after a crash. ``acked``: commits the server acknowledged; ``in_doubt``: commits whose
    answer was lost (either outcome is fine); ``aborted``: inserts that failed before any commit was sent (must be
    absent); ``present``: the row numbers read back."""
    missing = sorted(acked - present)
    counts = {"committed_missing": len(missing), "in_flight_present": int(in_flight in present),
              "in_doubt": len(in_doubt), "in_doubt_present": len(in_doubt & present)}
    problems = []
    if missing:
        problems.append(f"{len(missing)} committed row(s) missing after the crash: {_few(missing)}")
    if in_flight in present:
        problems.append(f"the in-flight transaction's row {in_flight} is present after the crash; it was never "
                        "committed and must have been rolled back")
    phantom = sorted(present - acked - in_doubt - {in_flight})
    if phantom:
        problems.append(f"{len(phantom)} row(s) present that no acknowledged or attempted commit wrote"
                        f"{' (their transactions failed before the commit)' if set(phantom) <= aborted else ''}: "
                        f"{_few(phantom)}")
    return counts, problems


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):  # a connection the crash broke may fail to close: nothing to keep
        conn.close()


class SqlWriter(threading.Thread):
    """Numbered single-row transactions, each committed; bounded in count and time. A failure before the commit
    marks the number ``aborted``, a failure of the commit itself ``in_doubt``; either way the writer reconnects
    (through ``connect``, which looks the endpoint up again) and goes on with the next number."""

    def __init__(self, connect: Callable[[], Any], insert: str, deadline: float, max_rows: int = MAX_ROWS) -> None:
        super().__init__(daemon=True)
        self.connect = connect
        self.insert = insert
        self.deadline = deadline
        self.max_rows = max_rows
        self.timeline = Timeline()
        self.in_doubt: set[int] = set()
        self.aborted: set[int] = set()
        self.stopping = threading.Event()

    @property
    def acked(self) -> set[int]:
        return {seq for seq, _ in self.timeline.acks}

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        conn: Any = None
        seq = 0
        while not self.stopping.is_set() and time.monotonic() < self.deadline and seq < self.max_rows:
            if conn is None:
                try:
                    conn = self.connect()
                except Exception as exc:  # a client counts whatever it gets; the figures say what it saw
                    self.timeline.error(exc)
                    self.stopping.wait(POLL_S)
                    continue
            seq += 1
            stage = "insert"
            try:
                cur = conn.cursor()
                cur.execute(self.insert, (seq,))
                cur.close()
                stage = "commit"
                conn.commit()
            except Exception as exc:
                (self.in_doubt if stage == "commit" else self.aborted).add(seq)
                self.timeline.error(exc)
                _close(conn)
                conn = None
                self.stopping.wait(POLL_S)
                continue
            self.timeline.ack(seq)
            self.stopping.wait(0.005)  # pacing: about 100 commits/s
        if conn is not None:
            _close(conn)


def _rows(ops: SqlCrashOps, connect: Callable[[], Any], table: str) -> set[int]:
    conn = connect()
    try:
        cur = conn.cursor()
        cur.execute(ops.select.format(table=table))
        rows = {int(r[0]) for r in cur.fetchall()}
        conn.rollback()
        return rows
    finally:
        _close(conn)


def _execute(connect: Callable[[], Any], *statements: str) -> None:
    conn = connect()
    try:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)
        conn.commit()
    finally:
        _close(conn)


def sql_crash_round(stack: Any, service: str, drill: ServiceDrill, number: int, fault: str,
                    timeout: float) -> SqlCrashRound:
    """One crash round against ``service`` of ``stack``; the server accepts logins again when it returns (or the
    round's problems say why not)."""
    ops = drill.ops
    if not isinstance(ops, SqlCrashOps):
        raise DrillError(f"drill {drill.name}: a sql-crash drill needs SqlCrashOps, {service}'s SPEC gives {ops!r}")
    if fault == "sigkill" and ops.server_process is None:
        raise DrillError(f"drill {drill.name}: {service} declares no server process to SIGKILL (faults: "
                         f"{', '.join(drill.faults)})")
    container = stack.require(service)
    wrapped = container.get_wrapped_container()
    login = registry.get(service).driver.login
    result = SqlCrashRound(round=number, fault=fault, victim=str(getattr(container, "alias", service)))
    table = f"drill_{secrets.token_hex(4)}"

    def connect() -> Any:
        return ops.connect(container.endpoint())  # looked up every time: a restarted container may move port

    poll(lambda: login(container.endpoint()), what=f"{service} to accept a login before round {number}",
         timeout=timeout, interval=0.2, hint="the previous round left it down: read its log")
    conn = connect()
    try:
        result.problems += ops.durability(conn)
    finally:
        _close(conn)
    _execute(connect, *(s.format(table=table) for s in ops.create))
    writer = SqlWriter(connect, ops.insert.format(table=table), deadline=time.monotonic() + 3 * timeout)
    in_flight: Any = None
    writer.start()
    try:
        poll(lambda: len(writer.timeline.acks), what=f"{BEFORE_FAULT} acknowledged commits before the fault",
             timeout=timeout, interval=POLL_S, accept=lambda n: n >= BEFORE_FAULT,
             hint="the writer cannot commit: see its errors and the server's log")
        # The in-flight transaction: its insert acknowledged by the server, never committed.
        in_flight = connect()
        cur = in_flight.cursor()
        cur.execute(ops.insert.format(table=table), (IN_FLIGHT,))
        marked = time.monotonic()
        poll(lambda: writer.timeline.acked_after(marked), what=f"{AROUND_IN_FLIGHT} commits acknowledged after the "
             "in-flight insert", timeout=timeout, interval=POLL_S, accept=lambda n: n >= AROUND_IN_FLIGHT,
             hint="the writer stalled: the in-flight transaction may hold a lock it waits for")

        victim = None
        if fault == "sigkill":
            assert ops.server_process is not None
            victim = ops.server_process(wrapped)
            result.fault_detail = f"SIGKILL of {victim.what}"
        elif fault == "docker-kill":
            result.fault_detail = "docker kill of the container (SIGKILL of its PID 1)"
        else:
            raise DrillError(f"drill {drill.name}: unknown fault {fault!r}; one of {', '.join(drill.faults)}")

        def apply() -> None:
            if victim is None:
                wrapped.kill()
            else:
                sigkill(wrapped, victim.pid, victim.user)

        log_since = int(time.time())  # docker logs: whole seconds
        t0 = time.monotonic()
        with fault_applied(apply, lambda: ensure_running(wrapped)) as undo:
            _await_crash(in_flight, service, fault, timeout, result)
            undo()
            try:
                poll(lambda: login(container.endpoint()), what=f"{service} to accept a login after the {fault}",
                     timeout=timeout, interval=POLL_S, hint="crash recovery never finished: read the server's log")
                accepting = time.monotonic()
                result.accepting_ms = ms(t0, accepting)
            except ReadinessTimeout as exc:
                result.problems.append(str(exc))
                return result
        try:
            wait_acks(writer.timeline, accepting, AROUND_IN_FLIGHT, timeout, "commits")
        except ReadinessTimeout as exc:
            result.problems.append(str(exc))
        writer.stop()
        log = wrapped.logs(since=log_since).decode(errors="replace")
        result.recovery_logged = ops.recovery_log in log
        if not result.recovery_logged:
            result.problems.append(f"{service} logged no {ops.recovery_log!r} after the {fault}: was it a crash?")
        result.client_outage_ms = outage_ms([at for _, at in writer.timeline.acks], t0)
        result.rows_committed = len(writer.timeline.acks)
        result.writer_errors = dict(writer.timeline.errors)
        counts, problems = sql_verdict(writer.acked, writer.in_doubt, writer.aborted, _rows(ops, connect, table))
        for key, value in counts.items():
            setattr(result, key, value)
        result.problems += problems
    finally:
        writer.stop()
        if in_flight is not None:
            _close(in_flight)
        with contextlib.suppress(Exception):  # the drill's own table; a server still down keeps it, harmlessly
            _execute(connect, ops.drop.format(table=table))
    return result


def _await_crash(in_flight: Any, service: str, fault: str, timeout: float, result: SqlCrashRound) -> None:
    """The crash is real once the in-flight transaction's session is gone (its next statement fails): a server that
    still answers it did not crash, and its row could not tell anything."""
    def session_alive() -> bool:
        cur = in_flight.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        cur.close()
        return True

    try:
        poll(lambda: not session_alive(), what=f"the {fault} to end {service}'s in-flight session",
             timeout=timeout, interval=POLL_S, transient=(), fatal=(Exception,), hint="the fault did not crash it")
    except ReadinessTimeout as exc:
        result.problems.append(f"the {fault} did not crash {service}: {exc}")
    except Exception:  # the session failed: the crash took it, as it must
        return
