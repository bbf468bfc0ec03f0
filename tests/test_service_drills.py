"""Service drills without Docker: the verdicts say "broken" against fakes of the broken thing (a lost committed row,
a rolled-back row that is present, a confirmed message that is missing, a KV value lost across a seal), the
writer's bookkeeping against a fake database, the PostgreSQL/MySQL durability checks against fake settings, a whole
SQL crash round against a fake server that loses an acknowledged commit, the shared plumbing, and the registry of
declared drills."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from cli_inprocess import run_cli

from harness.cli import build_parser
from harness.drills.broker import AT_RISK_MIN, broker_verdict, durability_verdict
from harness.drills.kit import (
    REDIS_DRILLS,
    DrillError,
    drill_names,
    fault_applied,
    outage_ms,
    pick_fault,
    service_drills,
)
from harness.drills.redis import drill_lines, report
from harness.drills.runner import METRICS, metrics_for, runner_for
from harness.drills.sql import SqlCrashRound, SqlWriter, sql_crash_round, sql_verdict
from harness.drills.vault import vault_verdict
from stack import mysql, postgres, registry
from stack.drill_ops import FAULT_HELP, ServiceDrill, SqlCrashOps

# ------------------------------------------------------------------------------------------------ SQL verdict


def test_sql_verdict_healthy_crash_has_no_problem():
    counts, problems = sql_verdict(acked={1, 2, 3}, in_doubt={4}, aborted={5}, present={1, 2, 3})
    assert problems == []
    assert counts == {"committed_missing": 0, "in_flight_present": 0, "in_doubt": 1, "in_doubt_present": 0}


def test_sql_verdict_in_doubt_row_may_be_present():
    counts, problems = sql_verdict(acked={1, 2}, in_doubt={3}, aborted=set(), present={1, 2, 3})
    assert problems == [] and counts["in_doubt_present"] == 1


def test_sql_verdict_says_a_committed_row_was_lost():
    counts, problems = sql_verdict(acked={1, 2, 3, 7}, in_doubt=set(), aborted=set(), present={1, 2, 3})
    assert problems == ["1 committed row(s) missing after the crash: 7"]
    assert counts["committed_missing"] == 1


def test_sql_verdict_lists_at_most_ten_lost_rows():
    _, problems = sql_verdict(acked=set(range(1, 31)), in_doubt=set(), aborted=set(), present=set())
    assert problems == ["30 committed row(s) missing after the crash: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 … (+20)"]


def test_sql_verdict_says_the_rolled_back_in_flight_row_is_present():
    counts, problems = sql_verdict(acked={1, 2}, in_doubt=set(), aborted=set(), present={0, 1, 2})
    assert problems == ["the in-flight transaction's row 0 is present after the crash; it was never committed and "
                        "must have been rolled back"]
    assert counts["in_flight_present"] == 1


def test_sql_verdict_says_a_failed_transaction_left_its_row():
    _, problems = sql_verdict(acked={1, 2}, in_doubt=set(), aborted={3}, present={1, 2, 3})
    assert problems == ["1 row(s) present that no acknowledged or attempted commit wrote (their transactions "
                        "failed before the commit): 3"]


# ------------------------------------------------------------------------------------- the writer, on a fake DB


class FakeDb:
    """A database whose commits can fail before or after they take effect, or be acknowledged and lost."""

    def __init__(self) -> None:
        self.rows: set[int] = set()
        self.lose: set[int] = set()  # acknowledged, then gone (the broken thing)
        self.fail_after: set[int] = set()  # committed, but the answer is lost (in doubt, present)
        self.fail_before: set[int] = set()  # the commit never happens (in doubt, absent)
        self.fail_insert: set[int] = set()  # the insert fails (aborted, absent)
        self.stop_at = 60
        self.done = threading.Event()

    def connect(self) -> FakeConnection:
        return FakeConnection(self)


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[int, ...]) -> None:
        (n,) = params
        if n in self.conn.db.fail_insert:
            raise ConnectionError("server closed the connection unexpectedly")
        self.conn.pending = n

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, db: FakeDb) -> None:
        self.db = db
        self.pending: int | None = None

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        n, self.pending = self.pending, None
        assert n is not None
        if n >= self.db.stop_at:
            self.db.done.set()
        if n in self.db.fail_before:
            raise ConnectionError("connection lost before the commit")
        if n not in self.db.lose:
            self.db.rows.add(n)
        if n in self.db.fail_after:
            raise ConnectionError("connection lost after the commit")

    def close(self) -> None:
        pass


def _write(db: FakeDb) -> SqlWriter:
    writer = SqlWriter(db.connect, "INSERT INTO t (n) VALUES (%s)", deadline=time.monotonic() + 30)
    writer.start()
    assert db.done.wait(20), "the writer never reached the fake's last row"
    writer.stop()
    return writer


def test_writer_bookkeeping_keeps_a_healthy_database_clean():
    db = FakeDb()
    db.fail_after, db.fail_before, db.fail_insert = {10}, {20}, {30}
    writer = _write(db)
    assert writer.in_doubt == {10, 20} and writer.aborted == {30}
    assert 10 not in writer.acked and 11 in writer.acked
    assert writer.timeline.errors == {"ConnectionError": 3}
    _, problems = sql_verdict(writer.acked, writer.in_doubt, writer.aborted, set(db.rows))
    assert problems == []


def test_writer_and_verdict_catch_a_database_that_loses_an_acknowledged_commit():
    db = FakeDb()
    db.lose = {17}
    writer = _write(db)
    assert 17 in writer.acked
    _, problems = sql_verdict(writer.acked, writer.in_doubt, writer.aborted, set(db.rows))
    assert problems == ["1 committed row(s) missing after the crash: 17"]


# ------------------------------------------------------------------- the durability checks, on fake connections


class _Settings:
    """A connection answering ``SHOW <name>`` (psycopg's ``conn.execute``) and one ``SELECT @@...`` row (PyMySQL's
    cursor) from ``values``."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.row: tuple[str, ...] | None = None

    def execute(self, sql: str, params: Any = None) -> _Settings:
        if sql.startswith("SHOW "):
            self.row = (self.values[sql.removeprefix("SHOW ")],)
        else:  # SELECT @@innodb_flush_log_at_trx_commit, @@default_storage_engine
            self.row = tuple(self.values[name.strip().removeprefix("@@")] for name in sql[7:].split(","))
        return self

    def fetchone(self) -> tuple[str, ...] | None:
        return self.row

    def cursor(self) -> _Settings:
        return self

    def __enter__(self) -> _Settings:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def rollback(self) -> None:
        pass


