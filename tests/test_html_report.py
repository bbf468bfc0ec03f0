"""The HTML run report (harness/reports/html.py): what it draws, what it refuses to hide, and that it flags
regressions by the rule of ``report summarize``. Built from reports of the real shapes (the engine's
StackReport, the drills' reports, the backup round trip's benchmark). No Docker, no browser (the browser test is
tests/test_html_browser.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import secrets
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.cli import main
from harness.drills.redis import FailoverRound, NodeLossRound
from harness.drills.redis import report as drill_report
from harness.reports import html as html_report
from harness.reports.html import (
    BROWSERS,
    COLOURS,
    STATUS_COLOURS,
    dump_dom,
    find_browser,
    render,
    screenshot,
    timeline_bars,
    write_beside,
)
from harness.reports.redact import forget, register
from harness.reports.report import Outcomes, build_report
from harness.reports.summary import LoadedReport, summarize
from harness.stacks.engine import ServiceRecord, StackReport
from harness.trust.certs import CertStatus, TlsTarget, tls_row
from stack.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Zq7" + secrets.token_hex(14)  # random: no piece of it is an ordinary word


def stack_json(slow_postgres: float = 0.0) -> dict[str, Any]:
    """A stack report as the engine writes it: Vault first (with its bootstrap steps), the rest in parallel."""
    report = StackReport(run_id="20260101T000000-abcdef", image_set="debian", requested=["postgres", "redis"])
    report.services["vault"] = ServiceRecord("vault", "ready", "dsh/vault", "sha256:1", "debian", "debian set",
                                             submitted_s=0.0, ready_s=4.0, time_to_ready_s=4.0,
                                             bootstrap_started_s=1.5,
                                             bootstrap_s={"pki": 1.0, "kv": 0.3, "approles": 0.7,
                                                          "https listener": 0.4, "total": 2.4})
    report.services["postgres"] = ServiceRecord("postgres", "ready", "dsh/postgres", "sha256:2", "debian", "debian set",
                                                submitted_s=4.0, ready_s=7.0 + slow_postgres,
                                                time_to_ready_s=3.0 + slow_postgres)
    report.services["redis"] = ServiceRecord("redis", "ready", "dsh/redis", "sha256:3", "debian", "debian set",
                                             submitted_s=4.0, ready_s=9.0, time_to_ready_s=5.0)
    report.services["mongodb"] = ServiceRecord("mongodb", "unavailable", "mongo:7.0.16", None, "official",
                                               error="image mongo:7.0.16 is not present")
    report.started = ["vault", "postgres", "redis"]
    report.total_start_s = 9.0 + slow_postgres
    return report.to_json()


def failover_drill() -> dict[str, Any]:
    rounds = []
    for i, fault in enumerate(["kill", "stop", "pause", "disconnect"] * 2):
        rounds.append(FailoverRound(i, fault, f"redis-{i % 3}", detect_ms=900 + 40 * i, promote_ms=1200 + 30 * i,
                                    cluster_ok_ms=1500 + 20 * i, client_outage_ms=1600 + 25 * i, rejoin_ms=3000,
                                    writes_acked=500, writes_replicated=490, lost_writes=i % 3,
                                    lost_replicated=0))
    return drill_report("redis-failover", rounds, {"node_timeout_ms": 1000, "topology": "3+3", "rounds": 8})


def node_loss_drill() -> dict[str, Any]:
    rounds = [NodeLossRound(i, i % 2 == 1, "redis-1", detect_ms=1100 + i, recovery_ms=2500 + 10 * i, keys_written=300,
                            keys_missing=0, surviving_slots_served=True) for i in range(4)]
    return drill_report("redis-node-loss", rounds, {"node_timeout_ms": 1000, "topology": "3+0", "rounds": 4})


def outcomes(failing: bool = True, passing: bool = True) -> Outcomes:
    o = Outcomes()
    if passing:
        o.add("suites/postgres/test_postgres_basics.py::test_login", "call", "passed", 0.2)
        o.add("suites/redis_cluster/test_slot_coverage.py::test_all_slots", "call", "passed", 0.4)
        o.add("suites/tls/test_cert_expiry.py::test_days_left_within_bounds[postgres]", "call", "passed", 0.1)
    if failing:
        o.add("suites/postgres/test_postgres_basics.py::test_rotation", "call", "failed", 0.3,
              f"AssertionError: login <refused> for password {SECRET}")
        o.add("suites/vault/test_vault_restart.py::test_unseal", "setup", "failed", 0.1, "VaultError: sealed")
    o.add("suites/mongodb/test_mongodb_basics.py::test_login", "setup", "skipped", 0.0,
          "mongodb unavailable here: image mongo:7.0.16 is not present")
    return o


def run_report(*, failing: bool = True, passing: bool = True, slow_postgres: float = 0.0) -> dict[str, Any]:
    data = build_report(stack=stack_json(slow_postgres), outcomes=outcomes(failing, passing),
                        needed=["vault", "postgres", "redis", "mongodb"], exitstatus=1 if failing else 0)
    data["stack_mode"] = "testcontainers"
    data["drills"] = [failover_drill(), node_loss_drill()]
    data["benchmarks"] = {
        "backup": {"backup_s": 12.5, "verify_s": 0.8, "restore_s (RTO)": 30.2,
                   "restore_per_service_s": {"vault": 3.1, "postgres": 9.4, "redis": 11.0},
                   "stored_bytes": 123456, "artifacts": {"postgres.dump": 100000}},
        "backup postgres": {"backup_s": 3.0, "verify_s": 0.2, "restore_s (RTO)": 9.9,
                            "restore_per_service_s": {"vault": 2.0, "postgres": 7.5}, "stored_bytes": 45678}}
    data["tls"] = [{"service": "postgres", "listener": "postgres :5432", "serial": "1a:2b", "not_after": "2026-02-01",
                    "days_left": 29.5, "min_days_left": 7, "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384",
                    "tls12_cipher": "ECDHE-RSA-AES256-GCM-SHA384", "matches": True}]
    if failing:
        data["service_logs"] = {"suites/postgres/test_postgres_basics.py::test_rotation":
                                {"postgres": f"FATAL: password authentication failed for {SECRET}"}}
    return data


def loaded(data: dict[str, Any], name: str = "report.json") -> LoadedReport:
    return LoadedReport(name, json.loads(json.dumps(data, default=str)))


class Elements(HTMLParser):
    """Every element's tag and attributes, in document order (the page is parsed, not searched as text)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def ids(self, prefix: str) -> list[str]:
        return [a["id"] for _, a in self.elements if a.get("id", "").startswith(prefix)]

    def by_class(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and cls in a.get("class", "").split()]


