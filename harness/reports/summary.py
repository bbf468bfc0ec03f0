"""Markdown summary of JSON run reports, for a CI job summary, optionally compared with an earlier run.

The input is what the pytest plugin writes (``harness.reports.report.build_report`` plus the optional ``drills`` and
``benchmarks`` keys; ``stack_mode`` and ``compose`` are shown when present). Any key may be missing or of an
unexpected type: what cannot be read is left out, never guessed -- and what decides the verdict is never assumed:
a report without pytest's exit status, a drill round with problems, a report in which nothing passed are FAIL.
Known failures (xfail, kept with the skips as ``xfail: reason``) are counted and listed apart from the skips.

Every compared figure (time-to-ready, whole-stack start, drill medians, benchmark timings) is "lower is
better". A figure is a regression when it grew by more than ``tolerance`` (a fraction of the previous value)
**and** by more than the absolute floor of its unit in :data:`FLOORS`, because tiny values are noisy: 0.02 s
becoming 0.04 s is +100 % and means nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.reports.redact import redact
from stack.errors import HarnessError

OUTCOMES = ("passed", "failed", "skipped", "error")
FAILING = ("failed", "error")
# The smallest increase that may count as a regression, per unit (seconds, milliseconds, counted items).
FLOORS: dict[str, float] = {"s": 0.05, "ms": 50.0, "count": 1.0}
# Keys whose presence makes a JSON object a run report (a drill report or a manifest is refused).
REPORT_KEYS = ("schema", "tests", "results", "skips", "time_to_ready_s", "drills", "benchmarks")
SUITE_ROOTS = ("suites", "tests")
REASON_MAX = 300
XFAIL_PREFIX = "xfail: "  # how the run report keeps a known failure: with the skips, this before its reason


class ReportInputError(HarnessError):
    """A report file is missing, unreadable, not JSON, or not a run report."""


# ------------------------------------------------------------------------------------------------ input


@dataclass(frozen=True)
class LoadedReport:
    """One run report and the name it is shown under (its file name, or its path when names collide)."""

    name: str
    data: dict[str, Any]


def load_report(path: Path, name: str | None = None) -> LoadedReport:
    """Read one run report; every problem becomes a :class:`ReportInputError` naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReportInputError(f"{path}: no such file") from None
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise ReportInputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not any(key in data for key in REPORT_KEYS):
        raise ReportInputError(f"{path}: not a run report (a JSON object with keys such as "
                               f"{', '.join(REPORT_KEYS[:3])})")
    return LoadedReport(name or path.name, data)


def load_reports(paths: Sequence[Path]) -> list[LoadedReport]:
    """Read every report, in order; reports are named by file name unless two share one."""
    names = [p.name for p in paths]
    shown = [p.name if names.count(p.name) == 1 else str(p) for p in paths]
    unique = [n if shown[:i].count(n) == 0 else f"{n} ({shown[:i].count(n) + 1})" for i, n in enumerate(shown)]
    return [load_report(p, n) for p, n in zip(paths, unique, strict=True)]


# ------------------------------------------------------------------------------------ reading the data


def json_dict(value: Any) -> dict[str, Any]:
    """A JSON object from a report, or {} for anything else (a report is read, never trusted)."""
    return value if isinstance(value, dict) else {}


def json_list(value: Any) -> list[Any]:
    """A JSON array from a report, or [] for anything else."""
    return value if isinstance(value, list) else []


def json_number(value: Any) -> float | None:
    """A finite JSON number (booleans are not numbers here), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Result:
    """One test of one report."""

    report: str
    nodeid: str
    outcome: str
    reason: str


def results_of(report: LoadedReport) -> list[Result]:
    """The report's tests: ``results``, plus any entry of ``skips`` that ``results`` does not already hold."""
    found: dict[str, Result] = {}
    for entry in json_list(report.data.get("results")):
        entry = json_dict(entry)
        nodeid, outcome = entry.get("nodeid"), entry.get("outcome")
        if isinstance(nodeid, str) and outcome in OUTCOMES:
            found[nodeid] = Result(report.name, nodeid, str(outcome), str(entry.get("reason") or ""))
    for entry in json_list(report.data.get("skips")):
        entry = json_dict(entry)
        nodeid = entry.get("nodeid")
        if isinstance(nodeid, str) and nodeid not in found:
            found[nodeid] = Result(report.name, nodeid, "skipped", str(entry.get("reason") or ""))
    return list(found.values())