def test_postgres_durability_check_names_each_unsafe_setting():
    safe = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    assert postgres.drill_durability(_Settings(safe)) == []
    unsafe = _Settings({**safe, "fsync": "off", "synchronous_commit": "local"})
    assert postgres.drill_durability(unsafe) == [
        "fsync = off (an acknowledged commit may not survive a crash)",
        "synchronous_commit = local (an acknowledged commit may not survive a crash)"]


def test_mysql_durability_check_names_a_lazy_log_flush_and_a_non_innodb_engine():
    assert mysql.drill_durability(_Settings({"innodb_flush_log_at_trx_commit": "1",
                                             "default_storage_engine": "InnoDB"})) == []
    assert mysql.drill_durability(_Settings({"innodb_flush_log_at_trx_commit": "2",
                                             "default_storage_engine": "MyISAM"})) == [
        "innodb_flush_log_at_trx_commit = 2 (an acknowledged commit may not survive a crash)",
        "default_storage_engine = MyISAM, not InnoDB (no crash recovery for the drill's table)"]


# ---------------------------------------------------------------------- a whole crash round, on a fake server


class CrashServer:
    """A SQL server in memory whose container can be killed and started. With ``fsync`` off it acknowledges a
    commit before it is flushed, and a crash loses the last one acknowledged (the broken thing the drill exists
    for); ``lost`` records which. A commit and a crash exclude each other, so a commit either returned before the
    crash (acknowledged) or fails (in doubt)."""

    def __init__(self, fsync: bool) -> None:
        self.fsync = fsync
        self.flushed: set[int] = set()
        self.unflushed: list[int] = []
        self.lost: list[int] = []
        self.epoch = 0
        self.status = "running"
        self.log: list[tuple[float, str]] = [(time.time(), "ready for connections")]
        self.lock = threading.Lock()

    # the container, as the drill sees docker-py's
    def kill(self, signal: str | None = None) -> None:
        with self.lock:
            self.status, self.epoch = "exited", self.epoch + 1
            self.lost += self.unflushed
            self.unflushed = []

    def start(self) -> None:
        self.log.append((time.time(), "InnoDB: Starting crash recovery from checkpoint"))
        self.status = "running"

    def reload(self) -> None:
        pass

    def restart(self, timeout: int = 10) -> None:
        self.kill()
        self.start()

    def logs(self, since: int = 0) -> bytes:
        return "\n".join(line for at, line in self.log if at >= since).encode()

    # the service
    def connect(self) -> CrashConnection:
        if self.status != "running":
            raise ConnectionRefusedError(111, "Connection refused")
        return CrashConnection(self, self.epoch)

    def commit(self, rows: set[int], epoch: int) -> None:
        with self.lock:
            if epoch != self.epoch:
                raise ConnectionError("server closed the connection unexpectedly")
            if self.fsync:
                self.flushed |= rows
            else:  # acknowledged now, flushed when the next commit comes
                self.flushed |= set(self.unflushed)
                self.unflushed = sorted(rows)

    def rows(self) -> set[int]:
        return self.flushed | set(self.unflushed)


