"""Service drills (``ServiceSpec.drills``): one round per drill and fault on a stack of their own, figures always
reported (median/p95/max in the run report, compared by ``report summarize``), invariants asserted.

Invariants: 0 committed rows lost and the in-flight transaction rolled back (SQL crash); at least 100 confirmed
messages at risk at the kill, none lost, and the durable queue still there (broker loss); a just-declared queue lost
on Mnesia when its commit decisions are held back, kept on Khepri, and kept when settled (declare durability); 0
acknowledged KV writes lost, Vault back sealed and unsealed by the harness, AppRole logins and certificate
issuance resumed (Vault seal). Durations are printed, not asserted, beyond the round's own deadline
(``drill_round_timeout_s``), which catches a hang. Every round is judged by :func:`harness.drills.runner.run_round`
(:mod:`harness.drills.verdict`), as ``python -m harness drill`` judges it.
"""

from __future__ import annotations

import pytest

from harness.drills.kit import service_drills
from harness.drills.redis import drill_lines, report
from harness.drills.runner import metrics_for, run_round
from stack import registry

pytestmark = [pytest.mark.drill, pytest.mark.destructive, pytest.mark.own_stack]

CASES = [pytest.param(name, fault, marks=getattr(pytest.mark, registry.get(service).marker), id=f"{name}-{fault}")
         for name, (service, drill) in service_drills().items() for fault in drill.faults]


@pytest.mark.parametrize(("name", "fault"), CASES)
def test_service_drill_round(drill_stack, drill_results, name, fault):
    service, drill = service_drills()[name]
    # Judged as `python -m harness drill NAME` judges it (harness.drills.verdict): every figure measured, the
    # durations within the round's deadline, enough work done; the round's own verdict for its losses.
    result = run_round(drill_stack, service, drill, 0, fault, drill_stack.settings.drill_round_timeout_s)
    data = report(name, [result], {"fault": fault, "service": service}, metrics=metrics_for(drill))
    drill_results.append(data)
    print("\n".join(drill_lines(data)))
    if drill.kind == "broker-loss":
        print(f"at risk {result.confirmed_at_risk}, delivered after the restart {result.at_risk_delivered}; "
              f"unconfirmed lost: {result.unconfirmed_lost}; duplicates delivered: {result.duplicates} "
              f"(at least once by design)")
    elif drill.kind == "declare-durability":
        print(f"metadata store {result.store}: unsettled queue lost {result.unsettled_lost}, settled queue lost "
              f"{result.settled_lost}")

    assert not result.problems, result.problems
    if drill.kind == "vault-seal":  # the live Vault, after the round
        assert drill_stack.require("vault").health()["sealed"] is False, "the harness left Vault sealed"