def counts_of(report: LoadedReport) -> dict[str, int]:
    """passed/failed/skipped/error: counted from ``results`` when the report has them, else its ``tests``."""
    if isinstance(report.data.get("results"), list):
        counter = Counter(r.outcome for r in results_of(report))
        return {k: counter.get(k, 0) for k in OUTCOMES}
    recorded = json_dict(report.data.get("tests"))
    return {k: int(json_number(recorded.get(k)) or 0) for k in OUTCOMES}


def is_xfail(result: Result) -> bool:
    """A known failure (``pytest.xfail`` or an ``xfail`` mark that failed): a skip whose reason says so."""
    return result.outcome == "skipped" and result.reason.startswith(XFAIL_PREFIX)


def suite_of(nodeid: str) -> str:
    """The suite of a test: the directory under ``suites/`` or ``tests/`` (``suites/tls``), else its folder."""
    parts = nodeid.split("::", 1)[0].split("/")
    folders = parts[:-1]
    for i, part in enumerate(folders):
        if part in SUITE_ROOTS:
            return "/".join(folders[i:i + 2])
    return "/".join(folders) or "(top level)"


def _one_line(text: str, limit: int = REASON_MAX) -> str:
    """Whitespace collapsed, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


# ------------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figure:
    """A "lower is better" number that can be compared between runs."""

    label: str
    value: float
    unit: str  # a key of FLOORS


def unit_of(key: str) -> str | None:
    """The time unit a key's name announces (``detect_ms`` -> ms, ``restore_s (RTO)`` -> s), else None."""
    if re.search(r"_ms\b", key):
        return "ms"
    if re.search(r"_s\b", key) or key.endswith("_seconds"):
        return "s"
    return None


@dataclass(frozen=True)
class Drill:
    """One drill report inside a run report, with a key that matches the same drill of another run."""

    kind: str
    key: str
    label: str  # the settings that tell it apart from the other drills of its kind ("fault=kill")
    common: str  # the settings every drill of its kind shares
    data: dict[str, Any]


def _settings_text(settings: dict[str, Any], keys: Iterable[str]) -> str:
    return ", ".join(f"{k}={settings[k]}" for k in keys)


def drills_of(report: LoadedReport) -> list[Drill]:
    """The report's drills, labelled by the settings that differ between drills of the same kind."""
    entries = [json_dict(d) for d in json_list(report.data.get("drills")) if isinstance(d, dict)]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_kind.setdefault(str(entry.get("drill") or entry.get("kind") or "drill"), []).append(entry)
    drills: list[Drill] = []
    for kind, group in by_kind.items():
        settings = [json_dict(d.get("settings")) for d in group]
        names = list(dict.fromkeys(k for s in settings for k in s))
        varying = [k for k in names if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]
        common = _settings_text(settings[0], [k for k in names if k not in varying and k in settings[0]])
        seen: Counter[str] = Counter()
        for entry, setting in zip(group, settings, strict=True):
            key = f"{kind} {json.dumps(setting, sort_keys=True)}"
            label = _settings_text(setting, [k for k in varying if k in setting])
            seen[key] += 1
            if seen[key] > 1:  # the same drill twice in one report: keep both, apart
                key, label = f"{key} #{seen[key]}", f"{label} #{seen[key]}".strip()
            drills.append(Drill(kind, key, label, common, entry))
    return drills


def _metric_unit(metric: str) -> str:
    return unit_of(metric) or "count"


def drill_figures(drill: Drill) -> list[tuple[str, Figure]]:
    """(matching key, figure) for every median the drill measured."""
    figures = []
    for metric, stats in json_dict(drill.data.get("summary")).items():
        median = json_number(json_dict(stats).get("median"))
        if median is not None:
            label = " ".join(p for p in (drill.kind, drill.label, metric, "median") if p)
            figures.append((f"drill {drill.key} {metric}", Figure(label, median, _metric_unit(metric))))
    return figures


