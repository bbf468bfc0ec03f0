"""The HTML run report: one self-contained file (inline SVG and CSS, no script, no font or image from the
network) that tells a run's story in pictures, readable offline and as a CI artifact.

Written next to the JSON run report after every pytest session (``report.json`` -> ``report.html``) and by
``python -m harness report html REPORT... [--previous PREV]...``. Everything it says comes from the JSON run
reports through :mod:`harness.reports.summary`: the same loading, counting, drill and figure extraction, and the same
PASS/FAIL verdict and regression rule (:class:`harness.reports.summary.Comparison`) as ``report summarize``.

Charts are drawn with matplotlib's SVG backend: a well-kept library that writes SVG without a browser or a
display, and draws the shapes needed here (horizontal bars for the start timeline and the suites, box and strip
plots for the drills, sparklines for the trends) with a ``gid`` per element, which becomes the element's ``id``
in the SVG so that a browser test can find each bar, box and highlighted point. Text stays text
(``svg.fonttype: none``, generic font families): no font is embedded or fetched.

Every string from a report is escaped (``html.escape``; matplotlib escapes what it writes into the SVG), and the
finished page goes through :func:`harness.reports.redact.redact` as the Markdown summary does.
"""

from __future__ import annotations

import html
import io
import math
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from harness.reports.redact import redact
from harness.reports.summary import (
    FAILING,
    OUTCOMES,
    Comparison,
    Drill,
    LoadedReport,
    Summary,
    compare,
    counts_of,
    drill_rounds_text,
    drills_of,
    figures_of,
    json_dict,
    json_list,
    json_number,
    load_report,
    no_exit_status_text,
    numeric_leaves,
    results_of,
    round_count,
    suite_of,
    summarize,
    unit_of,
    with_unit,
)
from stack.errors import ConfigError, HarnessError

COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "error": "#6a1b9a", "skipped": "#f9a825"}
STATUS_COLOURS = {"ready": "#1565c0", "failed": "#c62828", "unavailable": "#9e9e9e", "pending": "#9e9e9e"}
STEP_COLOURS = ("#ffb74d", "#4db6ac", "#ba68c8", "#f06292", "#aed581", "#90a4ae", "#fff176", "#7986cb")
REGRESSION_COLOUR = "#c62828"
FONT = ["DejaVu Sans", "Liberation Sans", "Arial", "sans-serif"]
# No RDF block (creator, date, format links): the page carries no address but its own.
NO_METADATA: dict[str, Any] = {"Creator": None, "Date": None, "Format": None, "Type": None}
BACKUP_TIMES = ("backup_s", "verify_s", "restore_s (RTO)")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:72rem;color:#212121;
line-height:1.4;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;
vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:1.1rem;font-weight:bold;padding:.5rem .8rem;border-radius:4px}
.pass{background:#e8f5e9;color:#1b5e20}.fail{background:#ffebee;color:#b71c1c}
tr.regression td{background:#ffebee;color:#b71c1c;font-weight:bold}tr.better td.verdict-cell{color:#1b5e20}
.bad{color:#b71c1c;font-weight:bold}.ok{color:#1b5e20}
pre{background:#fafafa;border:1px solid #eee;padding:.4rem;white-space:pre-wrap;word-break:break-word;
font-size:.85rem;margin:.3rem 0}
li.failure{margin-bottom:.8rem}.outcome{font-weight:bold;text-transform:uppercase;font-size:.8rem}
.chart svg{max-width:100%;height:auto}.muted{color:#757575;font-size:.9rem}
code.serial{word-break:break-all;font-size:.8rem}
#trend svg{height:1.5rem;width:auto;display:block}
"""


def esc(value: object) -> str:
    """HTML-escaped text (quotes too: it may end up in an attribute)."""
    return html.escape(str(value), quote=True)


def _mpl(text: str) -> str:
    """A label for matplotlib: a ``$`` would start math text."""
    return text.replace("$", r"\$")


def slug(text: str) -> str:
    """An id fragment: lower case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# ------------------------------------------------------------------------------------------ charts


def _figure(width: float, height: float, layout: Literal["constrained"] | None = "constrained") -> MplFigure:
    fig = MplFigure(figsize=(width, height), dpi=96, layout=layout)
    fig.set_facecolor("white")
    return fig


def svg_of(fig: MplFigure, chart_id: str, title: str) -> str:
    """The figure as an inline ``<svg id=chart_id>`` (no XML prolog, no date, no embedded font). The hash salt
    is the chart id, so the clip paths and markers of two charts on one page never share an id."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": chart_id, "font.family": "sans-serif",
                                "font.sans-serif": FONT, "font.size": 9, "figure.autolayout": False,
                                "figure.constrained_layout.use": False}):
        # savefig draws a figure with a layout engine twice: once with drawing switched off, only to run the
        # layout, then again to write it. Running the layout alone (measuring text the SVG canvas's way), then
        # saving the figure with no engine left, writes the same bytes with one draw instead of two.
        FigureCanvasSVG(fig)
        engine = fig.get_layout_engine()
        if engine is not None:
            engine.execute(fig)
            fig.set_layout_engine(None)  # None, not "none": a placeholder engine would bring the first draw back
        fig.savefig(buffer, format="svg", metadata=NO_METADATA)
    text = buffer.getvalue()
    svg = text[text.index("<svg"):]
    return svg.replace("<svg ", f'<svg id="{esc(chart_id)}" role="img" aria-label="{esc(title)}" ', 1)


def _chart(fig: MplFigure, chart_id: str, title: str) -> str:
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": FONT, "font.size": 9}):
        body = svg_of(fig, chart_id, title)
    return f'<figure class="chart">{body}<figcaption class="muted">{esc(title)}</figcaption></figure>'


@dataclass(frozen=True)
class Bar:
    """One service on the start timeline."""

    service: str
    start: float
    end: float
    status: str
    steps: list[tuple[str, float, float]]  # bootstrap step, start, end


def timeline_bars(data: dict[str, Any]) -> tuple[list[Bar], bool]:
    """The services' bars from the report's ``timeline`` (seconds since the stack start began), and whether the
    start offsets were recorded (older reports have only time-to-ready: bars then all start at 0)."""
    timeline = json_dict(data.get("timeline"))
    total = json_number(data.get("total_stack_start_s"))
    bars: list[Bar] = []
    if timeline:
        for service, raw in timeline.items():
            rec = json_dict(raw)
            start, ready = json_number(rec.get("submitted_s")), json_number(rec.get("ready_s"))
            if start is None:
                continue
            status = str(rec.get("status") or "?")
            end = ready if ready is not None else max(total or start, start)
            steps: list[tuple[str, float, float]] = []
            timings = {k: v for k, raw_v in json_dict(rec.get("bootstrap_s")).items()
                       if k != "total" and (v := json_number(raw_v)) is not None}
            if timings:
                at = json_number(rec.get("bootstrap_started_s"))
                at = at if at is not None else end - sum(timings.values())
                for step, seconds in timings.items():
                    steps.append((step, at, at + seconds))
                    at += seconds
            bars.append(Bar(str(service), start, end, status, steps))
        return bars, True
    for service, seconds in json_dict(data.get("time_to_ready_s")).items():
        if (value := json_number(seconds)) is not None:
            bars.append(Bar(str(service), 0.0, value, "ready", []))
    return bars, False


def timeline_chart(report: LoadedReport, index: int) -> str:
    """Gantt chart: a bar per service from submitted to ready; Vault's bootstrap steps inside its bar."""
    bars, offsets = timeline_bars(report.data)
    if not bars:
        return ""
    names = [b.service for b in bars]
    step_names = list(dict.fromkeys(s for b in bars for s, _, _ in b.steps))
    fig = _figure(9, 0.8 + 0.45 * len(bars) + 0.2 * math.ceil(len(step_names) / 4))
    ax = fig.subplots()
    for row, bar in enumerate(bars):
        y = len(bars) - 1 - row
        (patch,) = ax.barh(y, max(bar.end - bar.start, 0.01), left=bar.start, height=0.6,
                           color=STATUS_COLOURS.get(bar.status, "#9e9e9e"),
                           hatch="//" if bar.status == "failed" else None)
        patch.set_gid(f"bar-{slug(bar.service)}")
        ax.text(bar.end, y, f" {bar.end - bar.start:.2f} s" + ("" if bar.status == "ready" else f" ({bar.status})"),
                va="center", fontsize=8)
        for step, start, end in bar.steps:
            colour = STEP_COLOURS[step_names.index(step) % len(STEP_COLOURS)]
            (inner,) = ax.barh(y, max(end - start, 0.005), left=start, height=0.3, color=colour,
                               label=_mpl(step) if row == next(i for i, b in enumerate(bars) if b.steps) else None)
            inner.set_gid(f"step-{slug(bar.service)}-{slug(step)}")
    ax.set_yticks(range(len(bars)), [_mpl(n) for n in reversed(names)])
    ax.set_xlabel("seconds since the stack start began" if offsets else "time-to-ready (start offsets not recorded)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_xlim(0, max(b.end for b in bars) * 1.12 or 1.0)  # room for the labels after the bars
    if step_names:  # below the chart, four to a row: a long list of steps never runs off the figure
        fig.legend(title="bootstrap steps", loc="outside lower center", ncols=4, fontsize=7, title_fontsize=7)
    title = f"Start timeline ({report.name})"
    return _chart(fig, f"chart-timeline-{index}", title)


def suites_chart(results: Sequence[Any]) -> str:
    """Stacked horizontal bars: passed/failed/error/skipped per suite."""
    per_suite: dict[str, Counter[str]] = {}
    for r in results:
        per_suite.setdefault(suite_of(r.nodeid), Counter())[r.outcome] += 1
    if not per_suite:
        return ""
    suites = sorted(per_suite)
    fig = _figure(9, 0.6 + 0.35 * len(suites))
    ax = fig.subplots()
    for row, suite in enumerate(suites):
        y = len(suites) - 1 - row
        left = 0
        for outcome in ("passed", "failed", "error", "skipped"):
            count = per_suite[suite][outcome]
            if not count:
                continue
            (patch,) = ax.barh(y, count, left=left, color=COLOURS[outcome], height=0.6,
                               label=outcome if outcome not in ax.get_legend_handles_labels()[1] else None)
            patch.set_gid(f"suite-{slug(suite)}-{outcome}")
            left += count
    ax.set_yticks(range(len(suites)), [_mpl(s) for s in reversed(suites)])
    ax.set_xlabel("tests")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    return _chart(fig, "chart-suites", "Tests per suite")


def _round_group(entry: dict[str, Any]) -> str:
    """What sets a drill round apart: its fault (failover), its coverage setting (node loss), else nothing."""
    if "fault" in entry:
        return str(entry["fault"])
    if "full_coverage" in entry:
        return f"full coverage {'yes' if entry['full_coverage'] else 'no'}"
    return "all rounds"


def drill_rounds(drills: Sequence[Drill]) -> list[dict[str, Any]]:
    return [json_dict(r) for d in drills for r in json_list(d.data.get("rounds"))]


def drill_chart(kind: str, drills: Sequence[Drill], chart_id: str) -> str:
    """Per metric a box plot per fault with every round as a point on it (strip plot)."""
    rounds = drill_rounds(drills)
    metrics = list(dict.fromkeys(m for d in drills for m in json_dict(d.data.get("summary"))))
    metrics = [m for m in metrics if any(json_number(r.get(m)) is not None for r in rounds)]
    if not metrics:
        return ""
    groups = list(dict.fromkeys(_round_group(r) for r in rounds))
    cols = min(4, len(metrics))
    lines = math.ceil(len(metrics) / cols)
    fig = _figure(2.6 * cols, 2.4 * lines)
    axes = fig.subplots(lines, cols, squeeze=False)
    for i, metric in enumerate(metrics):
        ax = axes[i // cols][i % cols]
        ax.set_gid(f"{chart_id}-{slug(metric)}")
        values = [[v for r in rounds if _round_group(r) == g and (v := json_number(r.get(metric))) is not None]
                  for g in groups]
        shown = [(g, v) for g, v in zip(groups, values, strict=True) if v]
        # one call for every box of the metric: the same boxes as a call per box, at a fraction of the cost
        box = ax.boxplot([vals for _, vals in shown], positions=range(1, len(shown) + 1), widths=0.5,
                         showfliers=False, patch_artist=True, boxprops={"facecolor": "#e3f2fd"},
                         medianprops={"color": "#0d47a1"})
        for pos, (group, vals) in enumerate(shown, start=1):
            box["boxes"][pos - 1].set_gid(f"box-{chart_id}-{slug(metric)}-{slug(group)}")
            offsets = [((k % 5) - 2) * 0.06 for k in range(len(vals))]
            points = ax.scatter([pos + o for o in offsets], vals, s=14, color="#e65100", zorder=3)
            points.set_gid(f"points-{chart_id}-{slug(metric)}-{slug(group)}")
        ax.set_xticks(range(1, len(shown) + 1), [_mpl(g) for g, _ in shown], rotation=20, fontsize=7)
        unit = unit_of(metric)
        ax.set_title(_mpl(metric.removesuffix(f"_{unit}") if unit else metric) + (f" ({unit})" if unit else ""),
                     fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for j in range(len(metrics), lines * cols):
        axes[j // cols][j % cols].set_visible(False)
    return _chart(fig, chart_id, f"{kind}: every round per fault (box: quartiles and median; points: rounds)")


def backup_charts(benchmarks: dict[str, Any], index: int) -> str:
    """Backup, verify and restore (RTO) seconds per backup benchmark; restore seconds per service."""
    backups = {name: json_dict(b) for name, b in benchmarks.items() if str(name).startswith("backup")
               and isinstance(b, dict)}
    if not backups:
        return ""
    parts = []
    names = list(backups)
    fig = _figure(9, 0.8 + 0.55 * len(names))
    ax = fig.subplots()
    height = 0.8 / len(BACKUP_TIMES)
    for row, name in enumerate(names):
        y = len(names) - 1 - row
        for k, key in enumerate(BACKUP_TIMES):
            value = json_number(backups[name].get(key))
            if value is None:
                continue
            (patch,) = ax.barh(y + 0.4 - height * (k + 0.5), value, height=height, color=STEP_COLOURS[k],
                               label=key if row == 0 else None)
            patch.set_gid(f"backup-{index}-{slug(name)}-{slug(key)}")
            ax.text(value, y + 0.4 - height * (k + 0.5), f" {value:.2f}", va="center", fontsize=7)
    ax.set_yticks(range(len(names)), [_mpl(n) for n in reversed(names)])
    ax.set_xlabel("seconds")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    parts.append(_chart(fig, f"chart-backup-{index}", "Backup, verify and restore (RTO) seconds"))
    per_service = [(f"{name}: {service}" if len(names) > 1 else service, value)
                   for name, b in backups.items() for service, raw in json_dict(b.get("restore_per_service_s")).items()
                   if (value := json_number(raw)) is not None]
    if per_service:
        fig = _figure(9, 0.6 + 0.3 * len(per_service))
        ax = fig.subplots()
        for row, (label, value) in enumerate(per_service):
            (patch,) = ax.barh(len(per_service) - 1 - row, value, height=0.6, color="#1565c0")
            patch.set_gid(f"rto-{index}-{slug(label)}")
            ax.text(value, len(per_service) - 1 - row, f" {value:.2f} s", va="center", fontsize=7)
        ax.set_yticks(range(len(per_service)), [_mpl(label) for label, _ in reversed(per_service)])
        ax.set_xlabel("restore seconds per service (RTO)")
        parts.append(_chart(fig, f"chart-rto-{index}", "Restore time per service (RTO)"))
    return "".join(parts)


class Sparklines:
    """Tiny lines of one figure over the runs, drawn on one small figure that is cleared for every line (making a
    figure and its axes costs more than drawing the line). Points that regressed are red and carry ``regression-``
    ids."""

    def __init__(self) -> None:
        self.fig = _figure(1.8, 0.45, layout=None)
        self.ax = self.fig.add_axes((0, 0, 1, 1))

    def svg(self, values: Sequence[float | None], flagged: Sequence[bool], chart_id: str) -> str:
        fig, ax = self.fig, self.ax
        for line in list(ax.lines):
            line.remove()
        xs = [i for i, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        ax.plot(xs, ys, color="#607d8b", linewidth=1)
        for i, value in enumerate(values):
            if value is None:
                continue
            bad = flagged[i]
            (point,) = ax.plot([i], [value], "o", markersize=4 if bad else 2.5,
                               color=REGRESSION_COLOUR if bad else "#37474f")
            point.set_gid(f"{'regression' if bad else 'point'}-{chart_id}-{i}")
        ax.set_xlim(-0.3, max(len(values) - 1, 1) + 0.3)
        low, high = min(ys, default=0.0), max(ys, default=1.0)
        pad = (high - low) * 0.2 or abs(high) * 0.1 or 1.0
        ax.set_ylim(low - pad, high + pad)
        ax.set_axis_off()
        buffer = io.StringIO()
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": chart_id}):
            fig.savefig(buffer, format="svg", metadata=NO_METADATA, transparent=True)  # the row colour shows through
        text = buffer.getvalue()
        return text[text.index("<svg"):].replace("<svg ", f'<svg id="{esc(chart_id)}" role="img" '
                                                 f'aria-label="trend" ', 1)


# -------------------------------------------------------------------------------------- sections


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], table_id: str = "", numeric: Sequence[int] = (),
           row_class: Sequence[str] | None = None, row_key: Sequence[str] | None = None) -> str:
    """A table from cells that are already HTML (escape before); ``row_key`` gives rows a ``data-figure``."""
    attr = f' id="{esc(table_id)}"' if table_id else ""
    out = [f"<table{attr}><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        cls += f' data-figure="{esc(row_key[i])}"' if row_key else ""
        out.append(f"<tr{cls}>" + "".join(f'<td class="num">{c}</td>' if j in numeric else f"<td>{c}</td>"
                                          for j, c in enumerate(row)) + "</tr>")
    return "".join(out) + "</tbody></table>"


def verdict_html(summary: Summary) -> str:
    """PASS/FAIL with the reasons, from the facts ``report summarize`` decides its exit code on."""
    problems = []
    if summary.nothing_passed:
        problems.append(f"no test passed in {', '.join(summary.nothing_passed)}: a run that passes nothing "
                        "proves nothing")
    if summary.failing:
        problems.append(f"{summary.failing} failed or errored test(s)")
    if summary.no_exit_status:
        problems.append(no_exit_status_text(summary.no_exit_status))
    if summary.bad_exit:
        problems.append(f"pytest exit status not 0 in {', '.join(summary.bad_exit)}")
    if summary.failed_drill_rounds:
        problems.append(drill_rounds_text(summary.failed_drill_rounds))
    if summary.regressions:
        problems.append(f"{len(summary.regressions)} regression(s)")
    if summary.newly_failing:
        problems.append(f"{len(summary.newly_failing)} test(s) newly failing")
    if summary.newly_skipped:
        problems.append(f"{len(summary.newly_skipped)} test(s) newly skipped")
    if summary.exit_code:
        return f'<p id="verdict" class="verdict fail">Result: FAIL — {esc("; ".join(problems))}.</p>'
    return '<p id="verdict" class="verdict pass">Result: PASS — nothing failed, no regression.</p>'


def header_html(report: LoadedReport) -> str:
    data = report.data
    counts = counts_of(report)
    facts = [("run", data.get("run_id") or "no stack"), ("image set", data.get("image_set") or "-"),
             ("created", data.get("created") or "-"), ("pytest exit status", data.get("exitstatus", "-")),
             ("stack mode", data.get("stack_mode") or "-"),
             ("tests", ", ".join(f"{counts[k]} {k}" for k in OUTCOMES))]
    rows = [[esc(k), esc(v)] for k, v in facts]
    for key, what in (("services_unavailable", "unavailable"), ("services_failed", "failed to start")):
        for service, why in json_dict(data.get(key)).items():
            rows.append([f'<span class="bad">{esc(service)} {what}</span>', esc(why or "?")])
    images = json_dict(data.get("images"))
    image_rows = [[esc(n), esc(json_dict(i).get("ref") or "-"), esc(json_dict(i).get("source") or "-")]
                  for n, i in images.items()]
    out = f"<h3>{esc(report.name)}</h3>" + _table(["fact", "value"], rows)
    if image_rows:
        out += "<details><summary>images</summary>" + _table(["service", "image", "source"], image_rows) + "</details>"
    return out


def results_html(reports: Sequence[LoadedReport]) -> str:
    several = len(reports) > 1
    results = [(report, r) for report in reports for r in results_of(report)]
    if not results:
        return "<h2>Tests</h2><p>No test results in the report(s).</p>"
    out = ["<h2>Tests per suite</h2>", suites_chart([r for _, r in results])]
    per_suite: dict[str, Counter[str]] = {}
    for _, r in results:
        per_suite.setdefault(suite_of(r.nodeid), Counter())[r.outcome] += 1
    rows = [[esc(s), *(str(c[k]) for k in OUTCOMES)] for s, c in sorted(per_suite.items())]
    out.append(_table(["suite", *OUTCOMES], rows, "suites", numeric=(1, 2, 3, 4)))
    failing = [(report, r) for report, r in results if r.outcome in FAILING]
    logs_of = {report.name: json_dict(report.data.get("service_logs")) for report in reports}
    if failing:
        out.append(f"<h2>Failures and errors ({len(failing)})</h2><ol id=\"failures\">")
        log_blocks = []
        for n, (report, r) in enumerate(failing):
            where = f" <span class=\"muted\">({esc(report.name)})</span>" if several else ""
            logs = json_dict(logs_of[report.name].get(r.nodeid))
            link = ""
            if logs:
                link = f' — <a href="#logs-{n}">service logs ({esc(", ".join(logs))})</a>'
                blocks = "".join(f"<h4>{esc(service)}</h4><pre>{esc(text)}</pre>" for service, text in logs.items())
                log_blocks.append(f'<details id="logs-{n}" open><summary>{esc(r.nodeid)}</summary>{blocks}</details>')
            reason = esc(r.reason) if r.reason.strip() else "(no reason recorded)"
            out.append(f'<li class="failure" id="failure-{n}"><span class="outcome bad">{esc(r.outcome)}</span> '
                       f"<code>{esc(r.nodeid)}</code>{where}{link}<pre>{reason}</pre></li>")
        out.append("</ol>")
        if log_blocks:
            out.append("<h3>Attached service logs</h3>" + "".join(log_blocks))
    groups: dict[str, list[Any]] = {}
    for _, r in results:
        if r.outcome == "skipped":
            groups.setdefault(" ".join(r.reason.split()) or "(no reason recorded)", []).append(r)
    if groups:
        total = sum(len(g) for g in groups.values())
        rows = [[str(len(g)), esc(reason), esc(", ".join(sorted({suite_of(r.nodeid) for r in g})))]
                for reason, g in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))]
        out.append(f"<h2>Skips ({total}) by reason</h2>" + _table(["count", "reason", "suites"], rows, "skips", (0,)))
    return "".join(out)


def _invariants(kind: str, drills: Sequence[Drill]) -> str:
    """What must hold in every round, and whether it did."""
    rounds = drill_rounds(drills)
    rows = [[esc("rounds"), str(len(rounds)), ""]]
    failed = [str(r.get("round", "?")) for r in rounds if json_list(r.get("problems"))]
    rows.append(["rounds with a problem (must be none)", esc(", ".join(failed) or "none"),
                 '<span class="bad">FAIL</span>' if failed else '<span class="ok">ok</span>'])
    # A round that did not count (None) is "not measured", never 0; an invariant not measured is not ok.
    if (lost := round_count(rounds, "lost_replicated")) is not None:
        good = lost.counted == lost.rounds and not lost.total
        rows.append(["acknowledged writes confirmed on a replica by WAIT and lost (must be 0)", esc(lost.text),
                     '<span class="ok">ok</span>' if good else '<span class="bad">FAIL</span>'])
    if (lost_writes := round_count(rounds, "lost_writes")) is not None:
        rows.append(["acknowledged writes lost, not confirmed by WAIT (allowed: asynchronous replication)",
                     esc(lost_writes.text), ""])
    served = [r.get("surviving_slots_served") for r in rounds if "surviving_slots_served" in r]
    if served:
        bad = sum(1 for s in served if s is not True)
        rows.append(["surviving masters served their keys (every round)", f"{len(served) - bad} of {len(served)}",
                     '<span class="bad">FAIL</span>' if bad else '<span class="ok">ok</span>'])
    if (missing := round_count(rounds, "keys_missing")) is not None:
        rows.append(["keys missing after recovery", esc(missing.text), ""])
    problems = [f"<li>round {esc(r.get('round', '?'))}: {esc(p)}</li>"
                for r in rounds for p in json_list(r.get("problems"))]
    out = _table(["invariant", "value", "verdict"], rows, f"invariants-{slug(kind)}")
    return out + (f"<ul class=\"bad\">{''.join(problems)}</ul>" if problems else "")


def drills_html(reports: Sequence[LoadedReport]) -> str:
    out = []
    for index, report in enumerate(reports):
        drills = drills_of(report)
        for kind in dict.fromkeys(d.kind for d in drills):
            group = [d for d in drills if d.kind == kind]
            where = f" — {esc(report.name)}" if len(reports) > 1 else ""
            common = f" <span class=\"muted\">({esc(group[0].common)})</span>" if group[0].common else ""
            chart_id = f"chart-drill-{index}-{slug(kind)}"
            metrics = list(dict.fromkeys(m for d in group for m in json_dict(d.data.get("summary"))))
            rows = []
            for m in metrics:
                unit = unit_of(m) or "count"
                cells = []
                for d in group:
                    stats = json_dict(json_dict(d.data.get("summary")).get(m))
                    median, top = json_number(stats.get("median")), json_number(stats.get("max"))
                    cells.append(esc(with_unit(median, unit) + ("" if top is None or top == median
                                                                 else f" (max {with_unit(top, unit)})")))
                rows.append([esc(m), *cells])
            table = _table(["metric", *(esc(d.label or "median (max)") for d in group)], rows,
                           numeric=tuple(range(1, len(group) + 1)))
            out.append(f"<h3>{esc(kind)}{common}{where}</h3>{drill_chart(kind, group, chart_id)}"
                       f"{_invariants(kind, group)}<details><summary>medians per drill</summary>{table}</details>")
    return "<h2>Drills</h2>" + "".join(out) if out else ""


def benchmarks_html(reports: Sequence[LoadedReport]) -> str:
    out = []
    for index, report in enumerate(reports):
        benchmarks = json_dict(report.data.get("benchmarks"))
        if not benchmarks:
            continue
        where = f" — {esc(report.name)}" if len(reports) > 1 else ""
        charts = backup_charts(benchmarks, index)
        rows = []
        for name, bench in benchmarks.items():
            for path, value in numeric_leaves(bench, (str(name),)):
                unit = next((u for k in reversed(path) if (u := unit_of(k)) is not None), None)
                shown = with_unit(value, unit) if unit else f"{value:,.0f}" if value == int(value) else f"{value:g}"
                rows.append([esc(path[0]), esc(".".join(path[1:])), esc(shown)])
        table = _table(["benchmark", "figure", "value"], rows, f"benchmarks-{index}", numeric=(2,))
        out.append(f"<h3>Benchmarks{where}</h3>{charts}<details><summary>every figure (sizes in bytes)</summary>"
                   f"{table}</details>")
    return "<h2>Backup and other benchmarks</h2>" + "".join(out) if out else ""


def tls_html(reports: Sequence[LoadedReport]) -> str:
    out = []
    for report in reports:
        rows, classes = [], []
        for raw in json_list(report.data.get("tls")):
            row = json_dict(raw)
            days = json_number(row.get("days_left"))
            minimum = json_number(row.get("min_days_left"))
            low = days is not None and minimum is not None and days < minimum
            matches = row.get("matches")
            shown = "-" if days is None else f'<span class="bad">{days:.1f}</span>' if low else f"{days:.1f}"
            rows.append([esc(row.get("service", "?")), esc(row.get("listener", "?")),
                         f'<code class="serial">{esc(row.get("serial", "-"))}</code>',
                         esc(row.get("not_after", "-")), shown,
                         esc(f"{row.get('version', '-')} {row.get('cipher', '')}".strip()),
                         esc(row.get("tls12_cipher", "-")),
                         {True: "yes", False: '<span class="bad">NO</span>'}.get(matches, "-") if isinstance(
                             matches, bool) else "-"])
            if row.get("error"):  # the handshake failed: what it said, in the last column
                rows[-1][-1] = f'<span class="bad">{esc(row["error"])}</span>'
            classes.append("regression" if low or matches is False or row.get("error") else "")
        if rows:
            where = f" — {esc(report.name)}" if len(reports) > 1 else ""
            out.append(f"<h3>Served certificates{where}</h3>" + _table(
                ["service", "listener", "serial", "not after (UTC)", "days left", "TLS", "TLS 1.2 suite", "Vault's"],
                rows, "tls", numeric=(4,), row_class=classes))
    return "<h2>TLS listeners</h2>" + "".join(out) if out else ""


@dataclass(frozen=True)
class TrendRow:
    key: str
    label: str
    unit: str
    values: list[float | None]
    flagged: list[bool]  # per point: a regression against the point before (summarize's rule)
    comparison: Comparison | None  # current against the latest previous run (what summarize reports)


def trend_rows(history: Sequence[LoadedReport], reports: Sequence[LoadedReport],
               tolerance: float) -> list[TrendRow]:
    """Every figure over the runs (previous runs oldest first, then the current report(s)). The current reports
    are compared with the latest previous run exactly as ``report summarize`` compares them (its
    :func:`~harness.reports.summary.compare` and :class:`~harness.reports.summary.Comparison`); earlier runs each with
    the run before them, by the same rule."""
    points = [*history, *reports]
    figures = [figures_of(p) for p in points]
    keys = list(dict.fromkeys(k for f in figures for k in f))
    latest = figures[len(history) - 1] if history else {}
    rows = []
    for key in keys:
        values = [f[key].value if key in f else None for f in figures]
        first = next(f[key] for f in figures if key in f)
        flagged = [False] * len(points)
        found: list[Comparison] = []
        for i in range(1, len(points)):
            before = latest if i >= len(history) else figures[i - 1]
            if key in figures[i] and key in before:
                (comparison,) = compare(before, [(key, figures[i][key])], tolerance)
                flagged[i] = comparison.regression
                if i >= len(history):
                    found.append(comparison)
        worst = next((c for c in found if c.regression), found[0] if found else None)
        rows.append(TrendRow(key, first.label, first.unit, values, flagged, worst))
    return rows


def trend_html(history: Sequence[LoadedReport], reports: Sequence[LoadedReport], tolerance: float) -> str:
    if not history and len(reports) < 2:
        return ""
    rows = trend_rows(history, reports, tolerance)
    if not rows:
        return ""
    names = [p.name for p in (*history, *reports)]
    body, classes = [], []
    sparks = Sparklines()
    for n, row in enumerate(rows):
        c = row.comparison
        change = "-" if c is None or c.change is None else f"{c.change:+.0%}"
        verdict = "-" if c is None else ("REGRESSION" if c.regression else c.verdict.strip("*"))
        spark = sparks.svg(row.values, row.flagged, f"trend-{n}") if any(v is not None for v in row.values) else ""
        body.append([esc(row.label), *(esc(with_unit(v, row.unit)) for v in row.values), esc(change),
                     esc(verdict), spark])
        classes.append("regression" if any(row.flagged) else ("better" if c is not None and c.verdict == "better"
                                                                else ""))
    table = _table(["figure", *(esc(n) for n in names), "change", "verdict", "trend"], body, "trend",
                   numeric=tuple(range(1, len(names) + 2)), row_class=classes, row_key=[r.key for r in rows])
    floors = "0.05 s, 50 ms, 1 for counts"
    return (f"<h2>Trend</h2><p class=\"muted\">Lower is better. A figure is a REGRESSION (red) when it is worse "
            f"than the run before by more than {tolerance:.0%} and by more than an absolute floor ({floors}): "
            f"the rule of <code>report summarize</code>.</p>{table}")


# ------------------------------------------------------------------------------------------ the page


def render(reports: Sequence[LoadedReport], previous: Sequence[LoadedReport] = (), tolerance: float = 0.25) -> str:
    """The whole page for the current report(s), with the trend over ``previous`` (oldest first)."""
    summary = summarize(reports, previous[-1] if previous else None, tolerance)
    title = "Run report: " + ", ".join(r.name for r in reports)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
             f"<style>{CSS}</style></head><body>", f"<h1>{esc(title)}</h1>", verdict_html(summary)]
    if previous:
        parts.append(f"<p class=\"muted\">Compared with {esc(previous[-1].name)}"
                     + (f" (history: {esc(', '.join(p.name for p in previous))})" if len(previous) > 1 else "")
                     + ".</p>")
    parts.append("<h2>Runs</h2>" + "".join(header_html(r) for r in reports))
    timelines = "".join(timeline_chart(r, i) for i, r in enumerate(reports))
    if timelines:
        parts.append("<h2>Start timeline</h2><p class=\"muted\">Each bar runs from the moment a service's start "
                     "was submitted to its first successful login; Vault's bootstrap steps are drawn inside its "
                     "bar.</p>" + timelines)
    parts += [results_html(reports), drills_html(reports), benchmarks_html(reports), tls_html(reports),
              trend_html(previous, reports, tolerance)]
    if summary.newly_failing or summary.newly_skipped:
        items = [f"<li>now failing: <code>{esc(n)}</code></li>" for n in summary.newly_failing]
        items += [f"<li>now skipped: <code>{esc(n)}</code></li>" for n in summary.newly_skipped]
        parts.append(f"<h2>Passed in {esc(previous[-1].name)}, not now</h2><ul id=\"newly\">{''.join(items)}</ul>")
    parts.append("<p class=\"muted\">Written by devstack-harness (<code>python -m harness report html</code>).</p>"
                 "</body></html>\n")
    return redact("".join(parts))


def write_html(path: Path, page: str) -> Path:
    """Write atomically, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def html_path(report_path: Path) -> Path:
    """Where the HTML of a JSON run report goes: beside it, ``.html`` for ``.json``."""
    return report_path.with_suffix(".html")


def write_beside(report_path: Path, tolerance: float = 0.25) -> Path:
    """Render the JSON run report at ``report_path`` (as written: redacted) into the HTML file beside it."""
    return write_html(html_path(report_path), render([load_report(report_path)], (), tolerance))




# ------------------------------------------------------------------------------------------ browser

#: Debian's package, then the names other systems (and GitHub's runners) give a Chromium-based browser.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Headless and without any network feature: no QUIC, no first-run, no background updates, sync or networking.
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--hide-scrollbars", "--mute-audio")
BROWSER_TIMEOUT_S = 120.0  # a hang guard: a page renders in a few seconds


def find_browser() -> str | None:
    """The first Chromium-based browser on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name)) is not None), None)


def _browser(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    browser = find_browser()
    if browser is None:
        raise ConfigError(f"no Chromium-based browser on PATH (looked for {', '.join(BROWSERS)}); install Debian's "
                          "chromium (`bash scripts/setup.sh` does, as root)")
    with tempfile.TemporaryDirectory(prefix="dsh-chromium-") as profile:
        argv = [browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
                                  cwd=profile)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{browser} did not finish rendering {page} within {BROWSER_TIMEOUT_S:.0f} s; "
                               f"run `{' '.join(argv)}` by hand to see where it hangs") from None
    if proc.returncode != 0:
        raise HarnessError(f"{browser} exited {proc.returncode} rendering {page}: {proc.stderr.strip()[-600:]}")
    return proc


def dump_dom(page: Path) -> str:
    """The page's DOM as the browser built it (``--dump-dom``)."""
    return _browser(page, "--dump-dom").stdout


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 12000) -> Path:
    """A PNG of the whole page: rendered in a window ``height`` pixels tall, then cut below the last content."""
    from PIL import Image, ImageChops

    png.parent.mkdir(parents=True, exist_ok=True)
    _browser(page, f"--window-size={width},{height}", f"--screenshot={png.resolve()}")
    if not png.is_file():
        raise HarnessError(f"the browser wrote no screenshot to {png}")
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    box = ImageChops.difference(rgb, Image.new("RGB", rgb.size, "white")).getbbox()
    if box is not None:
        rgb.crop((0, 0, width, min(height, box[3] + 24))).save(png)
    return png
