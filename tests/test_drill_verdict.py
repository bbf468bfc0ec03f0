"""The drill verdict (``harness.drills.verdict``) refuses a round the suites would refuse, with the exact problem, and
``python -m harness drill`` exits 1 on it (before, the CLI judged only the round's own problems: a promotion slower
than ``drill_promote_max_ms``, zero replicated writes or too little work passed). Fakes of the broken round; the
limits come from the settings the test builds (no Docker)."""

from __future__ import annotations

import ast
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.drills import kit, net, runner
from harness.drills import redis as redis_drills
from harness.drills.broker import AT_RISK_MIN, BrokerRound, DurabilityRound
from harness.drills.net import LatencyRound, PartitionRound
from harness.drills.redis import KEYS_PER_MASTER, FailoverRound, NodeLossRound
from harness.drills.sql import BEFORE_FAULT as SQL_BEFORE_FAULT
from harness.drills.sql import SqlCrashRound
from harness.drills.vault import KV_BEFORE, LOGINS_BEFORE, VaultRound
from harness.drills.verdict import RULES, judge, verdict
from harness.settings import Settings, load_settings
from harness.stacks import engine
from stack.redis_cluster import RedisCluster

SETTINGS = Settings(drill_promote_max_ms=3000, drill_round_timeout_s=30.0)


def good_failover(settings: Settings = SETTINGS, **changes: Any) -> FailoverRound:
    promote = settings.drill_promote_max_ms / 2
    return replace(FailoverRound(0, "kill", "redis-1", detect_ms=promote - 500, promote_ms=promote,
                                 cluster_ok_ms=promote + 100, client_outage_ms=promote + 200, rejoin_ms=900.0,
                                 writes_acked=400, writes_replicated=390, lost_writes=0, lost_replicated=0), **changes)


def good_node_loss(settings: Settings = SETTINGS, **changes: Any) -> NodeLossRound:
    written = settings.redis_masters * KEYS_PER_MASTER
    return replace(NodeLossRound(0, False, "redis-2", detect_ms=2000.0, recovery_ms=1200.0, keys_written=written,
                                 keys_missing=0, surviving_slots_served=True,
                                 lost_slots_error="MOVED 5461 172.18.0.3:6379", victim_ip="172.18.0.3"), **changes)


def good_partition(**changes: Any) -> PartitionRound:
    return replace(PartitionRound(0, "iptables, min-replicas-to-write 1", "redis-1", 1, detect_ms=4100.0,
                                  victim_down_ms=3000.0, promote_ms=5000.0, cluster_ok_ms=5000.0,
                                  last_victim_ack_ms=900.0, rejoin_ms=2000.0, writes_acked=600,
                                  writes_replicated=580, split_brain_writes=0, lost_writes=0, lost_replicated=0,
                                  writer_errors={"ResponseError NOREPLICAS": 12}), **changes)


def good_latency(**changes: Any) -> LatencyRound:
    return replace(LatencyRound(0, "netem 250ms", "redis-1", 250, 1000, method="netem", before_p50_ms=1.0,
                                before_p99_ms=3.0, during_p50_ms=260.0, during_p99_ms=300.0, added_p50_ms=259.0,
                                ops_before=900, ops_during=1500, pfail_flags=0, failovers=0, recover_ms=300.0),
                   **changes)


def good_sql(**changes: Any) -> SqlCrashRound:
    return replace(SqlCrashRound(0, "docker-kill", "postgres", accepting_ms=2500.0, client_outage_ms=2700.0,
                                 rows_committed=300, committed_missing=0, in_flight_present=0, in_doubt=1,
                                 in_doubt_present=0, recovery_logged=True), **changes)


def good_broker(**changes: Any) -> BrokerRound:
    return replace(BrokerRound(0, "docker-kill", "rabbitmq", broker_back_ms=6000.0, client_outage_ms=6500.0,
                               confirmed_at_risk=AT_RISK_MIN + 40, at_risk_delivered=AT_RISK_MIN + 40,
                               confirmed_missing=0, unconfirmed_lost=1, duplicates=3), **changes)


def good_vault(**changes: Any) -> VaultRound:
    return replace(VaultRound(0, "kill", "vault", unsealed_ms=3000.0, login_resume_ms=3100.0,
                              issue_resume_ms=3200.0, client_outage_ms=3300.0, client_errors=40,
                              kv_written=KV_BEFORE + 60, kv_lost=0, logins=12, certificates=LOGINS_BEFORE + 8,
                              sealed_seen=True), **changes)


