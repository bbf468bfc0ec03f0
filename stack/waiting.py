"""Polling with a deadline: the only way the harness waits for a state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from stack.errors import ReadinessTimeout

T = TypeVar("T")


def poll(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    hint: str,
    interval: float = 0.25,
    accept: Callable[[T], bool] | None = None,
    transient: tuple[type[BaseException], ...] = (Exception,),
    fatal: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` until it returns an accepted value or ``timeout`` seconds pass.

    A probe that raises one of ``transient`` counts as "not yet"; its text becomes the last observation.
    A probe that raises one of ``fatal`` stops the wait at once (the exception propagates).
    A value is accepted when ``accept(value)`` is true, or (without ``accept``) when it is truthy.

    Raises:
        ReadinessTimeout: the deadline passed; the message names ``what``, the time waited, the last
            observation and ``hint``.
    """
    start = time.monotonic()
    deadline = start + timeout
    last_seen = "nothing yet (the probe never completed)"
    while True:
        try:
            value = probe()
        except fatal:
            raise
        except transient as exc:
            last_seen = f"{type(exc).__name__}: {exc}".strip()[:500]
        else:
            if value is not None and (accept(value) if accept is not None else bool(value)):
                return value
            last_seen = repr(value)[:500]
        now = time.monotonic()
        if now >= deadline:
            raise ReadinessTimeout(what, now - start, last_seen, hint)
        time.sleep(min(interval, max(0.0, deadline - now)))  # poll interval, bounded by the deadline
