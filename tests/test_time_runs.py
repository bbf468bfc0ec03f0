"""scripts/time_runs.py: the README's performance table (whole-machine core-seconds, min / median / max)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "time_runs.py"
_spec = importlib.util.spec_from_file_location("time_runs", SCRIPT)
assert _spec is not None and _spec.loader is not None
time_runs = importlib.util.module_from_spec(_spec)
sys.modules["time_runs"] = time_runs
_spec.loader.exec_module(time_runs)


def test_cpu_counts_every_non_idle_state_of_the_whole_machine():
    stat = "cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 50 2 25 500 10 1 1 5 0 0\nintr 1 2 3\n"
    tick = os.sysconf("SC_CLK_TCK")
    # user + nice + system + irq + softirq + steal; idle (1000) and iowait (20) are not work
    assert time_runs.cpu_core_seconds(stat) == (100 + 5 + 50 + 3 + 2 + 10) / tick


def test_a_row_of_three_runs_is_min_median_max_and_names_a_failing_run():
    row = time_runs.Row("n2", "`pytest -n 2`", ("-n", "2"), True)
    runs = [time_runs.Measured(250.0, 480.0, "767 passed", 17.0, 0, "10:00:00"),
            time_runs.Measured(230.0, 450.0, "766 passed, 1 failed", 16.0, 1, "10:05:00"),
            time_runs.Measured(270.0, 520.0, "767 passed", 18.0, 0, "10:10:00")]
    assert time_runs.table_line(row, runs) == (
        "| `pytest -n 2` | 230 / 250 / 270 s (exit 1 in 1 of 3) | 450 / 480 / 520 core-s | 767 passed; 766 passed, "
        "1 failed | 17.0 s | 10:00:00 |")


def test_container_cpu_is_summed_per_stack_and_service_largest_first():
    cpu = object.__new__(time_runs.ContainerCpu)  # no Docker: only the aggregation of what the poll saw
    cpu.interval = 2.0
    cpu.seen = {"a": ("run-1", "redis", 1.5), "b": ("run-1", "redis", 2.0), "c": ("run-1", "vault", 4.0),
                "d": ("run-2", "postgres", 9.25)}
    assert cpu.lines() == [
        "containers' CPU (Docker stats, polled every 2 s): 17 core-s in 2 stack(s)",
        "  stack run-2: 9.2 core-s (postgres 9.2)",
        "  stack run-1: 7.5 core-s (vault 4.0, redis 3.5)",
    ]


UP_OUTPUT = """run 20261206T120000-abcdef: image set debian
start timeline (seconds since start)
whole stack ready in 12.00 s
{
  "run_id": "20261206T120000-abcdef",
  "total_start_s": 12.0,
  "services": {
    "vault": {"ready_s": 3.5},
    "rabbitmq": {"ready_s": 12.0},
    "mongodb": {"ready_s": null}
  }
}
"""


def test_up_report_is_the_json_after_the_tables_and_its_absence_is_an_error():
    assert time_runs.up_report(UP_OUTPUT)["services"]["vault"] == {"ready_s": 3.5}
    with pytest.raises(ValueError, match=r"^`harness up --json` printed no JSON report$"):
        time_runs.up_report("whole stack ready in 12.00 s\n")


def test_up_table_is_min_median_max_per_service_and_skips_services_never_ready():
    reports = [(wall, cpu, time_runs.up_report(UP_OUTPUT.replace("12.0", str(total)).replace("3.5", str(v))))
               for wall, cpu, total, v in ((14.0, 20.0, 12.0, 3.5), (12.5, 18.0, 10.0, 3.0), (16.0, 25.0, 14.0, 4.0))]
    assert time_runs.up_table(reports) == [
        "| figure | min / median / max |", "| --- | ---: |",
        "| `harness up` command, wall | 12.5 / 14.0 / 16.0 s |",
        "| `harness up` command, CPU (whole machine) | 18.0 / 20.0 / 25.0 core-s |",
        "| vault ready after | 3.0 / 3.5 / 4.0 s |",
        "| rabbitmq ready after | 10.0 / 12.0 / 14.0 s |",
        "| whole stack ready after (`total_start_s`) | 10.0 / 12.0 / 14.0 s |",
    ]
