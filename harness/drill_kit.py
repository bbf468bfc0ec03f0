"""The plumbing every service drill shares: which drills exist, faults on a service's container with their undo
in ``finally``, acknowledged-operation timelines, and the round loop.

A service drill is declared by its service module (``ServiceSpec.drills``, :mod:`stack.drill_ops`); its *kind*
names the measuring loop here that runs it (:data:`RUNNERS`, filled by :mod:`harness.drill_sql`,
:mod:`harness.drill_broker` and :mod:`harness.drill_vault`). The Redis cluster drills (:mod:`harness.drills`) are
listed beside them, so the CLI takes its choices from both.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from stack import registry
from stack.drill_ops import ServiceDrill
from stack.errors import HarnessError
from stack.waiting import poll

#: The Redis cluster drills of :mod:`harness.drills` and :mod:`harness.drills_net`, run by the CLI itself.
REDIS_DRILLS = ("redis-failover", "redis-node-loss", "redis-partition", "latency")
POLL_S = 0.05


class DrillError(HarnessError):
    """A service drill could not be set up, or its service could not be brought back."""


def service_drills() -> dict[str, tuple[str, ServiceDrill]]:
    """Every drill a registered service declares: ``drill name -> (service, declaration)``."""
    found: dict[str, tuple[str, ServiceDrill]] = {}
    for spec in registry.specs():
        for drill in spec.drills:
            if drill.name in found or drill.name in REDIS_DRILLS:
                first = found[drill.name][0] if drill.name in found else "the Redis drills"
                raise DrillError(f"drill {drill.name!r} is declared twice ({first} and {spec.name})")
            found[drill.name] = (spec.name, drill)
    return found


def drill_names() -> list[str]:
    """The CLI's choices: the Redis drills, then every service drill in registry order."""
    return [*REDIS_DRILLS, *service_drills()]


def pick_fault(drill: ServiceDrill, number: int, chosen: str) -> str:
    """The fault of round ``number``: ``chosen``, or with ``cycle`` the declared faults in turn."""
    if chosen == "cycle":
        return drill.faults[number % len(drill.faults)]
    if chosen not in drill.faults:
        raise DrillError(f"drill {drill.name} offers the faults {', '.join(drill.faults)}, not {chosen!r}")
    return chosen


# ---------------------------------------------------------------------------------------------- faults


class _Wrapped(Protocol):
    status: str

    def kill(self, signal: str | None = None) -> None: ...
    def start(self) -> None: ...
    def reload(self) -> None: ...
    def restart(self, timeout: int = 10) -> None: ...


def ensure_running(wrapped: _Wrapped) -> None:
    """Start the container again unless it runs (the undo of every fault: harmless when it already runs)."""
    wrapped.reload()
    if wrapped.status != "running":
        wrapped.start()


class Undo:
    """A fault's undo that runs once: by the round when it measures the recovery, else on the way out."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action = action
        self.done = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            self._action()


@contextlib.contextmanager
def fault_applied(apply: Callable[[], None], undo: Callable[[], None]) -> Iterator[Undo]:
    """``apply()`` the fault; ``undo`` runs when the round calls it, and in any case when the block ends (an
    exception mid-round included), so no round leaves its service killed."""
    once = Undo(undo)
    try:
        apply()
        yield once
    finally:
        once()


# ---------------------------------------------------------------------------------------------- timelines


@dataclass
class Timeline:
    """What a client thread saw: when each operation was acknowledged, and its errors by kind."""

    acks: list[tuple[int, float]] = field(default_factory=list)  # (sequence number, monotonic time)
    errors: dict[str, int] = field(default_factory=dict)

    def ack(self, seq: int) -> None:
        self.acks.append((seq, time.monotonic()))

    def error(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def acked_after(self, moment: float) -> int:
        return sum(1 for _, at in self.acks if at > moment)


def outage_ms(times: list[float], t0: float) -> float | None:
    """The longest silence between consecutive acknowledgements from the last one at or before ``t0`` (the fault)
    on: what a client feels. None when nothing was acknowledged before the fault or after it."""
    start = max((i for i, at in enumerate(times) if at <= t0), default=None)
    if start is None or times[-1] <= t0:
        return None
    span = times[start:]
    return round(max(b - a for a, b in itertools.pairwise(span)) * 1000, 1)


def ms(start: float, end: float | None) -> float | None:
    return None if end is None else round((end - start) * 1000, 1)


def wait_acks(timeline: Timeline, after: float, count: int, timeout: float, what: str) -> None:
    """Poll until ``count`` operations were acknowledged after ``after`` (a client that resumed)."""
    poll(lambda: timeline.acked_after(after), what=f"{count} acknowledged {what} after the service came back",
         timeout=timeout, interval=POLL_S, accept=lambda n: n >= count,
         hint="the client never resumed: see the round's client errors and the service's log")


class Runner(Protocol):
    def __call__(self, stack: Any, service: str, drill: ServiceDrill, number: int, fault: str,
                 timeout: float) -> Any: ...


#: drill kind -> the loop that runs one round of it (filled by the drill modules when they are imported).
RUNNERS: dict[str, Runner] = {}
#: drill kind -> the figures its rounds measure, summarized as median/p95/max in the report.
METRICS: dict[str, tuple[str, ...]] = {}


def runner_for(drill: ServiceDrill) -> Runner:
    """The loop of ``drill``'s kind (importing the drill modules registers them)."""
    from harness import drill_broker, drill_sql, drill_vault  # noqa: F401  (registration)

    if drill.kind not in RUNNERS:
        raise DrillError(f"drill {drill.name}: no loop runs kind {drill.kind!r}")
    return RUNNERS[drill.kind]


def metrics_for(drill: ServiceDrill) -> tuple[str, ...]:
    runner_for(drill)
    return METRICS[drill.kind]


def run_round(stack: Any, service: str, drill: ServiceDrill, number: int, fault: str, timeout: float) -> Any:
    """One round of ``drill`` on ``stack``, judged (:func:`harness.drill_verdict.judge`, with the stack's settings)
    as the suites and the CLI both need it."""
    from harness.drill_verdict import judge

    return judge(drill.kind, runner_for(drill)(stack, service, drill, number, fault, timeout=timeout), stack.settings)


def run_service_drill(stack: Any, name: str, rounds: int, fault: str, timeout: float,
                      on_round: Callable[[int, str], None] = lambda n, f: None) -> dict[str, Any]:
    """Start ``name``'s service in ``stack`` (Vault and its dependencies too), run ``rounds`` rounds (faults as
    :func:`pick_fault` says), and return the drill's report (:func:`harness.drills.report`)."""
    from harness.drills import report

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