class CrashConnection:
    def __init__(self, server: CrashServer, epoch: int) -> None:
        self.server, self.epoch = server, epoch
        self.pending: set[int] = set()
        self.result: list[tuple[Any, ...]] = []

    def _alive(self) -> None:
        if self.epoch != self.server.epoch:
            raise ConnectionError("server closed the connection unexpectedly")

    def cursor(self) -> CrashConnection:
        return self

    def execute(self, sql: str, params: tuple[int, ...] | None = None) -> CrashConnection:
        self._alive()
        if sql.startswith("INSERT"):
            assert params is not None
            self.pending.add(params[0])
        elif sql.startswith("SHOW "):
            self.result = [("off" if sql == "SHOW fsync" and not self.server.fsync else "on",)]
        elif sql == "SELECT 1":
            self.result = [(1,)]
        elif sql.startswith("SELECT n"):
            self.result = [(n,) for n in sorted(self.server.rows())]
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.result

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.result[0] if self.result else None

    def commit(self) -> None:
        self.server.commit(self.pending, self.epoch)
        self.pending = set()

    def rollback(self) -> None:
        self.pending = set()

    def close(self) -> None:
        pass


FAKE_SQL_DRILL = ServiceDrill(
    name="fakesql-crash", kind="sql-crash", faults=("docker-kill",), summary="",
    ops=SqlCrashOps(connect=lambda server: server.connect(), create=("CREATE TABLE {table} (n bigint)",),
                    insert="INSERT INTO {table} (n) VALUES (%s)", select="SELECT n FROM {table}",
                    drop="DROP TABLE IF EXISTS {table}", durability=postgres.drill_durability,
                    recovery_log="crash recovery"))


def _crash_round(monkeypatch: pytest.MonkeyPatch, server: CrashServer) -> SqlCrashRound:
    """One round of the real drill loop against ``server``: its container, endpoint and login are the fake's."""
    real_get = registry.get

    def login(endpoint: CrashServer) -> bool:
        endpoint.connect().close()
        return True

    fake = SimpleNamespace(driver=SimpleNamespace(login=login))
    monkeypatch.setattr(registry, "get", lambda name: fake if name == "fakesql" else real_get(name))
    container = SimpleNamespace(alias="fakesql", endpoint=lambda: server, get_wrapped_container=lambda: server)
    stack = SimpleNamespace(require=lambda name: container)
    return sql_crash_round(stack, "fakesql", FAKE_SQL_DRILL, 0, "docker-kill", timeout=10)


def test_crash_round_on_a_server_that_keeps_every_acknowledged_commit(monkeypatch):
    server = CrashServer(fsync=True)
    result = _crash_round(monkeypatch, server)
    assert result.problems == [] and server.lost == []
    assert (result.committed_missing, result.in_flight_present, result.recovery_logged) == (0, 0, True)
    assert result.rows_committed >= 90 and result.accepting_ms is not None