@pytest.fixture(autouse=True)
def _secret():
    register(SECRET)
    yield
    forget()


# Drawing a page's charts takes about a second: tests that only read the same page share one rendering, and each
# chart is drawn once per distinct input (below).

CHARTS = ("timeline_chart", "suites_chart", "drill_chart", "backup_charts")


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o)
                      else repr(o))


@pytest.fixture(scope="module", autouse=True)
def _charts_drawn_once() -> Iterator[None]:
    """Each chart function of harness.reports.html (a pure function of its arguments: the chart's SVG, salted with
    its id) draws a given input once in this module; every page with that chart gets the SVG of that drawing. Most
    pages here share their drills, benchmarks and start timeline, and drawing those with matplotlib is most of a
    page's cost. render() looks the functions up in the module, so every page, written by the CLI or the plugin
    too, goes through this."""
    drawn: dict[tuple[str, str], str] = {}
    originals = {name: getattr(html_report, name) for name in CHARTS}

    def once(name: str) -> Callable[..., str]:
        def chart(*args: Any, **kwargs: Any) -> str:
            key = (name, _key([args, kwargs]))
            if key not in drawn:
                drawn[key] = originals[name](*args, **kwargs)
            return drawn[key]
        return chart

    with pytest.MonkeyPatch.context() as patch:
        for name in CHARTS:
            patch.setattr(html_report, name, once(name))
        yield