def numeric_leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], float]]:
    """Every number inside nested dicts, with the keys leading to it."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in numeric_leaves(v, (*path, str(k)))]
    number = json_number(value)
    return [] if number is None or not path else [(path, number)]


def _leaf_unit(path: tuple[str, ...]) -> str | None:
    """The unit a leaf inherits from the nearest key that names one (``restore_per_service_s.postgres`` -> s)."""
    return next((u for k in reversed(path) if (u := unit_of(k)) is not None), None)


def figures_of(report: LoadedReport) -> dict[str, Figure]:
    """Every comparable figure of one report, by a key that names the same figure in another report."""
    data = report.data
    figures: dict[str, Figure] = {}
    for service, seconds in json_dict(data.get("time_to_ready_s")).items():
        if (value := json_number(seconds)) is not None:
            figures[f"ready {service}"] = Figure(f"time-to-ready {service}", value, "s")
    if (total := json_number(data.get("total_stack_start_s"))) is not None:
        figures["stack start"] = Figure("total stack start", total, "s")
    for drill in drills_of(report):
        figures.update(drill_figures(drill))
    for name, bench in json_dict(data.get("benchmarks")).items():
        for path, value in numeric_leaves(bench, (str(name),)):
            if (unit := _leaf_unit(path)) is not None:
                label = f"{path[0]} {'.'.join(path[1:])}".strip()
                figures[f"benchmark {'/'.join(path)}"] = Figure(label, value, unit)
    return figures


# ----------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    """One figure in the previous and the current run."""

    label: str
    unit: str
    previous: float
    current: float
    tolerance: float

    @property
    def change(self) -> float | None:
        """Relative change (0.3 = 30 % higher); None when the previous value was 0."""
        return None if self.previous == 0 else (self.current - self.previous) / abs(self.previous)

    @property
    def beyond_tolerance(self) -> bool:
        change = self.change
        return self.current > self.previous if change is None else change > self.tolerance

    @property
    def above_floor(self) -> bool:
        return self.current - self.previous > FLOORS.get(self.unit, 0.0)

    @property
    def regression(self) -> bool:
        """Worse by more than the tolerance and by more than the unit's absolute floor."""
        return self.beyond_tolerance and self.above_floor

    @property
    def verdict(self) -> str:
        if self.regression:
            return "**REGRESSION**"
        if self.beyond_tolerance:
            return "worse, below the floor"
        change = self.change
        if change is not None and change < -self.tolerance and self.previous - self.current > FLOORS[self.unit]:
            return "better"
        return "ok"


def compare(previous: dict[str, Figure], current: Iterable[tuple[str, Figure]], tolerance: float) -> list[Comparison]:
    """A comparison for every current figure whose key the previous run has too, in the current order."""
    return [Comparison(fig.label, fig.unit, previous[key].value, fig.value, tolerance)
            for key, fig in current if key in previous]


def current_figures(reports: Sequence[LoadedReport]) -> list[tuple[str, Figure]]:
    """(key, figure) of every current report. With several reports each one is compared with the previous
    run on its own, so a label names its report; the key stays the report-free one that matches."""
    several = len(reports) > 1
    return [(key, Figure(f"{report.name}: {fig.label}", fig.value, fig.unit) if several else fig)
            for report in reports for key, fig in figures_of(report).items()]


def _passed_before_and_now(previous: LoadedReport, reports: Sequence[LoadedReport],
                           outcomes: Sequence[str]) -> list[str]:
    passed = {r.nodeid for r in results_of(previous) if r.outcome == "passed"}
    return sorted({r.nodeid for report in reports for r in results_of(report)
                   if r.outcome in outcomes and r.nodeid in passed})


def newly_failing(previous: LoadedReport, reports: Sequence[LoadedReport]) -> list[str]:
    """Tests that passed in the previous run and fail (or error) in any current report."""
    return _passed_before_and_now(previous, reports, FAILING)


