"""Running a service drill: which loop measures each drill kind, and the rounds, each judged as it ends.

A service drill's *kind* (``ServiceDrill.kind``, declared by its service module) names its measuring loop:
``sql-crash`` (:mod:`harness.drills.sql`), ``broker-loss`` and ``declare-durability`` (:mod:`harness.drills.broker`),
``vault-seal`` (:mod:`harness.drills.vault`). The table below is the one place that maps a kind to its loop and its
figures; the loops know nothing of it. The suites (one round at a time, :func:`run_round`) and the CLI (a whole
drill, :func:`run_service_drill`) both run rounds here, so both judge them by :func:`harness.drills.verdict.judge`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from harness.drills.broker import BROKER_METRICS, DURABILITY_METRICS, broker_loss_round, declare_durability_round
from harness.drills.kit import DrillError, pick_fault, service_drills
from harness.drills.redis import report
from harness.drills.sql import SQL_METRICS, sql_crash_round
from harness.drills.vault import VAULT_METRICS, vault_seal_round
from harness.drills.verdict import judge
from stack.drill_ops import ServiceDrill


class Runner(Protocol):
    def __call__(self, stack: Any, service: str, drill: ServiceDrill, number: int, fault: str,
                 timeout: float) -> Any: ...


#: drill kind -> the loop that runs one round of it.
RUNNERS: dict[str, Runner] = {
    "sql-crash": sql_crash_round,
    "broker-loss": broker_loss_round,
    "declare-durability": declare_durability_round,
    "vault-seal": vault_seal_round,
}
#: drill kind -> the figures its rounds measure, summarized as median/p95/max in the report.
METRICS: dict[str, tuple[str, ...]] = {
    "sql-crash": SQL_METRICS,
    "broker-loss": BROKER_METRICS,
    "declare-durability": DURABILITY_METRICS,
    "vault-seal": VAULT_METRICS,
}


def runner_for(drill: ServiceDrill) -> Runner:
    """The loop of ``drill``'s kind."""
    if drill.kind not in RUNNERS:
        raise DrillError(f"drill {drill.name}: no loop runs kind {drill.kind!r}")
    return RUNNERS[drill.kind]


def metrics_for(drill: ServiceDrill) -> tuple[str, ...]:
    runner_for(drill)
    return METRICS[drill.kind]


def run_round(stack: Any, service: str, drill: ServiceDrill, number: int, fault: str, timeout: float) -> Any:
    """One round of ``drill`` on ``stack``, judged (:func:`harness.drills.verdict.judge`, with the stack's settings)
    as the suites and the CLI both need it."""
    return judge(drill.kind, runner_for(drill)(stack, service, drill, number, fault, timeout=timeout), stack.settings)


def run_service_drill(stack: Any, name: str, rounds: int, fault: str, timeout: float,
                      on_round: Callable[[int, str], None] = lambda n, f: None) -> dict[str, Any]:
    """Start ``name``'s service in ``stack`` (Vault and its dependencies too), run ``rounds`` rounds (faults as
    :func:`~harness.drills.kit.pick_fault` says), and return the drill's report
    (:func:`harness.drills.redis.report`)."""
    service, drill = service_drills()[name]
    runner_for(drill)  # an unknown kind is refused before anything starts
    faults = [pick_fault(drill, number, fault) for number in range(rounds)]  # refuse a bad --fault up front
    stack.start([service])
    done = []
    for number, chosen in enumerate(faults):
        on_round(number, chosen)
        done.append(run_round(stack, service, drill, number, chosen, timeout))
    return report(name, done, {"service": service, "faults": ",".join(dict.fromkeys(faults)), "rounds": rounds},
                  metrics=metrics_for(drill))