def test_crash_round_says_an_acknowledged_commit_was_lost(monkeypatch):
    server = CrashServer(fsync=False)
    result = _crash_round(monkeypatch, server)
    assert len(server.lost) == 1, server.lost  # the last commit acknowledged before the kill
    assert result.problems == ["fsync = off (an acknowledged commit may not survive a crash)",
                               f"1 committed row(s) missing after the crash: {server.lost[0]}"]
    assert result.committed_missing == 1 and result.recovery_logged


# ---------------------------------------------------------------------------------------------- broker verdict


class FakeBroker:
    """A broker in memory, as the drill sees it: confirmed publishes queue up, deliveries wait for an
    acknowledgement, a cancelled consumer's unacknowledged deliveries go back to the queue, and a kill keeps the
    queue (a durable broker) or, with ``loses_queue_contents``, keeps nothing that was not acknowledged."""

    def __init__(self, loses_queue_contents: bool = False) -> None:
        self.loses = loses_queue_contents
        self.queue: list[int] = []
        self.unacked: list[int] = []
        self.confirmed: set[int] = set()

    def publish(self, first: int, last: int) -> None:
        for seq in range(first, last + 1):
            self.queue.append(seq)
            self.confirmed.add(seq)

    def deliver(self, count: int) -> list[int]:
        out, self.queue = self.queue[:count], self.queue[count:]
        self.unacked += out
        return out

    def ack(self, count: int) -> set[int]:
        acked, self.unacked = set(self.unacked[:count]), self.unacked[count:]
        return acked

    def cancel(self) -> None:
        self.queue, self.unacked = self.unacked + self.queue, []

    def kill(self) -> None:
        if self.loses:
            self.queue = []


def _broker_round(broker: FakeBroker) -> tuple[dict[str, int], list[str]]:
    """The drill's sequence against ``broker``: 200 confirmed, 75 delivered, 50 acknowledged, the consumer
    cancelled, 100 more confirmed, the kill, 20 confirmed after the restart, a second consumer drains."""
    broker.publish(1, 200)
    before = broker.deliver(75)
    acknowledged = broker.ack(50)
    broker.cancel()
    broker.publish(201, 300)
    at_fault = set(broker.confirmed)
    broker.kill()
    broker.publish(301, 320)
    after = broker.deliver(10_000)
    return broker_verdict(broker.confirmed, set(), acknowledged, at_fault, before, after)


def test_broker_verdict_of_a_durable_broker_counts_the_messages_at_risk():
    counts, problems = _broker_round(FakeBroker())
    assert problems == []
    # 300 confirmed at the kill, 50 acknowledged: 250 at risk, every one delivered after the restart (the 25
    # delivered and not acknowledged before the fault again: duplicates, allowed).
    assert counts == {"confirmed_at_risk": 250, "at_risk_delivered": 250, "confirmed_missing": 0,
                      "unconfirmed_lost": 0, "duplicates": 25}


def test_broker_verdict_says_lost_when_nothing_is_redelivered_after_the_restart():
    counts, problems = _broker_round(FakeBroker(loses_queue_contents=True))
    assert problems == ["250 confirmed message(s) lost: not acknowledged before the broker loss and not delivered "
                        "after it: 51, 52, 53, 54, 55, 56, 57, 58, 59, 60 … (+240)"]
    assert (counts["confirmed_at_risk"], counts["at_risk_delivered"], counts["confirmed_missing"]) == (250, 0, 250)


def test_broker_verdict_says_a_delivered_but_unacknowledged_message_must_come_again():
    # The consumer saw 1-3 before the fault but acknowledged only 1: 2 and 3 were still the broker's to keep.
    counts, problems = broker_verdict(confirmed=set(range(1, 104)), unconfirmed=set(), acknowledged={1},
                                      confirmed_at_fault=set(range(1, 104)), before=[1, 2, 3],
                                      after=list(range(4, 104)))
    assert problems == ["2 confirmed message(s) lost: not acknowledged before the broker loss and not delivered "
                        "after it: 2, 3"]
    assert counts["confirmed_at_risk"] == 102