def newly_skipped(previous: LoadedReport, reports: Sequence[LoadedReport]) -> list[str]:
    """Tests that passed in the previous run and are skipped in any current report: what they checked is no
    longer checked, a regression like a failure."""
    return _passed_before_and_now(previous, reports, ("skipped",))


def exit_status_missing(reports: Sequence[LoadedReport]) -> list[str]:
    """Names of the reports without a numeric ``exitstatus``: pytest never finished the run (killed, or the report
    was cut short), so nothing says how it ended. Never a PASS."""
    return [r.name for r in reports if json_number(r.data.get("exitstatus")) is None]


def failed_drill_rounds(reports: Sequence[LoadedReport]) -> list[str]:
    """``kind label round N`` of every drill round with problems (its ``problems``, or its number in the drill
    report's ``failed_rounds``), prefixed by the report's name when there are several. ``python -m harness drill``
    exits 1 on such a round; the summary is never a PASS with one."""
    several = len(reports) > 1
    found = []
    for report in reports:
        for drill in drills_of(report):
            rounds = [json_dict(r) for r in json_list(drill.data.get("rounds"))]
            ids = [r.get("round", "?") for r in rounds if json_list(r.get("problems"))]
            ids += [n for n in json_list(drill.data.get("failed_rounds")) if n not in ids]
            name = " ".join(p for p in (drill.kind, drill.label) if p)
            found += [f"{report.name}: {name} round {n}" if several else f"{name} round {n}" for n in ids]
    return found


def drill_rounds_text(failed: Sequence[str]) -> str:
    return f"{len(failed)} drill round(s) with problems: {', '.join(failed)}"


def no_exit_status_text(names: Sequence[str]) -> str:
    return f"no exit status in {', '.join(names)}: the run did not end (killed?) or its report is incomplete"


def nothing_passed(reports: Sequence[LoadedReport]) -> list[str]:
    """``name (what it holds)`` of every report in which no test passed: only skips, only failures, or no
    results at all. Such a run proved nothing, so it is never a PASS."""
    empty = []
    for report in reports:
        counts = counts_of(report)
        if counts["passed"] == 0:
            held = [f"{counts[k]} {k}" for k in ("skipped", "failed", "error") if counts[k]]
            empty.append(f"{report.name} ({', '.join(held) if held else 'no test results'})")
    return empty


# ------------------------------------------------------------------------------------------ markdown