@pytest.fixture(scope="module")
def failing_page() -> str:
    """The page of a run with failures, attached logs, drills, benchmarks and TLS rows (no previous run)."""
    register(SECRET)  # before the function-scoped _secret fixture: the page is redacted as it is drawn
    return render([loaded(run_report())])


@pytest.fixture(scope="module")
def failing_trend_page() -> str:
    """A failing run compared with a faster, clean previous run: every section, the trend included."""
    register(SECRET)
    return render([loaded(run_report(slow_postgres=2.0))], [loaded(run_report(failing=False), "previous.json")])


def test_page_has_every_chart_and_the_failures(failing_page):
    doc = Elements(failing_page)
    assert doc.ids("chart-timeline-0") == ["chart-timeline-0"]
    assert sorted(doc.ids("bar-")) == ["bar-postgres", "bar-redis", "bar-vault"]  # mongodb never started
    assert doc.ids("step-vault-") == ["step-vault-pki", "step-vault-kv", "step-vault-approles",
                                      "step-vault-https-listener"]
    assert "chart-suites" in doc.ids("chart-suites")
    assert "suite-suites-postgres-failed" in doc.ids("suite-")
    assert "suite-suites-mongodb-skipped" in doc.ids("suite-")
    failures = doc.by_class("li", "failure")
    assert len(failures) == 2  # one failed, one error
    assert doc.ids("logs-") == ["logs-0"]
    # a box and a strip of points per fault, for each failover metric with values
    boxes = doc.ids("box-chart-drill-0-redis-failover-detect-ms-")
    assert sorted(boxes) == sorted(f"box-chart-drill-0-redis-failover-detect-ms-{f}"
                                   for f in ("kill", "stop", "pause", "disconnect"))
    assert len(doc.ids("points-chart-drill-0-redis-failover-client-outage-ms-")) == 4
    assert len(doc.ids("box-chart-drill-0-redis-node-loss-recovery-ms-")) == 2  # full coverage yes / no
    assert doc.ids("invariants-") == ["invariants-redis-failover", "invariants-redis-node-loss"]
    assert {"chart-backup-0", "chart-rto-0"} <= set(doc.ids("chart-"))
    assert "rto-0-backup-postgres" in doc.ids("rto-")
    assert doc.ids("tls") == ["tls"]
    assert not doc.ids("trend"), "one report and no previous: nothing to trend"


def test_failures_show_their_redacted_messages_and_logs(failing_page):
    page = failing_page
    assert SECRET not in page
    assert "AssertionError: login &lt;refused&gt; for password ***" in page
    assert "FATAL: password authentication failed for ***" in page
    assert 'href="#logs-0"' in page
    assert "VaultError: sealed" in page


def test_a_report_with_failures_is_fail_and_a_clean_one_pass(failing_page):
    failing = failing_page
    assert re.search(r'<p id="verdict" class="verdict fail">Result: FAIL — 2 failed or errored test\(s\); '
                     r"pytest exit status not 0 in report.json\.</p>", failing)
    clean = render([loaded(run_report(failing=False))])
    assert '<p id="verdict" class="verdict pass">Result: PASS' in clean
    assert not Elements(clean).by_class("li", "failure")


def test_nothing_passed_is_fail_as_summarize_says():
    report = loaded(run_report(failing=False, passing=False))
    assert summarize([report]).exit_code == 1
    page = render([report])
    assert ('<p id="verdict" class="verdict fail">Result: FAIL — no test passed in report.json (1 skipped): a run '
            "that passes nothing proves nothing.</p>") in page


def test_a_failed_drill_round_and_a_missing_exit_status_are_fail_as_summarize_says():
    data = run_report(failing=False)
    data["drills"][0]["rounds"][2]["problems"] = ["promotion took 6100 ms, beyond drill_promote_max_ms (5000 ms)"]
    del data["exitstatus"]
    report = loaded(data)
    assert summarize([report]).exit_code == 1
    assert ('<p id="verdict" class="verdict fail">Result: FAIL — no exit status in report.json: the run did not end '
            "(killed?) or its report is incomplete; 1 drill round(s) with problems: redis-failover round 2.</p>"
            ) in render([report])


