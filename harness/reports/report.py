"""The JSON run report: which images ran, how fast each service became ready, and what the tests did.

Skips are counted as skips with their reasons, never folded into passes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.reports.redact import redact_data

SCHEMA_VERSION = 1


@dataclass
class TestResult:
    nodeid: str
    outcome: str  # passed | failed | skipped | error
    duration_s: float
    reason: str = ""


# How bad a phase's outcome is; a test keeps its worst. A failed call followed by a teardown error stays "failed"
# (one outcome per test; pytest's own summary shows both).
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 2}


@dataclass
class Outcomes:
    """Accumulates one result per test from pytest's setup/call/teardown reports."""

    results: dict[str, TestResult] = field(default_factory=dict)

    def add(self, nodeid: str, when: str, outcome: str, duration: float, reason: str = "") -> None:
        """Fold one phase report in: a failing setup/teardown is an ``error``, a skip in any phase a skip. The worse
        phase wins (:data:`_RANK`): a teardown that fails after a skip or an xfail makes the test an ``error``."""
        current = self.results.get(nodeid)
        if outcome == "skipped":
            final = "skipped"
        elif outcome == "failed":
            final = "failed" if when == "call" else "error"
        else:
            final = "passed"
        if current is None:
            if when == "teardown" and final == "passed":
                return
            self.results[nodeid] = TestResult(nodeid, final, round(duration, 3), reason)
            return
        current.duration_s = round(current.duration_s + duration, 3)
        if _RANK[final] > _RANK[current.outcome]:
            current.outcome, current.reason = final, reason

    def counts(self) -> dict[str, int]:
        counter = Counter(r.outcome for r in self.results.values())
        return {k: counter.get(k, 0) for k in ("passed", "failed", "skipped", "error")}

    def skips(self) -> list[dict[str, str]]:
        return [{"nodeid": r.nodeid, "reason": r.reason} for r in self.results.values() if r.outcome == "skipped"]


def build_report(*, stack: dict[str, Any] | None, outcomes: Outcomes, needed: list[str],
                 exitstatus: int | None) -> dict[str, Any]:
    """Assemble the report from the stack's own report (None when no service was needed) and the tests."""
    services = (stack or {}).get("services", {})
    return {
        "schema": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": (stack or {}).get("run_id"),
        "image_set": (stack or {}).get("image_set"),
        "images": {n: {"ref": r.get("image"), "id": r.get("image_id"), "source": r.get("image_source"),
                       "reason": r.get("image_reason")} for n, r in services.items()},
        "services_needed": needed,
        "services_started": (stack or {}).get("started", []),
        "services_unavailable": {n: r.get("error") for n, r in services.items() if r.get("status") == "unavailable"},
        "services_failed": {n: r.get("error") for n, r in services.items() if r.get("status") == "failed"},
        "time_to_ready_s": {n: r.get("time_to_ready_s") for n, r in services.items()
                            if r.get("time_to_ready_s") is not None},
        # The start timeline (seconds since the stack start began), drawn by the HTML report.
        "timeline": {n: {k: r.get(k) for k in ("status", "submitted_s", "ready_s", "bootstrap_started_s",
                                               "bootstrap_s")} for n, r in services.items()},
        "total_stack_start_s": (stack or {}).get("total_start_s"),
        "parallel_ratio": (stack or {}).get("parallel_ratio"),
        "tests": outcomes.counts(),
        "skips": outcomes.skips(),
        "results": [vars(r) for r in outcomes.results.values()],
        "exitstatus": exitstatus,
    }


def write_report(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), creating parent directories; every secret the run knows is
    replaced by ``***`` (``harness.reports.redact``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(redact_data(json.loads(json.dumps(data, default=str))), indent=2) + "\n")
    tmp.replace(path)
