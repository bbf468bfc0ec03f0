"""Placeholders never enter figures: a drill round that was not measured (it ended early, or never got that far)
holds None for every figure of its kind, not 0, so the report's median/p95/max, the summary and the HTML page
count only what was measured (no Docker)."""

from __future__ import annotations

import pytest

from harness.drills.broker import BROKER_METRICS, BrokerRound
from harness.drills.net import LATENCY_METRICS, PARTITION_METRICS, LatencyRound, PartitionRound
from harness.drills.redis import FAILOVER_METRICS, NODE_LOSS_METRICS, FailoverRound, NodeLossRound, report
from harness.drills.sql import SQL_METRICS, SqlCrashRound
from harness.drills.vault import VAULT_METRICS, VaultRound
from harness.reports.html import render
from harness.reports.summary import LoadedReport, summarize

UNMEASURED = {"n": 0.0, "median": None, "p95": None, "max": None}
# Each kind's round as it stands before anything was measured (its required fields only), and its figures.
FRESH = [
    pytest.param(FailoverRound(0, "kill", "redis-1"), FAILOVER_METRICS, id="redis-failover"),
    pytest.param(NodeLossRound(0, False, "redis-1"), NODE_LOSS_METRICS, id="redis-node-loss"),
    pytest.param(PartitionRound(0, "iptables", "redis-1", 1), PARTITION_METRICS, id="redis-partition"),
    pytest.param(LatencyRound(0, "netem 250ms", "redis-1", 250, 1000), LATENCY_METRICS, id="latency"),
    pytest.param(SqlCrashRound(0, "docker-kill", "postgres"), SQL_METRICS, id="sql-crash"),
    pytest.param(BrokerRound(0, "docker-kill", "rabbitmq"), BROKER_METRICS, id="broker-loss"),
    pytest.param(VaultRound(0, "kill", "vault"), VAULT_METRICS, id="vault-seal"),
]


@pytest.mark.parametrize(("fresh", "metrics"), FRESH)
def test_a_round_that_measured_nothing_has_no_figure(fresh, metrics):
    placeholders = {m: getattr(fresh, m) for m in metrics if getattr(fresh, m) is not None}
    assert placeholders == {}, f"figures that default to a value although nothing was measured: {placeholders}"
    summary = report("kind", [fresh], {}, metrics=metrics)["summary"]
    assert {m: s for m, s in summary.items() if s != UNMEASURED} == {}


@pytest.mark.parametrize(("fresh", "counted"), [
    pytest.param(SqlCrashRound(0, "docker-kill", "postgres"), ("rows_committed", "in_doubt_present",
                                                                "recovery_logged"), id="sql-crash"),
    pytest.param(VaultRound(0, "kill", "vault"), ("kv_written", "logins", "certificates", "sealed_seen"),
                 id="vault-seal"),
])
def test_what_a_round_that_ends_early_never_counted_is_unknown(fresh, counted):
    """A SQL or Vault round that returns early (the service did not come back) never counts its work nor reads the
    recovery log: None, not 0 rows / False ("counted, none")."""
    assert {f: getattr(fresh, f) for f in counted if getattr(fresh, f) is not None} == {}


def test_summary_and_html_say_not_measured_instead_of_0_lost():
    unmeasured = FailoverRound(0, "kill", "redis-1", problems=["replica r0 did not take over within 60 s"])
    data = {"schema": 1, "results": [{"nodeid": "suites/failover/t.py::t", "outcome": "failed", "reason": "x"}],
            "exitstatus": 1, "drills": [report("redis-failover", [unmeasured], {"fault": "kill"})]}
    markdown = summarize([LoadedReport("run.json", data)]).markdown
    assert ("Lost acknowledged writes, all rounds: redis-failover not measured. Of those, confirmed on a replica by "
            "`WAIT` (must be 0): not measured.") in markdown
    page = render([LoadedReport("run.json", data)], [], 0.25)
    assert "acknowledged writes confirmed on a replica by WAIT and lost (must be 0)</td><td>not measured" in page
