"""The plumbing every service drill shares: which drills exist, faults on a service's container with their undo
in ``finally``, and acknowledged-operation timelines.

A service drill is declared by its service module (``ServiceSpec.drills``, :mod:`stack.drill_ops`); its *kind*
names the measuring loop that runs it (:mod:`harness.drills.sql`, :mod:`harness.drills.broker`,
:mod:`harness.drills.vault`, each built on this module; :mod:`harness.drills.runner` maps kinds to loops and runs
the rounds). The Redis cluster drills (:mod:`harness.drills.redis`) are listed beside them, so the CLI takes its
choices from both.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from stack import registry
from stack.drill_ops import ServiceDrill
from stack.errors import HarnessError
from stack.waiting import poll

#: The Redis cluster drills of :mod:`harness.drills.redis` and :mod:`harness.drills.net`, run by the CLI itself.
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