def _code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    """Text safe inside a table cell (GitHub needs ``\\|`` even inside code spans)."""
    return " ".join(text.split()).replace("|", "\\|")


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], left: Sequence[int] = (0,)) -> list[str]:
    """A Markdown table; the columns numbered in ``left`` are left-aligned, the others (numbers) right-aligned."""
    align = ["---" if i in left else "---:" for i in range(len(head))]
    lines = ["| " + " | ".join(_cell(h) for h in head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def number(value: float) -> str:
    """A plain figure: integers with thousands separators (byte counts), others to at most 3 decimals."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def with_unit(value: float | None, unit: str | None) -> str:
    """A figure with its unit, at a precision that suits it: ms whole, seconds to 0.01 (0.001 below 0.1 s)."""
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s" if abs(value) >= 0.1 else f"{value:.3f} s"
    return number(value)


def _counts_text(counts: dict[str, int], xfails: int = 0) -> str:
    errors = "error" if counts["error"] == 1 else "errors"
    known = f" ({xfails} of them xfail)" if xfails else ""
    return (f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped{known}, "
            f"{counts['error']} {errors}")


def _header_lines(report: LoadedReport) -> list[str]:
    """One line per report: where it came from and what its tests did; then what did not start."""
    data = report.data
    status = json_number(data.get("exitstatus"))
    facts = [f"run {_code(str(data['run_id']))}" if data.get("run_id") else "no stack",
             f"image set {data.get('image_set') or '-'}", f"created {data.get('created') or '-'}",
             "exit status missing" if status is None else f"exit status {status:g}"]
    if data.get("stack_mode"):
        facts.append(f"stack mode {data['stack_mode']}")
    compose = json_dict(data.get("compose"))
    scalars = [f"{k}={v}" for k, v in compose.items() if isinstance(v, str | int | float | bool)]
    if scalars:
        facts.append(f"compose {_code(', '.join(scalars))}")
    xfails = sum(1 for r in results_of(report) if is_xfail(r))
    lines = [f"- **{report.name}** — {', '.join(facts)}: {_counts_text(counts_of(report), xfails)}"]
    for key, what in (("services_unavailable", "unavailable"), ("services_failed", "failed to start")):
        for service, why in json_dict(data.get(key)).items():
            lines.append(f"  - {service} {what}: {_code(_one_line(str(why or '?')))}")
    return lines


def _suite_section(results: list[Result]) -> list[str]:
    per_suite: dict[str, Counter[str]] = {}
    for r in results:
        per_suite.setdefault(suite_of(r.nodeid), Counter())[r.outcome] += 1
    if not per_suite:
        return ["### Tests per suite", "", "No test results in the report(s).", ""]
    rows = [[suite, *(str(c[k]) for k in OUTCOMES)] for suite, c in sorted(per_suite.items())]
    total = Counter(r.outcome for r in results)
    rows.append(["**total**", *(f"**{total[k]}**" for k in OUTCOMES)])
    return ["### Tests per suite", "", *_table(["suite", *OUTCOMES], rows), ""]


def _failure_section(results: list[Result], several: bool) -> list[str]:
    failing = [r for r in results if r.outcome in FAILING]
    if not failing:
        return []
    lines = [f"### Failures and errors ({len(failing)})", ""]
    for r in failing:
        where = f" ({r.report})" if several else ""
        reason = _code(_one_line(r.reason)) if r.reason.strip() else "(no reason recorded)"
        lines.append(f"- **{r.outcome}** {_code(r.nodeid)}{where} — {reason}")
    return [*lines, ""]


def _xfail_section(results: list[Result], several: bool) -> list[str]:
    """Known failures (xfail) apart from the skips: how many, which, and why."""
    known = [r for r in results if is_xfail(r)]
    if not known:
        return []
    lines = [f"### Known failures (xfail): {len(known)}", ""]
    for r in known:
        where = f" ({r.report})" if several else ""
        reason = _one_line(r.reason.removeprefix(XFAIL_PREFIX))
        lines.append(f"- {_code(r.nodeid)}{where} — {_code(reason) if reason else '(no reason recorded)'}")
    return [*lines, ""]


def _skip_section(results: list[Result]) -> list[str]:
    """Skips grouped by reason (the xfails have their own section)."""
    groups: dict[str, list[Result]] = {}
    for r in results:
        if r.outcome == "skipped" and not is_xfail(r):
            groups.setdefault(_one_line(r.reason) or "(no reason recorded)", []).append(r)
    if not groups:
        return []
    total = sum(len(g) for g in groups.values())
    rows = [[str(len(g)), _code(reason), ", ".join(sorted({suite_of(r.nodeid) for r in g}))]
            for reason, g in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))]
    return [f"### Skips ({total}) by reason", "", *_table(["count", "reason", "suites"], rows, left=(1, 2)), ""]


def _readiness_section(reports: Sequence[LoadedReport]) -> list[str]:
    """Time-to-ready per service (one column per report), then whole-stack start and parallel ratio."""
    ready = [json_dict(r.data.get("time_to_ready_s")) for r in reports]
    services = list(dict.fromkeys(s for times in ready for s in times))
    if not services and all(json_number(r.data.get("total_stack_start_s")) is None for r in reports):
        return []
    head = ["service", *(r.name for r in reports)] if len(reports) > 1 else ["service", "time-to-ready"]
    rows = [[s, *(with_unit(json_number(times.get(s)), "s") for times in ready)] for s in services]
    rows.append(["**total stack start**", *(with_unit(json_number(r.data.get("total_stack_start_s")), "s")
                                            for r in reports)])
    rows.append(["parallel ratio (target ≤ 1.3)",
                 *(_ratio(json_number(r.data.get("parallel_ratio"))) for r in reports)])
    return ["### Time to ready", "", *_table(head, rows), ""]


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _drill_cell(stats: dict[str, Any], unit: str) -> str:
    median, top = json_number(stats.get("median")), json_number(stats.get("max"))
    text = with_unit(median, unit)
    return text if top is None or top == median else f"{text} (max {with_unit(top, unit)})"


@dataclass(frozen=True)
class RoundCount:
    """A count over drill rounds (lost writes, missing keys): the sum of the rounds that counted it, how many did,
    and how many rounds have the field at all (a round that ended early holds None: not counted, never 0)."""

    total: float
    counted: int
    rounds: int

    @property
    def text(self) -> str:
        if not self.counted:
            return "not measured"
        return number(self.total) + ("" if self.counted == self.rounds else
                                     f" ({self.counted} of {self.rounds} rounds counted)")


def round_count(rounds: Iterable[Any], key: str) -> RoundCount | None:
    """:class:`RoundCount` of ``key`` over drill rounds (JSON), or None when no round has the field."""
    having = [json_dict(r) for r in rounds if key in json_dict(r)]
    values = [v for r in having if (v := json_number(r.get(key))) is not None]
    return RoundCount(sum(values), len(values), len(having)) if having else None


def _drill_kind_lines(report: LoadedReport, kind: str, drills: list[Drill], several: bool) -> list[str]:
    """One table per drill kind: a row per metric, a column per drill, cells ``median (max M)``."""
    where = f" — {report.name}" if several else ""
    common = f" ({drills[0].common})" if drills[0].common else ""
    metrics = list(dict.fromkeys(m for d in drills for m in json_dict(d.data.get("summary"))))
    head = ["metric", *(d.label or "median (max)" for d in drills)]
    rows = [["rounds", *(str(len(json_list(d.data.get("rounds")))) for d in drills)]]
    rows += [[m, *(_drill_cell(json_dict(json_dict(d.data.get("summary")).get(m)), _metric_unit(m)) for d in drills)]
             for m in metrics]
    lines = [f"#### {kind}{common}{where}", "", *_table(head, rows), ""]
    lost = [(d, count) for d in drills if (count := round_count(json_list(d.data.get("rounds")), "lost_writes"))]
    if lost:
        parts = [f"{d.label or kind} {count.text}" for d, count in lost]
        confirmed = round_count([r for d in drills for r in json_list(d.data.get("rounds"))], "lost_replicated")
        lines += [f"Lost acknowledged writes, all rounds: {'; '.join(parts)}. Of those, confirmed on a replica "
                  f"by `WAIT` (must be 0): {confirmed.text if confirmed else 'not measured'}.", ""]
    missing = [(d, count) for d in drills if (count := round_count(json_list(d.data.get("rounds")), "keys_missing"))]
    if missing:
        parts = [f"{d.label or kind} {count.text}" for d, count in missing]
        lines += [f"Keys missing after recovery, all rounds: {'; '.join(parts)}.", ""]
    problems = [f"- {d.label or kind} round {json_dict(r).get('round', '?')}: {_code(_one_line(str(p)))}"
                for d in drills for r in json_list(d.data.get("rounds"))
                for p in json_list(json_dict(r).get("problems"))]
    return lines + ([*problems, ""] if problems else [])


def _drill_section(reports: Sequence[LoadedReport]) -> list[str]:
    lines: list[str] = []
    with_drills = [(r, drills_of(r)) for r in reports]
    several = sum(1 for _, drills in with_drills if drills) > 1
    for report, drills in with_drills:
        kinds = list(dict.fromkeys(d.kind for d in drills))
        for kind in kinds:
            lines += _drill_kind_lines(report, kind, [d for d in drills if d.kind == kind], several)
    return ["### Drills (medians)", "", *lines] if lines else []


def _leaf_text(path: tuple[str, ...], value: float) -> str:
    return with_unit(value, _leaf_unit(path))


def _benchmark_section(reports: Sequence[LoadedReport]) -> list[str]:
    """``backup`` as a table of its figures; any other benchmark as ``name: value`` lines."""
    lines: list[str] = []
    several = len(reports) > 1
    for report in reports:
        where = f" — {report.name}" if several else ""
        for name, bench in json_dict(report.data.get("benchmarks")).items():
            leaves = numeric_leaves(bench, (str(name),))
            if name == "backup" and leaves:
                rows = [[".".join(path[1:]), _leaf_text(path, value)] for path, value in leaves]
                lines += [f"#### Backup and restore{where}", "", *_table(["figure", "value"], rows), ""]
            elif isinstance(bench, dict):
                text = ", ".join(f"{'.'.join(p[1:])}={_leaf_text(p, v)}" for p, v in leaves) or "-"
                lines.append(f"- {name}{where}: {text}")
            else:
                value = json_number(bench)
                shown = _leaf_text((str(name),), value) if value is not None else str(bench)
                lines.append(f"- {name}{where}: {shown}")
    if lines and lines[-1] != "":
        lines.append("")
    return ["### Benchmarks", "", *lines] if lines else []


def _comparison_section(previous: LoadedReport, comparisons: list[Comparison], failing_now: list[str],
                        skipped_now: list[str], tolerance: float, unmatched: int) -> list[str]:
    floors = ", ".join(f"{number(v)} {k}" if k != "count" else f"{number(v)} for counts" for k, v in FLOORS.items())
    lines = [f"### Compared with {previous.name}", "",
             f"Lower is better. A regression is worse by more than {tolerance:.0%} **and** by more than the "
             f"absolute floor ({floors}).", ""]
    regressions = [c for c in comparisons if c.regression]
    if comparisons and not regressions:
        lines += ["No regressions.", ""]
    if regressions:
        lines += [f"**{len(regressions)} regression(s):**", ""]
        lines += [f"- {c.label}: {with_unit(c.previous, c.unit)} → {with_unit(c.current, c.unit)} "
                  f"({_change_text(c)})" for c in regressions]
        lines.append("")
    if failing_now:
        lines += [f"**{len(failing_now)} test(s) passed in {previous.name} and fail now:**", ""]
        lines += [f"- {_code(nodeid)}" for nodeid in failing_now]
        lines.append("")
    if skipped_now:
        lines += [f"**{len(skipped_now)} test(s) passed in {previous.name} and are skipped now:**", ""]
        lines += [f"- {_code(nodeid)}" for nodeid in skipped_now]
        lines.append("")
    if comparisons:
        rows = [[c.label, with_unit(c.previous, c.unit), with_unit(c.current, c.unit), _change_text(c), c.verdict]
                for c in comparisons]
        lines += _table(["figure", "previous", "current", "change", "verdict"], rows, left=(0, 4))
        lines.append("")
    else:
        lines += ["No figure appears in both runs.", ""]
    if unmatched:
        lines += [f"{unmatched} figure(s) appear in only one of the runs and are not compared.", ""]
    return lines


def _change_text(c: Comparison) -> str:
    change = c.change
    if change is None:
        return "from 0" if c.current != c.previous else "+0%"
    return f"{change:+.0%}"


# -------------------------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class Summary:
    """The Markdown and the facts that decide the exit code."""

    markdown: str
    failing: int = 0  # failed + error tests over every report
    bad_exit: list[str] = field(default_factory=list)  # reports whose pytest exit status was not 0
    regressions: list[Comparison] = field(default_factory=list)
    newly_failing: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    newly_skipped: list[str] = field(default_factory=list)
    nothing_passed: list[str] = field(default_factory=list)  # reports in which no test passed
    failed_drill_rounds: list[str] = field(default_factory=list)  # "kind label round N" with problems
    no_exit_status: list[str] = field(default_factory=list)  # reports without pytest's exit status
    xfails: int = 0  # known failures, counted with the skips and listed apart

    @property
    def exit_code(self) -> int:
        """1 when a test failed, a run did not exit 0 or has no exit status, a run passed no test, a drill round had
        problems, a figure regressed or a test that passed in the previous run fails or is skipped now; else 0."""
        return 1 if (self.failing or self.bad_exit or self.nothing_passed or self.regressions or self.newly_failing
                     or self.newly_skipped or self.failed_drill_rounds or self.no_exit_status) else 0


def _verdict_line(failing: int, bad_exit: list[str], empty: list[str], regressions: int, newly: int,
                  skipped: int, total: dict[str, int], no_exit: list[str], drill_rounds: list[str],
                  xfails: int) -> str:
    problems = []
    if empty:
        problems.append(f"no test passed in {', '.join(empty)}: a run that passes nothing proves nothing")
    if failing:
        problems.append(f"{total['failed']} failed, {total['error']} {'error' if total['error'] == 1 else 'errors'}")
    if no_exit:
        problems.append(no_exit_status_text(no_exit))
    if bad_exit:
        problems.append(f"pytest exit status not 0 in {', '.join(bad_exit)}")
    if drill_rounds:
        problems.append(drill_rounds_text(drill_rounds))
    if regressions:
        problems.append(f"{regressions} regression(s)")
    if newly:
        problems.append(f"{newly} test(s) newly failing")
    if skipped:
        problems.append(f"{skipped} test(s) newly skipped")
    if problems:
        return f"**Result: FAIL** — {'; '.join(problems)}."
    known = (f" ({xfails} of them xfail: {'a known failure' if xfails == 1 else 'known failures'}, listed below)"
             if xfails else "")
    return f"**Result: PASS** — {total['passed']} passed, {total['skipped']} skipped{known}, nothing failed."


def summarize(reports: Sequence[LoadedReport], previous: LoadedReport | None = None,
              tolerance: float = 0.25) -> Summary:
    """Merge the reports into one Markdown summary and, given ``previous``, compare their figures with it.

    Each result is keyed by (report, nodeid): a nodeid present in several reports is counted once per report
    it appears in (sharded runs never repeat a test; a test run twice on purpose really ran twice).
    """
    several = len(reports) > 1
    results = [r for report in reports for r in results_of(report)]
    per_report = [counts_of(report) for report in reports]
    total = {k: sum(c[k] for c in per_report) for k in OUTCOMES}
    failing = total["failed"] + total["error"]
    no_exit = exit_status_missing(reports)
    bad_exit = [r.name for r in reports if (status := json_number(r.data.get("exitstatus"))) is not None
                and status != 0]
    drill_rounds = failed_drill_rounds(reports)
    xfails = sum(1 for r in results if is_xfail(r))

    empty = nothing_passed(reports)

    comparisons: list[Comparison] = []
    failing_now: list[str] = []
    skipped_now: list[str] = []
    compared: list[str] = []
    if previous is not None:
        before = figures_of(previous)
        now = current_figures(reports)
        comparisons = compare(before, now, tolerance)
        failing_now = newly_failing(previous, reports)
        skipped_now = newly_skipped(previous, reports)
        unmatched = len({key for key, _ in now} ^ set(before))
        compared = _comparison_section(previous, comparisons, failing_now, skipped_now, tolerance, unmatched)
    regressions = [c for c in comparisons if c.regression]

    lines = ["## Run report summary", "",
             _verdict_line(failing, bad_exit, empty, len(regressions), len(failing_now), len(skipped_now), total,
                           no_exit, drill_rounds, xfails),
             ""]
    for report in reports:
        lines += _header_lines(report)
    if several:
        lines.append(f"- **all reports**: {_counts_text(total, xfails)}")
    lines.append("")
    lines += _suite_section(results)
    lines += _failure_section(results, several)
    lines += _xfail_section(results, several)
    lines += _skip_section(results)
    lines += _readiness_section(reports)
    lines += _drill_section(reports)
    lines += _benchmark_section(reports)
    lines += compared
    # The reports are redacted when written; this catches what the process knows of any other input.
    markdown = redact("\n".join(lines).rstrip("\n") + "\n")
    return Summary(markdown, failing, bad_exit, regressions, failing_now, comparisons, skipped_now, empty,
                   drill_rounds, no_exit, xfails)