def _trend_rows(page: str) -> dict[str, str]:
    """figure key -> the row's class ('' when none)."""
    return {a["data-figure"]: a.get("class", "") for t, a in Elements(page).elements
            if t == "tr" and "data-figure" in a}


def test_a_slower_figure_is_a_regression_and_an_equal_one_is_not():
    previous = loaded(run_report(failing=False), "previous.json")
    current = loaded(run_report(failing=False, slow_postgres=2.0), "current.json")
    page = render([current], [previous])
    rows = _trend_rows(page)
    assert rows["ready postgres"] == "regression"  # 3 s -> 5 s: +67 %, 2 s above the floor
    assert rows["ready redis"] == ""  # equal
    assert rows["ready vault"] == ""
    doc = Elements(page)
    regressed = [n for n, key in enumerate(rows) if rows[key] == "regression"]
    points = doc.ids("regression-trend-")
    assert points == [f"regression-trend-{n}-1" for n in regressed]
    # The same regressions `report summarize` finds, and the same verdict.
    summary = summarize([current], previous)
    assert [c.label for c in summary.regressions] == ["time-to-ready postgres"]  # stack start: +22 %, within 25 %
    assert len(regressed) == 1
    assert "Result: FAIL — 1 regression(s)." in page


def test_equal_runs_have_no_regression():
    previous = loaded(run_report(failing=False), "previous.json")
    current = loaded(run_report(failing=False), "current.json")
    page = render([current], [previous])
    assert set(_trend_rows(page).values()) == {""}
    assert not Elements(page).ids("regression-")
    assert '<p id="verdict" class="verdict pass">' in page


def test_history_flags_an_earlier_regression_by_the_same_rule():
    runs = [loaded(run_report(failing=False), "1.json"), loaded(run_report(failing=False, slow_postgres=2.0), "2.json")]
    current = loaded(run_report(failing=False, slow_postgres=2.0), "3.json")
    page = render([current], runs)
    postgres = list(_trend_rows(page)).index("ready postgres")
    assert Elements(page).ids("regression-") == [f"regression-trend-{postgres}-1"]  # slower from 1 to 2, then equal
    assert '<p id="verdict" class="verdict pass">' in page  # 3 equals 2, the latest previous run


def test_every_string_is_escaped():
    data = run_report()
    data["results"].append({"nodeid": "suites/x/test_x.py::test_<script>alert(1)</script>", "outcome": "failed",
                            "duration_s": 0.1, "reason": "<img src=x onerror=alert(1)>"})
    data["image_set"] = '"><script>alert(2)</script>'
    page = render([loaded(data)])
    assert "<script" not in page.lower()
    assert "onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_no_network_reference_and_no_script(failing_trend_page):
    page = failing_trend_page
    assert "<script" not in page
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)
    assert "@import" not in page and "@font-face" not in page
    # SVG namespaces are identifiers, not fetched; nothing else points off the page.
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) <= {"http://www.w3.org/2000/svg",
                                                            "http://www.w3.org/1999/xlink"}


def test_timeline_without_offsets_falls_back_to_time_to_ready():
    bars, offsets = timeline_bars({"time_to_ready_s": {"vault": 2.0, "postgres": 3.0}})
    assert not offsets
    assert [(b.service, b.start, b.end) for b in bars] == [("vault", 0.0, 2.0), ("postgres", 0.0, 3.0)]


def test_vault_steps_are_laid_inside_its_bar():
    bars, offsets = timeline_bars(loaded(run_report()).data)
    vault = next(b for b in bars if b.steps)
    assert offsets and vault.service == "vault"
    assert vault.steps[0] == ("pki", 1.5, 2.5)
    assert vault.start <= vault.steps[0][1] and vault.steps[-1][2] <= vault.end