GOOD = {"redis-failover": good_failover, "redis-node-loss": good_node_loss, "redis-partition": good_partition,
        "latency": good_latency, "sql-crash": good_sql, "broker-loss": good_broker, "vault-seal": good_vault,
        "declare-durability": lambda: DurabilityRound(0, "docker-kill", "rabbitmq", store="mnesia",
                                                      unsettled_lost=True, settled_lost=False,
                                                      unsettled_back_ms=5000.0, settled_back_ms=5100.0)}


def test_every_kind_has_rules_and_a_healthy_round_passes():
    assert set(RULES) == set(GOOD)
    for kind, make in GOOD.items():
        assert verdict(kind, make(), SETTINGS) == [], kind


# -------------------------------------------------------------------------------------------- failover


def test_failover_slower_than_the_promote_limit():
    limit = SETTINGS.drill_promote_max_ms
    slow = good_failover(detect_ms=limit - 200, promote_ms=limit + 0.5, cluster_ok_ms=limit + 10)
    assert verdict("redis-failover", slow, SETTINGS) == [
        f"promotion took {limit + 0.5:g} ms, beyond drill_promote_max_ms ({limit} ms)"]
    assert verdict("redis-failover", replace(slow, promote_ms=float(limit)), SETTINGS) == []  # the limit itself


def test_failover_limit_follows_the_settings():
    stricter = SETTINGS.with_overrides(drill_promote_max_ms=1000)
    assert verdict("redis-failover", good_failover(), stricter) == [
        "promotion took 1500 ms, beyond drill_promote_max_ms (1000 ms)"]


def test_failover_detected_after_the_promotion():
    assert verdict("redis-failover", good_failover(detect_ms=1600.0), SETTINGS) == [
        "stages out of order: detected (1600 ms) after the promotion (1500 ms)"]


def test_failover_promoted_after_the_cluster_was_ok():
    assert verdict("redis-failover", good_failover(cluster_ok_ms=1498.9), SETTINGS) == [
        "stages out of order: promoted (1500 ms) after cluster_state ok (1498.9 ms)"]


def test_failover_without_a_replicated_write_proves_nothing():
    assert verdict("redis-failover", good_failover(writes_replicated=0), SETTINGS) == [
        "too little work for the round to mean anything: writes_replicated 0, more than 0 needed"]


def test_failover_lost_a_wait_confirmed_write():
    assert verdict("redis-failover", good_failover(lost_writes=3, lost_replicated=2), SETTINGS) == [
        "2 write(s) confirmed by WAIT 1 were lost"]


def test_failover_figures_not_measured():
    assert verdict("redis-failover", good_failover(client_outage_ms=None, rejoin_ms=None), SETTINGS) == [
        "not measured: client_outage_ms, rejoin_ms"]


# ------------------------------------------------------------------------------------------- node loss


def test_node_loss_with_full_coverage_must_refuse_every_key():
    served = good_node_loss(full_coverage=True, surviving_slots_served=True,
                            lost_slots_error="MOVED 5461 172.18.0.3:6379")
    assert verdict("redis-node-loss", served, SETTINGS) == [
        "with cluster-require-full-coverage yes the surviving masters still served their keys (expected "
        "CLUSTERDOWN for every key)",
        "a key of the lost master answered 'MOVED 5461 172.18.0.3:6379', expected CLUSTERDOWN"]
    refused = replace(served, surviving_slots_served=False, lost_slots_error="CLUSTERDOWN The cluster is down")
    assert verdict("redis-node-loss", refused, SETTINGS) == []


def test_node_loss_without_full_coverage_must_redirect_to_the_lost_master():
    elsewhere = good_node_loss(lost_slots_error="MOVED 5461 172.18.0.4:6379")
    assert verdict("redis-node-loss", elsewhere, SETTINGS) == [
        "a key of the lost master answered 'MOVED 5461 172.18.0.4:6379', expected MOVED to its address 172.18.0.3"]
    down = good_node_loss(surviving_slots_served=False)
    assert verdict("redis-node-loss", down, SETTINGS) == [
        "with cluster-require-full-coverage no the surviving masters did not serve their keys"]


def test_node_loss_missing_keys_and_too_few_written():
    expected = SETTINGS.redis_masters * KEYS_PER_MASTER
    assert verdict("redis-node-loss", good_node_loss(keys_missing=4), SETTINGS) == [
        f"4 of {expected} keys written before the loss are missing after the recovery from the AOF"]
    assert verdict("redis-node-loss", good_node_loss(keys_written=expected - 1), SETTINGS) == [
        f"{expected - 1} keys written before the loss, expected {expected} "
        f"({SETTINGS.redis_masters} masters x {KEYS_PER_MASTER})"]


# ----------------------------------------------------------------------------------- partition, latency


def test_partition_without_a_replicated_write_proves_nothing():
    assert verdict("redis-partition", good_partition(writes_replicated=0), SETTINGS) == [
        "too little work for the round to mean anything: writes_replicated 0, more than 0 needed"]