def test_broker_verdict_fails_a_round_with_too_little_at_risk():
    counts, problems = broker_verdict(confirmed=set(range(1, 151)), unconfirmed=set(),
                                      acknowledged=set(range(1, 100)), confirmed_at_fault=set(range(1, 151)),
                                      before=list(range(1, 100)), after=list(range(100, 151)))
    assert counts["confirmed_at_risk"] == AT_RISK_MIN - 49
    assert problems == [f"only 51 confirmed message(s) were at risk (confirmed, not acknowledged) at the fault; the "
                        f"round needs at least {AT_RISK_MIN} to mean anything"]


def test_broker_verdict_counts_unconfirmed_losses_and_duplicates_without_a_problem():
    at_risk = set(range(1, 101))
    counts, problems = broker_verdict(confirmed=at_risk, unconfirmed={101, 102}, acknowledged=set(),
                                      confirmed_at_fault=at_risk, before=[1, 2], after=[*range(1, 101), 101])
    assert problems == []
    assert (counts["unconfirmed_lost"], counts["duplicates"]) == (1, 2)


def test_broker_verdict_says_a_message_nobody_published_was_delivered():
    at_risk = set(range(1, 101))
    _, problems = broker_verdict(confirmed=at_risk, unconfirmed=set(), acknowledged=set(), confirmed_at_fault=at_risk,
                                 before=[], after=[*range(1, 101), 999])
    assert problems == ["1 delivered message(s) that were never published: 999"]


def test_declare_durability_verdict_pins_both_sides_of_the_finding_per_store():
    assert durability_verdict("mnesia", True, unsettled_lost=True, settled_lost=False) == []
    assert durability_verdict("khepri", False, unsettled_lost=False, settled_lost=False) == []
    # Mnesia without the loss: the finding was not reproduced (e.g. a broker where the window closed).
    assert durability_verdict("mnesia", True, unsettled_lost=False, settled_lost=False) == [
        "mnesia: the queue killed right after its declare-ok survived after the restart; the module's table says it "
        "is lost on mnesia"]
    # Khepri losing a queue after its declare-ok: a real loss, not the known Mnesia window.
    assert durability_verdict("khepri", False, unsettled_lost=True, settled_lost=False) == [
        "khepri: the queue killed right after its declare-ok was gone after the restart; the module's table says it "
        "is kept on khepri"]
    assert durability_verdict("mnesia", True, unsettled_lost=True, settled_lost=True) == [
        "mnesia: the queue declared and settled on disk before the kill was gone after the restart"]


# ----------------------------------------------------------------------------------------------- Vault verdict


def test_vault_verdict_intact_kv_has_no_problem():
    acked, documents = {"drill/1": "a", "drill/2": "b"}, {"postgres": {"password": "x"}}
    counts, problems = vault_verdict(acked, dict(acked), documents, {"postgres": {"password": "x"}})
    assert problems == [] and counts == {"kv_lost": 0}


def test_vault_verdict_says_a_kv_value_was_lost_across_the_seal():
    acked = {"drill/1": "a", "drill/2": "b", "drill/3": "c"}
    counts, problems = vault_verdict(acked, {"drill/1": "a", "drill/2": "b", "drill/3": None}, {}, {})
    assert problems == ["1 acknowledged KV value(s) lost across the seal: drill/3"]
    assert counts["kv_lost"] == 1


def test_vault_verdict_counts_an_older_value_as_lost():
    _, problems = vault_verdict({"drill/1": "new"}, {"drill/1": "old"}, {}, {})
    assert problems == ["1 acknowledged KV value(s) lost across the seal: drill/1"]


def test_vault_verdict_says_a_service_document_changed():
    _, problems = vault_verdict({}, {}, {"mysql": {"password": "x"}}, {"mysql": {"password": "y"}})
    assert problems == ["KV document(s) of mysql changed across the seal"]


# ------------------------------------------------------------------------------------------------ plumbing


def test_outage_is_the_longest_gap_from_the_last_ack_before_the_fault():
    assert outage_ms([0.0, 0.1, 0.2, 1.7, 1.8], t0=0.15) == 1500.0
    assert outage_ms([0.0, 0.1], t0=0.15) is None  # nothing acknowledged after the fault
    assert outage_ms([0.2, 0.3], t0=0.15) is None  # nothing before it


