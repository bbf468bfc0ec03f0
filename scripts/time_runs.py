"""Time the README's test command and its variants, one run each, and print the README's performance table.

    python scripts/time_runs.py                 # every row, one after another (about 20 minutes on 2 cores)
    python scripts/time_runs.py --rows n2 n4    # only some rows (names: see ROWS)
    python scripts/time_runs.py --list          # the row names and their commands

Each row runs one pytest command with ``-p no:cacheprovider`` in the repository root and records the wall time (from
this process, around the subprocess), the outcome counts from pytest's last line, and, where the run report has it,
``benchmarks.session.time_to_first_test_s``. Before every cold row, ``python -m harness down`` removes any kept stack
so the row starts from nothing; the ``reuse-2`` rows follow their ``reuse-1`` row and attach to what it kept.
Rows run one after another: figures of runs that overlap would measure each other. Each row's pytest output is
kept in ``.harness/time-runs/<row>.log``; the FAILED and ERROR lines of failing rows are printed after the table.
Figures from a shared machine are rough; the table says when and on what it ran. A row whose pytest fails is still
printed, with its exit code.

Written by hand: pytest-benchmark times functions inside one process, hyperfine repeats one command; neither runs a
fixed sequence of differently-configured pytest runs and reads their reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [str(ROOT / ".venv" / "bin" / "pytest"), "-p", "no:cacheprovider", "-q"]
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected)")


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    args: tuple[str, ...]
    cold: bool  # remove kept stacks first


ROWS = (
    Row("serial", "`pytest` (tests/ + suites/), serial, cold", (), True),
    Row("n2", "`pytest -n 2`, cold (the README's command)", ("-n", "2"), True),
    Row("n4", "`pytest -n 4`, cold", ("-n", "4"), True),
    Row("reuse-1", "`pytest -n 2 --reuse`, first run (starts and keeps the stack)", ("-n", "2", "--reuse"), True),
    Row("reuse-2", "`pytest -n 2 --reuse`, second run (attaches)", ("-n", "2", "--reuse"), False),
    Row("tests", "`pytest tests/ -n 2` (no Docker)", ("tests/", "-n", "2"), True),
    Row("pg", "`pytest suites/postgres`, cold", ("suites/postgres",), True),
    Row("pg-reuse-1", "`pytest suites/postgres --reuse`, first run", ("suites/postgres", "--reuse"), True),
    Row("pg-reuse-2", "`pytest suites/postgres --reuse`, second run (attaches)", ("suites/postgres", "--reuse"), False),
)


def down() -> None:
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "harness", "down"], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)


LOGS = ROOT / ".harness" / "time-runs"


def run(row: Row, report: Path) -> tuple[str, list[str]]:
    """The row's table line, and the FAILED/ERROR lines of its pytest summary (its whole output is kept in
    ``.harness/time-runs/<row>.log``)."""
    if row.cold:
        down()
    report.unlink(missing_ok=True)
    started = datetime.now(UTC).strftime("%H:%M:%S")
    t0 = time.monotonic()
    proc = subprocess.run([*PYTEST, *row.args, f"--harness-report={report}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=3600, check=False)
    wall = time.monotonic() - t0
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"{row.name}.log").write_text(proc.stdout + proc.stderr)
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in SUMMARY.findall(last)}
    tests = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts.get(k))
    first = ""
    if report.exists():
        figure = json.loads(report.read_text()).get("benchmarks", {}).get("session", {}).get("time_to_first_test_s")
        first = f"{figure:.1f} s" if isinstance(figure, (int, float)) else ""
    code = "" if proc.returncode == 0 else f" (exit {proc.returncode})"
    return f"| {row.label} | {wall:.0f} s{code} | {tests} | {first} | {started} |", failures


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", choices=[r.name for r in ROWS], help="only these rows, in this order")
    parser.add_argument("--list", action="store_true", help="print the rows and their commands")
    args = parser.parse_args(argv)
    if args.list:
        for row in ROWS:
            say(f"{row.name:11} {'cold ' if row.cold else 'warm '} pytest {' '.join(row.args)}")
        return 0
    chosen = [r for name in args.rows for r in ROWS if r.name == name] if args.rows else list(ROWS)
    report = ROOT / ".harness" / "time-runs-report.json"
    load = os.getloadavg()[0]
    say(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"load average {load:.1f} at the start")
    say("| run | wall | tests | first test after | started (UTC) |\n| --- | ---: | --- | ---: | --- |")
    failed: list[str] = []
    try:
        for row in chosen:
            line, failures = run(row, report)
            say(line)
            failed += [f"{row.name}: {failure}" for failure in failures]
    finally:
        down()
        report.unlink(missing_ok=True)
    for line in failed:  # after the table, so that it stays one block
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