def test_partition_stages_not_measured():
    assert verdict("redis-partition", good_partition(detect_ms=None, rejoin_ms=None), SETTINGS) == [
        "not measured: detect_ms, rejoin_ms"]


def test_latency_without_operations_before_or_during_the_delay():
    assert verdict("latency", good_latency(ops_before=0), SETTINGS) == [
        "too little work for the round to mean anything: ops_before 0, more than 0 needed"]
    assert verdict("latency", good_latency(failovers=None), SETTINGS) == ["not measured: failovers"]


# ------------------------------------------------------------------------------------------ service drills


def test_sql_crash_with_too_few_commits():
    assert verdict("sql-crash", good_sql(rows_committed=SQL_BEFORE_FAULT), SETTINGS) == [
        f"too little work for the round to mean anything: rows_committed {SQL_BEFORE_FAULT}, more than "
        f"{SQL_BEFORE_FAULT} needed"]


def test_sql_crash_that_ended_early_measured_nothing():
    early = SqlCrashRound(0, "docker-kill", "postgres", problems=["postgres did not accept a login"])
    assert verdict("sql-crash", early, SETTINGS) == [
        "not measured: accepting_ms, client_outage_ms, committed_missing, in_flight_present, in_doubt, "
        "recovery_logged, rows_committed"]


def test_a_service_figure_beyond_the_round_deadline():
    deadline_ms = SETTINGS.drill_round_timeout_s * 1000
    assert verdict("broker-loss", good_broker(broker_back_ms=deadline_ms + 1), SETTINGS) == [
        f"broker_back_ms {deadline_ms + 1:g} ms: beyond the round's deadline ({deadline_ms:g} ms, "
        "drill_round_timeout_s)"]


def test_vault_seal_with_too_little_work():
    assert verdict("vault-seal", good_vault(kv_written=KV_BEFORE, certificates=LOGINS_BEFORE), SETTINGS) == [
        f"too little work for the round to mean anything: kv_written {KV_BEFORE}, more than {KV_BEFORE} needed",
        f"too little work for the round to mean anything: certificates {LOGINS_BEFORE}, more than {LOGINS_BEFORE} "
        "needed"]
    assert verdict("vault-seal", good_vault(sealed_seen=None), SETTINGS) == ["not measured: sealed_seen"]


def test_declare_durability_side_not_measured():
    half = DurabilityRound(0, "docker-kill", "rabbitmq", store="khepri", unsettled_lost=False,
                           unsettled_back_ms=5000.0)
    assert verdict("declare-durability", half, SETTINGS) == ["not measured: settled_lost, settled_back_ms"]


def test_judge_appends_once_and_keeps_the_rounds_own_problems():
    slow = good_failover(writes_replicated=0, problems=["redis-1 came back as a master, expected a replica"])
    assert judge("redis-failover", judge("redis-failover", slow, SETTINGS), SETTINGS).problems == [
        "redis-1 came back as a master, expected a replica",
        "too little work for the round to mean anything: writes_replicated 0, more than 0 needed"]


def test_an_unknown_kind_has_no_verdict():
    with pytest.raises(kit.DrillError) as raised:
        verdict("redis-teleport", good_failover(), SETTINGS)
    assert str(raised.value).startswith("no verdict rules for drill kind 'redis-teleport'; known: redis-failover")


# ---------------------------------------------------------------------------------- the CLI judges the same