def test_fault_undo_runs_once_also_when_the_round_raises():
    undone = []
    with pytest.raises(RuntimeError, match="mid-round"), fault_applied(lambda: None, lambda: undone.append(1)):
        raise RuntimeError("mid-round")
    assert undone == [1]
    with fault_applied(lambda: None, lambda: undone.append(2)) as undo:
        undo()
    assert undone == [1, 2]


def test_every_declared_drill_has_a_loop_and_metrics():
    drills = service_drills()
    assert {"postgres-crash", "mysql-crash", "rabbitmq-broker-loss", "rabbitmq-declare-durability",
            "vault-seal"} <= set(drills)
    for name, (service, drill) in drills.items():
        assert runner_for(drill) is not None
        assert metrics_for(drill) == METRICS[drill.kind]
        assert registry.get(service).drills and drill in registry.get(service).drills, name
    assert drill_names()[:len(REDIS_DRILLS)] == list(REDIS_DRILLS)


def test_cli_offers_every_drill_and_fault():
    parser = build_parser()
    for name, (_, drill) in service_drills().items():
        for fault in drill.faults:
            args = parser.parse_args(["drill", name, "--rounds", "1", "--fault", fault])
            assert (args.kind, args.fault) == (name, fault)


def test_pick_fault_cycles_and_refuses_a_fault_the_drill_lacks():
    _, drill = service_drills()["postgres-crash"]
    assert [pick_fault(drill, n, "cycle") for n in range(3)] == ["sigkill", "docker-kill", "sigkill"]
    _, mysql = service_drills()["mysql-crash"]
    with pytest.raises(DrillError) as exc:
        pick_fault(mysql, 0, "sigkill")
    assert str(exc.value) == "drill mysql-crash offers the faults docker-kill, not 'sigkill'"


def test_a_drill_declaration_refuses_unknown_kinds_and_faults():
    with pytest.raises(ValueError, match="unknown kind") as kind:
        ServiceDrill("x-crash", "explode", ("docker-kill",), "")
    assert str(kind.value) == ("drill 'x-crash': unknown kind 'explode'; one of sql-crash, broker-loss, "
                               "declare-durability, vault-seal")
    with pytest.raises(ValueError, match="faults must be") as fault:
        ServiceDrill("x-crash", "sql-crash", ("unplug",), "")
    assert str(fault.value) == f"drill 'x-crash': faults must be some of {', '.join(FAULT_HELP)}, got unplug"


def test_report_and_text_lines_of_a_service_drill():
    rounds = [SqlCrashRound(0, "sigkill", "postgres", accepting_ms=200.0, client_outage_ms=150.0),
              SqlCrashRound(1, "docker-kill", "postgres", accepting_ms=800.0, client_outage_ms=700.0,
                            problems=["1 committed row(s) missing after the crash: 7"])]
    data = report("postgres-crash", rounds, {"service": "postgres"}, metrics=METRICS["sql-crash"])
    assert data["failed_rounds"] == [1]
    assert data["summary"]["accepting_ms"] == {"n": 2.0, "median": 500.0, "p95": 800.0, "max": 800.0}
    lines = drill_lines(data)
    assert lines[1].split() == ["round", "fault", "victim", *METRICS["sql-crash"]]
    assert lines[-1] == "round 1: PROBLEM: 1 committed row(s) missing after the crash: 7"


def test_cli_refuses_a_fault_the_drill_does_not_have_before_starting_anything(capsys, monkeypatch):
    code, out, err = run_cli(capsys, monkeypatch, "drill", "mysql-crash", "--fault", "sigkill")
    assert code == 2, out + err
    assert "drill mysql-crash offers the faults docker-kill, not 'sigkill'" in " ".join(err.split())
    code, out, err = run_cli(capsys, monkeypatch, "drill", "redis-failover", "--fault", "docker-kill")
    assert code == 2, out + err
    assert "redis-failover faults: kill, stop, pause, disconnect or cycle, not 'docker-kill'" in " ".join(err.split())
