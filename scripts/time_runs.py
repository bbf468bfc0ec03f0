"""Time the README's test command and its variants and print the README's performance table.

    python scripts/time_runs.py                      # every row once, one after another (~20 minutes on 2 cores)
    python scripts/time_runs.py --repeat 3           # every row 3 times: min / median / max
    python scripts/time_runs.py --rows n2 tests      # only some rows (names: see ROWS)
    python scripts/time_runs.py --list               # the row names and their commands
    python scripts/time_runs.py --rows n2 --breakdown     # also: CPU per own stack and per service container
    python scripts/time_runs.py --files              # core-seconds of each tests/ file run alone
    python scripts/time_runs.py --up 3 [--env K=V]   # `python -m harness up` 3 times: wall, core-s, each service's
                                                     # ready time (min / median / max), then `down`

Each row runs one pytest command with ``-p no:cacheprovider`` in the repository root and records the wall time (from
this process, around the subprocess), the whole machine's CPU time in core-seconds over the same span (from
``/proc/stat``: every core's non-idle time, so the containers' and the Docker engine's CPU counts, not only
pytest's), the outcome counts from pytest's last line, and, where the run report has it,
``benchmarks.session.time_to_first_test_s``. With ``--repeat N`` the rows run N times in turn (row by row, so a
drift of the machine's speed spreads over every row) and each cell is ``min / median / max``.
Before every cold row, ``python -m harness down`` removes any kept stack so the row starts from nothing; the
``reuse-2`` rows follow their ``reuse-1`` row and attach to what it kept.
Rows run one after another: figures of runs that overlap would measure each other. Each row's pytest output is
kept in ``.harness/time-runs/<row>.log``; the FAILED and ERROR lines of failing rows are printed after the table.
Figures from a shared machine are rough; the table says when and on what it ran. A row whose pytest fails is still
printed, with its exit code.

With ``--breakdown``, a thread reads every harness container's own CPU counter (Docker's stats API, ``one-shot``)
every two seconds while the row runs; each container's last reading is its CPU over its life, summed per stack (the
run id its labels carry) and per service. With ``--files``, each ``tests/test_*.py`` runs alone and its
whole-machine core-seconds are printed, beside an empty pytest start for scale. With ``--up N``, the whole stack is
started N times with ``python -m harness up --json`` (removed with ``down`` before and after each), and the table
gives the command's wall time and core-seconds and, from its JSON report, each service's ready time since the start
and the whole stack's; ``--env K=V`` (repeatable) sets a setting for those runs (``HARNESS_PKI_KEY_TYPE=ec`` …).

Written by hand: pytest-benchmark times functions inside one process, hyperfine repeats one command; neither runs a
fixed sequence of differently-configured pytest runs and reads their reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def cpu_core_seconds(stat: str | None = None) -> float:
    """The whole machine's non-idle CPU time so far, in core-seconds, from the ``cpu`` line of ``/proc/stat``
    (user, nice, system, irq, softirq and steal; not idle nor iowait). The difference of two readings is what every
    process on the machine used in between, containers included."""
    text = stat if stat is not None else Path("/proc/stat").read_text()
    fields = next(line for line in text.splitlines() if line.startswith("cpu ")).split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class ContainerCpu:
    """Per-container CPU of the harness's containers while a row runs (``--breakdown``): the Docker stats API's
    cumulative ``cpu_usage.total_usage`` of each labelled container, polled; a container's last reading is what it
    used over its life (up to two seconds of its end are missed, which the totals say)."""

    LABEL_RUN_ID, LABEL_SERVICE = "devstack-harness.run-id", "devstack-harness.service"

    def __init__(self, interval: float = 2.0) -> None:
        import threading

        import docker

        self.client = docker.from_env()
        self.interval = interval
        self.seen: dict[str, tuple[str, str, float]] = {}  # container id -> (run id, service, core-seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> ContainerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            for container in self.client.containers.list(filters={"label": self.LABEL_RUN_ID}):
                try:
                    stats = container.stats(stream=False, one_shot=True)
                except Exception:
                    continue
                used = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage")
                if used:
                    labels = container.labels
                    self.seen[container.id] = (labels.get(self.LABEL_RUN_ID, "?"),
                                               labels.get(self.LABEL_SERVICE, "?"), used / 1e9)

    def lines(self) -> list[str]:
        """Per stack (run id), its services' core-seconds, largest first."""
        stacks: dict[str, dict[str, float]] = {}
        for run_id, service, cpu in self.seen.values():
            per = stacks.setdefault(run_id, {})
            per[service] = per.get(service, 0.0) + cpu
        out = [f"containers' CPU (Docker stats, polled every {self.interval:.0f} s): "
               f"{sum(sum(p.values()) for p in stacks.values()):.0f} core-s in {len(stacks)} stack(s)"]
        for run_id, per in sorted(stacks.items(), key=lambda kv: -sum(kv[1].values())):
            services = ", ".join(f"{name} {cpu:.1f}" for name, cpu in sorted(per.items(), key=lambda kv: -kv[1]))
            out.append(f"  stack {run_id}: {sum(per.values()):.1f} core-s ({services})")
        return out