def test_written_beside_the_json_report(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(run_report()))
    assert write_beside(path) == tmp_path / "report.html"
    assert 'id="chart-timeline-0"' in (tmp_path / "report.html").read_text()


def _cli_in_process(capsys, monkeypatch, *args: str) -> tuple[int, str]:
    """``python -m harness report html ARGS`` through cli.main in this process (the CLI's own code, without a
    second interpreter that imports everything again; tests/test_cli.py starts the real command once): exit status
    and what it wrote to stderr."""
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    code = main(["report", "html", *args])
    return code, capsys.readouterr().err


def test_cli_renders_reports_with_previous(tmp_path, capsys, monkeypatch):
    current, previous = tmp_path / "report-full.json", tmp_path / "baseline.json"
    current.write_text(json.dumps(run_report(failing=False, slow_postgres=2.0)))
    previous.write_text(json.dumps(run_report(failing=False)))
    out = tmp_path / "out" / "run.html"
    code, err = _cli_in_process(capsys, monkeypatch, str(current), "--previous", str(previous), "-o", str(out))
    assert code == 0, err
    assert f"html report: {out}" in " ".join(err.split())
    assert _trend_rows(out.read_text())["ready postgres"] == "regression"
    code, err = _cli_in_process(capsys, monkeypatch, str(current))
    assert code == 0, err
    assert f"html report: {tmp_path / 'report-full.html'}" in " ".join(err.split())
    assert (tmp_path / "report-full.html").is_file()


def test_cli_refuses_what_is_not_a_run_report(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "drill.json"
    bad.write_text(json.dumps({"drill": "redis-failover"}))
    code, err = _cli_in_process(capsys, monkeypatch, str(bad))
    assert code == 2
    assert f"error: {bad}: not a run report" in " ".join(err.split())
    assert not (tmp_path / "drill.html").exists()


# ------------------------------------------------------------------------------------- in a browser

BROWSER = find_browser()
needs_browser = pytest.mark.skipif(BROWSER is None, reason=f"no Chromium-based browser on PATH (looked for "
                                   f"{', '.join(BROWSERS)}): install Debian's chromium (scripts/setup.sh does)")


def _colour_pixels(png: Path) -> Callable[[str], int]:
    """How many pixels of the PNG have a colour (``#rrggbb``); the image is read and counted once."""
    from PIL import Image

    with Image.open(png) as image:
        counts = {pixel: count for count, pixel in image.convert("RGB").getcolors(1 << 24) or []}
    return lambda colour: counts.get(tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5)), 0)


@needs_browser
def test_chromium_builds_the_charts_and_the_failure_list(tmp_path, failing_trend_page):
    """The page of a failing run compared with a faster previous run, as headless Chromium parses it."""
    page = tmp_path / "report.html"
    page.write_text(failing_trend_page)
    dom = Elements(dump_dom(page))
    svgs = [a["id"] for t, a in dom.elements if t == "svg" and a.get("id", "").startswith("chart-")]
    assert svgs == ["chart-timeline-0", "chart-suites", "chart-drill-0-redis-failover", "chart-drill-0-redis-node-loss",
                    "chart-backup-0", "chart-rto-0"]
    assert sorted(dom.ids("bar-")) == ["bar-postgres", "bar-redis", "bar-vault"]
    assert len(dom.ids("step-vault-")) == 4
    assert len(dom.ids("box-chart-drill-0-redis-failover-")) == 4 * 7  # 4 faults x 7 metrics
    assert [a["id"] for a in dom.by_class("li", "failure")] == ["failure-0", "failure-1"]
    assert dom.ids("logs-") == ["logs-0"]
    assert [a["data-figure"] for a in dom.by_class("tr", "regression")] == ["ready postgres"]
    assert len(dom.ids("regression-trend-")) == 1
    assert dom.by_class("p", "fail") and not dom.by_class("p", "pass")


