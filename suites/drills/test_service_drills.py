"""Service drills (``ServiceSpec.drills``): one round per drill and fault on a stack of their own, figures always
reported (median/p95/max in the run report, compared by ``report summarize``), invariants asserted.

Invariants: 0 committed rows lost and the in-flight transaction rolled back (SQL crash); at least 100 confirmed
messages at risk at the kill, none lost, and the durable queue still there (broker loss); a just-declared queue lost
on Mnesia when its commit decisions are held back, kept on Khepri, and kept when settled (declare durability); 0
acknowledged KV writes lost, Vault back sealed and unsealed by the harness, AppRole logins and certificate
issuance resumed (Vault seal). Durations are printed, not asserted, beyond the round's own deadline
(``drill_round_timeout_s``), which catches a hang.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from harness.drill_broker import AT_RISK_MIN
from harness.drill_kit import metrics_for, runner_for, service_drills
from harness.drills import drill_lines, report
from stack import registry

pytestmark = [pytest.mark.drill, pytest.mark.destructive, pytest.mark.own_stack]

CASES = [pytest.param(name, fault, marks=getattr(pytest.mark, registry.get(service).marker), id=f"{name}-{fault}")
         for name, (service, drill) in service_drills().items() for fault in drill.faults]


@pytest.mark.parametrize(("name", "fault"), CASES)
def test_service_drill_round(drill_stack, drill_results, name, fault):
    service, drill = service_drills()[name]
    timeout = drill_stack.settings.drill_round_timeout_s
    budget_ms = timeout * 1000
    result = runner_for(drill)(drill_stack, service, drill, 0, fault, timeout=timeout)
    data = report(name, [result], {"fault": fault, "service": service}, metrics=metrics_for(drill))
    drill_results.append(data)
    print("\n".join(drill_lines(data)))
    figures = asdict(result)

    assert not result.problems, result.problems
    for metric in metrics_for(drill):  # every figure measured; a duration within the round's deadline
        assert figures[metric] is not None, f"{metric} was not measured"
        if metric.endswith("_ms"):
            assert figures[metric] <= budget_ms, f"{metric} {figures[metric]} ms: beyond the round's deadline"
    if drill.kind == "sql-crash":
        assert result.rows_committed > 50, "the writer committed too little for the round to mean anything"
        assert result.committed_missing == 0, f"{result.committed_missing} acknowledged commits lost"
        assert result.in_flight_present == 0, "the uncommitted in-flight row survived the crash"
        assert result.recovery_logged, f"{service} logged no crash recovery: the fault was not a crash"
    elif drill.kind == "broker-loss":
        assert result.confirmed_at_risk >= AT_RISK_MIN, "too few confirmed messages at risk at the fault"
        assert result.confirmed_missing == 0, f"{result.confirmed_missing} confirmed messages lost"
        assert not result.queue_lost
        print(f"at risk {result.confirmed_at_risk}, delivered after the restart {result.at_risk_delivered}; "
              f"unconfirmed lost: {result.unconfirmed_lost}; duplicates delivered: {result.duplicates} "
              f"(at least once by design)")
    elif drill.kind == "declare-durability":
        print(f"metadata store {result.store}: unsettled queue lost {result.unsettled_lost}, settled queue lost "
              f"{result.settled_lost}")
    else:
        assert result.sealed_seen, f"Vault did not come back sealed after the {fault}"
        assert result.kv_written > 20 and result.certificates > 3
        assert result.kv_lost == 0, f"{result.kv_lost} acknowledged KV writes lost across the seal"
        assert drill_stack.require("vault").health()["sealed"] is False, "the harness left Vault sealed"