def file_breakdown() -> list[str]:
    """Each tests/ file alone (serial): whole-machine core-seconds and wall, with an empty start for scale."""
    rows = []
    baseline = [*PYTEST, "--collect-only", "-q", "tests/conftest.py"]
    for label, command in [("(pytest start, nothing run)", baseline)] + [
            (path.name, [*PYTEST, str(path.relative_to(ROOT))]) for path in sorted((ROOT / "tests").glob("test_*.py"))]:
        cpu0, t0 = cpu_core_seconds(), time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
        wall, cpu = time.monotonic() - t0, cpu_core_seconds() - cpu0
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        rows.append((cpu, f"| {label} | {wall:.1f} s | {cpu:.1f} core-s | {last} |"))
    return ["| tests/ file (alone, serial) | wall | CPU (whole machine) | pytest's last line |",
            "| --- | ---: | ---: | --- |", *(line for _, line in sorted(rows, key=lambda r: -r[0]))]


def spread(values: list[float], unit: str, digits: int = 0) -> str:
    """``min / median / max`` (one value alone when there is one), with ``digits`` decimals."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f} {unit}"
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f} / {max(values):.{digits}f} {unit}"


@dataclass
class Measured:
    wall: float
    cpu: float
    tests: str
    first: float | None
    code: int
    started: str


def run(row: Row, report: Path, breakdown: bool = False) -> tuple[Measured, list[str]]:
    """One run of the row's command, and the FAILED/ERROR lines of its pytest summary (its whole output is kept in
    ``.harness/time-runs/<row>.log``, the last run's). With ``breakdown``, the containers' CPU per stack follows."""
    if row.cold:
        down()
    report.unlink(missing_ok=True)
    started = datetime.now(UTC).strftime("%H:%M:%S")
    poller = ContainerCpu() if breakdown else None
    if poller is not None:
        poller.__enter__()
    cpu0, t0 = cpu_core_seconds(), time.monotonic()
    proc = subprocess.run([*PYTEST, *row.args, f"--harness-report={report}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=3600, check=False)
    wall, cpu = time.monotonic() - t0, cpu_core_seconds() - cpu0
    if poller is not None:
        poller.__exit__()
        for line in poller.lines():
            say(f"    {line}")
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"{row.name}.log").write_text(proc.stdout + proc.stderr)
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in SUMMARY.findall(last)}
    tests = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts.get(k))
    first = None
    if report.exists():
        figure = json.loads(report.read_text()).get("benchmarks", {}).get("session", {}).get("time_to_first_test_s")
        first = float(figure) if isinstance(figure, (int, float)) else None
    return Measured(wall, cpu, tests, first, proc.returncode, started), failures


def up_report(stdout: str) -> dict[str, Any]:
    """The JSON report ``harness up --json`` prints after its tables (its first line is a lone ``{``)."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line == "{"), None)
    if start is None:
        raise ValueError("`harness up --json` printed no JSON report")
    report: dict[str, Any] = json.loads("\n".join(lines[start:]))
    return report


def up_table(reports: list[tuple[float, float, dict[str, Any]]]) -> list[str]:
    """``harness up`` runs as a table: wall and core-seconds of the command, then each service's ready time since
    the start (``ready_s``) and the whole stack's (``total_start_s``), each as min / median / max."""
    def cell(values: list[float], unit: str = "s") -> str:
        return spread(values, unit, digits=1)

    services = list(dict.fromkeys(name for _, _, r in reports for name in r.get("services", {})))
    out = ["| figure | min / median / max |", "| --- | ---: |",
           f"| `harness up` command, wall | {cell([w for w, _, _ in reports])} |",
           f"| `harness up` command, CPU (whole machine) | {cell([c for _, c, _ in reports], 'core-s')} |"]
    for name in services:
        ready = [r["services"][name]["ready_s"] for _, _, r in reports
                 if r["services"].get(name, {}).get("ready_s") is not None]
        if ready:
            out.append(f"| {name} ready after | {cell(ready)} |")
    totals = [r["total_start_s"] for _, _, r in reports if r.get("total_start_s") is not None]
    if totals:
        out.append(f"| whole stack ready after (`total_start_s`) | {cell(totals)} |")
    return out


def time_up(repeat: int, env: dict[str, str]) -> list[str]:
    """``harness up --json`` ``repeat`` times, each from nothing and removed afterwards."""
    reports = []
    for number in range(repeat):
        down()
        cpu0, t0 = cpu_core_seconds(), time.monotonic()
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "harness", "up", "--json"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False, env={**os.environ, **env})
        wall, cpu = time.monotonic() - t0, cpu_core_seconds() - cpu0
        down()
        if proc.returncode != 0:
            raise SystemExit(f"harness up failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        reports.append((wall, cpu, up_report(proc.stdout)))
        say(f"  up {number + 1}/{repeat}: {wall:.1f} s, {cpu:.1f} core-s, stack ready after "
            f"{reports[-1][2].get('total_start_s')} s")
    return up_table(reports)


def table_line(row: Row, runs: list[Measured]) -> str:
    """The row's line: wall and core-seconds as min / median / max, the tests (every distinct outcome), the
    median time to the first test, exit codes other than 0, and when the first run started."""
    tests = "; ".join(dict.fromkeys(r.tests for r in runs))
    codes = [r.code for r in runs if r.code != 0]
    exits = f" (exit {', '.join(map(str, codes))} in {len(codes)} of {len(runs)})" if codes else ""
    firsts = [r.first for r in runs if r.first is not None]
    first = f"{statistics.median(firsts):.1f} s" if firsts else ""
    return (f"| {row.label} | {spread([r.wall for r in runs], 's')}{exits} | {spread([r.cpu for r in runs], 'core-s')}"
            f" | {tests} | {first} | {runs[0].started} |")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", choices=[r.name for r in ROWS], help="only these rows, in this order")
    parser.add_argument("--repeat", type=int, default=1, help="run every row this many times (min/median/max)")
    parser.add_argument("--list", action="store_true", help="print the rows and their commands")
    parser.add_argument("--breakdown", action="store_true", help="also print each run's containers' CPU per stack")
    parser.add_argument("--files", action="store_true", help="only: each tests/ file alone, core-seconds per file")
    parser.add_argument("--up", type=int, metavar="N", help="only: `python -m harness up` N times, its timeline")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="with --up: a setting for the runs")
    args = parser.parse_args(argv)
    if args.up:
        env = dict(item.split("=", 1) for item in args.env)
        say(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
            f"at the start, `harness up` {args.up} time(s)" + (f" with {' '.join(args.env)}" if args.env else ""))
        for line in time_up(args.up, env):
            say(line)
        return 0
    if args.files:
        for line in file_breakdown():
            say(line)
        return 0
    if args.list:
        for row in ROWS:
            say(f"{row.name:11} {'cold ' if row.cold else 'warm '} pytest {' '.join(row.args)}")
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    chosen = [r for name in args.rows for r in ROWS if r.name == name] if args.rows else list(ROWS)
    report = ROOT / ".harness" / "time-runs-report.json"
    load = os.getloadavg()[0]
    say(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"load average {load:.1f} at the start, {args.repeat} run(s) per row"
        + (" (min / median / max)" if args.repeat > 1 else ""))
    runs: dict[str, list[Measured]] = {row.name: [] for row in chosen}
    failed: list[str] = []
    try:
        for number in range(args.repeat):
            for row in chosen:
                measured, failures = run(row, report, args.breakdown)
                runs[row.name].append(measured)
                say(f"  run {number + 1}/{args.repeat} {row.name}: {measured.wall:.0f} s, {measured.cpu:.0f} core-s, "
                    f"{measured.tests or 'no summary'}" + (f", exit {measured.code}" if measured.code else ""))
                failed += [f"{row.name} (run {number + 1}): {failure}" for failure in failures]
    finally:
        down()
        report.unlink(missing_ok=True)
    say("| run | wall | CPU (whole machine) | tests | first test after | started (UTC) |\n"
        "| --- | ---: | ---: | --- | ---: | --- |")
    for row in chosen:
        say(table_line(row, runs[row.name]))
    for line in failed:  # after the table, so that it stays one block
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