class FakeStack:
    """Starts nothing; hands out a RedisCluster that no fake round ever touches."""

    def __init__(self, settings: Settings, log: Any = None, keep: bool = False) -> None:
        self.settings = settings
        self.run_id = "run-verdict"

    def start(self, services: list[str]) -> None:
        pass

    def require(self, name: str) -> Any:
        return RedisCluster.__new__(RedisCluster)

    def close(self) -> None:
        pass


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """``python -m harness drill KIND`` in process on a fake stack; returns (exit code, the saved report)."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("HARNESS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HARNESS_DRILL_PROMOTE_MAX_MS", "3000")
    monkeypatch.setattr(engine, "Stack", FakeStack)
    monkeypatch.setattr(net, "nettools_image", lambda settings: "nettools")

    def run(kind: str) -> tuple[int, dict[str, Any]]:
        path = tmp_path / f"{kind}.json"
        code = main(["drill", kind, "--rounds", "1", "--report", str(path)])
        return code, json.loads(path.read_text())

    return run


def test_cli_fails_a_failover_slower_than_the_promote_limit(cli, monkeypatch):
    limit = load_settings().drill_promote_max_ms  # what the CLI reads: HARNESS_DRILL_PROMOTE_MAX_MS
    assert limit == 3000
    slow = good_failover(detect_ms=limit - 200.0, promote_ms=limit + 100.0, cluster_ok_ms=limit + 150.0)
    monkeypatch.setattr(redis_drills, "failover_round", lambda *a, **kw: replace(slow, problems=[]))
    code, data = cli("redis-failover")
    assert (code, data["failed_rounds"]) == (1, [0])
    assert data["rounds"][0]["problems"] == [f"promotion took {limit + 100:g} ms, beyond drill_promote_max_ms "
                                             f"({limit} ms)"]


def test_cli_fails_a_node_loss_with_missing_keys(cli, monkeypatch):
    monkeypatch.setattr(redis_drills, "node_loss_round", lambda *a, **kw: good_node_loss(keys_missing=3))
    code, data = cli("redis-node-loss")
    assert (code, data["rounds"][0]["problems"]) == (1, [
        f"3 of {SETTINGS.redis_masters * KEYS_PER_MASTER} keys written before the loss are missing after the "
        "recovery from the AOF"])


def test_cli_fails_a_partition_without_a_replicated_write(cli, monkeypatch):
    monkeypatch.setattr(net, "partition_round", lambda *a, **kw: good_partition(writes_replicated=0))
    code, data = cli("redis-partition")
    assert (code, data["rounds"][0]["problems"]) == (1, [
        "too little work for the round to mean anything: writes_replicated 0, more than 0 needed"])


def test_cli_fails_a_latency_round_that_did_not_watch_for_failovers(cli, monkeypatch):
    monkeypatch.setattr(net, "latency_round", lambda *a, **kw: good_latency(pfail_flags=None,
                                                                                    failovers=None))
    code, data = cli("latency")
    assert (code, data["rounds"][0]["problems"]) == (1, ["not measured: pfail_flags, failovers"])


def test_cli_fails_a_service_drill_with_too_little_work(cli, monkeypatch):
    monkeypatch.setitem(runner.RUNNERS, "sql-crash", lambda *a, **kw: good_sql(rows_committed=SQL_BEFORE_FAULT))
    code, data = cli("postgres-crash")
    assert (code, data["rounds"][0]["problems"]) == (1, [
        f"too little work for the round to mean anything: rows_committed {SQL_BEFORE_FAULT}, more than "
        f"{SQL_BEFORE_FAULT} needed"])


def test_cli_passes_healthy_rounds(cli, monkeypatch):
    monkeypatch.setattr(redis_drills, "failover_round", lambda *a, **kw: good_failover())
    monkeypatch.setitem(runner.RUNNERS, "sql-crash", lambda *a, **kw: good_sql())
    for kind in ("redis-failover", "postgres-crash"):
        code, data = cli(kind)
        assert (code, data["failed_rounds"], data["rounds"][0]["problems"]) == (0, [], []), kind



ROUND_FUNCTIONS = {"failover_round", "node_loss_round", "partition_round", "latency_round"}
ROOT = Path(__file__).resolve().parent.parent


def _unjudged_rounds(text: str, label: str) -> list[str]:
    """Calls of a round function (or of ``runner_for(...)(...)``) whose result does not go straight into
    ``judge(kind, <call>, settings)``."""
    tree = ast.parse(text)
    judged = {id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call)
              and isinstance(node.func, ast.Name) and node.func.id == "judge" for arg in node.args}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if isinstance(node.func, ast.Call) and isinstance(node.func.func, ast.Name) and \
                node.func.func.id == "runner_for":
            name = "runner_for(...)"
        if name in (*ROUND_FUNCTIONS, "runner_for(...)") and id(node) not in judged:
            found.append(f"{label}:{node.lineno}: {name}")
    return found


def test_the_suites_and_the_cli_judge_every_round():
    """A suite that ran a round without :func:`judge` (or :func:`~harness.drills.runner.run_round`) would hold it to
    fewer rules than the nightly's CLI run, or the other way round."""
    paths = [*sorted((ROOT / "suites").rglob("test_*.py")), ROOT / "harness" / "cli.py",
             ROOT / "harness" / "drills" / "runner.py"]
    assert [p for path in paths for p in _unjudged_rounds(path.read_text(), str(path.relative_to(ROOT)))] == []


def test_an_unjudged_round_is_found():
    text = ("a = failover_round(cluster, 0, 'kill', timeout=60)\n"
            "b = runner_for(drill)(stack, service, drill, 0, fault, timeout=60)\n"
            "c = judge('latency', latency_round(cluster, 0, 250, 'auto', 60, image), settings)\n"
            "d = judge(drill.kind, runner_for(drill)(stack, service, drill, 0, fault, timeout=60), settings)\n")
    assert _unjudged_rounds(text, "t.py") == ["t.py:1: failover_round", "t.py:2: runner_for(...)"]