@needs_browser
def test_screenshot_shows_the_charts(tmp_path, failing_page):
    page = tmp_path / "report.html"
    page.write_text(failing_page)
    # A window of 6000 px, not screenshot()'s default 12000: this page is about 4100 px tall, so it is still cut
    # below its content, and Chromium rasters and encodes half the pixels (about 0.7 core-s less per run).
    window = 6000
    png = screenshot(page, tmp_path / "report.png", height=window)
    from PIL import Image

    with Image.open(png) as image:
        width, height = image.size
    assert width == 1280 and 2000 < height < window, "cut below the content"
    # Pixels of the charts' own colours exist only if the inline SVG was drawn.
    pixels = _colour_pixels(png)
    assert pixels(STATUS_COLOURS["ready"]) > 2000  # the timeline's bars
    assert pixels(COLOURS["failed"]) > 1000  # the failed part of suites/postgres
    assert pixels(COLOURS["passed"]) > 1000


def test_no_browser_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"^no Chromium-based browser on PATH \(looked for chromium, "):
        dump_dom(tmp_path / "x.html")


def test_tls_rows_as_the_suite_records_them():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    target = TlsTarget("postgres", "postgres", 5432, "postgres", "0a:0b", "/ca.pem")
    served = CertStatus(target, "0a:0b", now + dt.timedelta(days=1), 1.0, "TLSv1.3", "TLS_AES_128_GCM_SHA256",
                        "ECDHE-RSA-AES128-GCM-SHA256")
    other = TlsTarget("redis", "redis-1", 6380, "redis", "01", "/ca.pem")
    data = run_report(failing=False)
    data["tls"] = [tls_row(served, 2), tls_row((other, "ConnectionRefusedError: refused"), 2)]
    doc = Elements(render([loaded(data)]))
    rows = [a for t, a in doc.elements if t == "tr"]
    tls = doc.text[doc.text.index("Served certificates"):]
    assert "0a:0b" in tls and "2026-01-02 00:00" in tls and "1.0" in tls
    assert "ConnectionRefusedError: refused" in tls
    assert len([a for a in rows if a.get("class") == "regression"]) == 2  # below 2 days; no handshake


class FakeStack:
    """The engine's Stack as the plugin sees it, with no container: a report of a start timeline, logs."""

    def __init__(self, settings, keep=False, log=None):
        self.settings = settings
        self.run_id = "20260101T000000-fake00"
        self.state_dir = Path("/nonexistent")
        self.vault_bootstrap = None
        self.report = SimpleNamespace(to_json=lambda: stack_json())

    def resolve(self, services):
        return {}

    def start(self, services):
        pass

    def unavailable_reason(self, name):
        return None

    def endpoint(self, name):
        return f"endpoint-of-{name}"

    def logs(self, name, tail=200):
        return f"{name} log: FATAL something broke"

    def close(self):
        pass


def test_pytest_writes_the_html_beside_the_json_report(pytester, monkeypatch):
    import harness.plugin

    monkeypatch.setattr(harness.plugin, "Stack", FakeStack)
    pytester.makepyfile(test_suite="""
import pytest

@pytest.mark.postgres
def test_ok():
    pass

@pytest.mark.postgres
def test_broken():
    assert 1 == 2, "the answer is wrong"
""")
    report = pytester.path / "out" / "report.json"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={report}")
    result.assert_outcomes(passed=1, failed=1)
    page = report.with_suffix(".html")
    result.stdout.fnmatch_lines([f"html report: {page}"])
    doc = Elements(page.read_text())
    assert [a["id"] for a in doc.by_class("li", "failure")] == ["failure-0"]
    assert "AssertionError: the answer is wrong" in page.read_text()
    assert doc.ids("logs-") == ["logs-0"]  # the attached postgres log, linked from the failure
    assert "postgres log: FATAL something broke" in page.read_text()
    assert sorted(doc.ids("bar-")) == ["bar-postgres", "bar-redis", "bar-vault"]
    assert json.loads(report.read_text())["service_logs"] == {
        "test_suite.py::test_broken": {"postgres": "postgres log: FATAL something broke"}}
