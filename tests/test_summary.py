"""``report summarize``: the Markdown summary of run reports and the comparison with an earlier run (no Docker)."""

from __future__ import annotations

import copy
import json
import os

import pytest

from harness.cli import main
from harness.drills.redis import FailoverRound, NodeLossRound, report
from harness.reports.summary import (
    FLOORS,
    LoadedReport,
    ReportInputError,
    load_report,
    load_reports,
    suite_of,
    summarize,
)
from harness.settings import load_settings
from stack.errors import ConfigError


def _result(nodeid, outcome, reason=""):
    return {"nodeid": nodeid, "outcome": outcome, "duration_s": 0.1, "reason": reason}


def _report(results, **extra):
    """A minimal run report in the shape of ``harness.reports.report.build_report``."""
    counts = {k: sum(1 for r in results if r["outcome"] == k) for k in ("passed", "failed", "skipped", "error")}
    data = {"schema": 1, "created": "2025-01-01T00:00:00+00:00", "run_id": "r1", "image_set": "debian",
            "time_to_ready_s": {}, "total_stack_start_s": None, "parallel_ratio": None, "tests": counts,
            "skips": [{"nodeid": r["nodeid"], "reason": r["reason"]} for r in results if r["outcome"] == "skipped"],
            "results": results, "exitstatus": 1 if counts["failed"] or counts["error"] else 0}
    data.update(extra)
    return data


def _loaded(data, name="run.json"):
    return LoadedReport(name, data)


def _timed(ready, total=None, **extra):
    """A passing report that only carries figures."""
    return _loaded(_report([_result("suites/vault/test_a.py::test_a", "passed")], time_to_ready_s=ready,
                           total_stack_start_s=total, **extra))


MONGO_SKIP = "mongodb unavailable here: image mongo:7.0.16 is neither present nor pullable"


def _drills(promote_ms=2100.0, lost=0):
    """Drill entries exactly as the suites write them: one ``drills.report`` per round."""
    entries = []
    for number, fault in enumerate(("kill", "stop")):
        rnd = FailoverRound(round=number, fault=fault, victim="redis-1", detect_ms=1500.0, promote_ms=promote_ms,
                            cluster_ok_ms=2200.0, client_outage_ms=2300.0, rejoin_ms=900.0, writes_acked=400,
                            writes_replicated=390, lost_writes=lost, lost_replicated=0)
        entries.append(report("redis-failover", [rnd], {"fault": fault, "node_timeout_ms": 1000, "topology": "3+3"}))
    loss = NodeLossRound(round=0, full_coverage=False, victim="redis-2", detect_ms=2000.0, recovery_ms=1200.0,
                         keys_written=300, keys_missing=0, surviving_slots_served=True, lost_slots_error="MOVED")
    entries.append(report("redis-node-loss", [loss], {"full_coverage": False, "node_timeout_ms": 1000,
                                                      "topology": "3+0"}))
    return entries


def _backup(restore_s=20.5):
    return {"backup_s": 12.34, "verify_s": 0.123, "restore_s (RTO)": restore_s,
            "restore_per_service_s": {"postgres": 1.5, "redis": 2.0}, "stored_bytes": 1234567,
            "artifacts": {"postgres/app.dump": 12345}}


def _realistic(ready_postgres=5.2, restore_s=20.5, promote_ms=2100.0):
    """A report shaped like a full suite run: several suites, a skipped service, drills and the backup."""
    results = [
        _result("suites/tls/test_dual_mode.py::test_plain_and_tls[postgres]", "passed"),
        _result("suites/tls/test_dual_mode.py::test_plain_and_tls[mysql]", "passed"),
        _result("suites/tls/test_dual_mode.py::test_plain_and_tls[mongodb]", "skipped", MONGO_SKIP),
        _result("suites/mongodb/test_mongodb.py::test_crud", "skipped", MONGO_SKIP),
        _result("suites/vault/test_pki.py::test_issue", "passed"),
        _result("suites/vault/test_pki.py::test_crl", "skipped", "CRL checks need HARNESS_TLS_STRICT"),
        _result("suites/failover/test_redis_failover.py::test_failover_round[kill]", "passed"),
        _result("suites/backup/test_backup_restore.py::test_backup_verifies", "passed"),
    ]
    return _loaded(_report(
        results, time_to_ready_s={"vault": 3.1, "postgres": ready_postgres, "redis": 5.0},
        total_stack_start_s=8.7, parallel_ratio=1.02, services_unavailable={"mongodb": "no image mongo:7.0.16"},
        drills=_drills(promote_ms=promote_ms), benchmarks={"backup": _backup(restore_s), "parallel": 1.02},
        stack_mode="testcontainers"), "full-1.json")


def _row(markdown, first_cell):
    """The cells of the table row whose first cell is ``first_cell``."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no row {first_cell!r} in:\n{markdown}")


# --------------------------------------------------------------------------------------------- suites


@pytest.mark.parametrize(("nodeid", "suite"), [
    ("suites/tls/test_dual_mode.py::test_x[postgres]", "suites/tls"),
    ("suites/backup/deep/test_b.py::test_y", "suites/backup"),
    ("suites/test_top.py::test_z", "suites"),
    ("tests/test_summary.py::test_a", "tests"),
    ("other/place/test_c.py::test_d", "other/place"),
    ("test_e.py::test_f", "(top level)"),
])
def test_suite_is_the_directory_under_suites_or_tests(nodeid, suite):
    assert suite_of(nodeid) == suite


def test_counts_per_suite_and_total():
    data = _report([
        _result("suites/tls/test_a.py::test_x[postgres]", "passed"),
        _result("suites/tls/test_b.py::test_y", "failed", "AssertionError: no"),
        _result("suites/vault/test_c.py::test_z", "skipped", "not here"),
        _result("suites/vault/test_c.py::test_w", "error", "fixture broke"),
        _result("suites/vault/test_c.py::test_v", "passed"),
    ])
    markdown = summarize([_loaded(data)]).markdown
    assert _row(markdown, "suite") == ["passed", "failed", "skipped", "error"]
    assert _row(markdown, "suites/tls") == ["1", "1", "0", "0"]
    assert _row(markdown, "suites/vault") == ["1", "0", "1", "1"]
    assert _row(markdown, "**total**") == ["**2**", "**1**", "**1**", "**1**"]
    assert "2 passed, 1 failed, 1 skipped, 1 error" in markdown


def test_the_same_nodeid_in_two_reports_counts_twice():
    one = _report([_result("suites/tls/test_a.py::test_x", "passed")])
    summary = summarize([_loaded(one, "a.json"), _loaded(copy.deepcopy(one), "b.json")])
    assert _row(summary.markdown, "suites/tls") == ["2", "0", "0", "0"]
    assert "- **all reports**: 2 passed, 0 failed, 0 skipped, 0 errors" in summary.markdown
    assert "- **a.json**" in summary.markdown and "- **b.json**" in summary.markdown


def test_skips_are_grouped_by_reason_and_never_passes():
    data = _realistic().data
    data["skips"].append({"nodeid": "suites/rabbitmq/test_r.py::test_only_in_skips", "reason": MONGO_SKIP})
    markdown = summarize([_loaded(data)]).markdown
    assert "### Skips (4) by reason" in markdown
    assert _row(markdown, "3") == [f"`{MONGO_SKIP}`", "suites/mongodb, suites/rabbitmq, suites/tls"]
    assert _row(markdown, "1") == ["`CRL checks need HARNESS_TLS_STRICT`", "suites/vault"]
    assert _row(markdown, "suites/tls") == ["2", "0", "1", "0"]  # the skipped mongodb case is not a pass
    assert _row(markdown, "**total**") == ["**5**", "**0**", "**4**", "**0**"]


def test_failures_and_errors_listed_with_their_reason():
    data = _report([
        _result("suites/tls/test_a.py::test_x[mysql]", "failed", "suites/tls/test_a.py:12: AssertionError:\n  boom"),
        _result("suites/vault/test_c.py::test_w", "error", "fixture `vault` broke"),
        _result("suites/vault/test_c.py::test_ok", "passed"),
    ])
    summary = summarize([_loaded(data)])
    assert "### Failures and errors (2)" in summary.markdown
    assert ("- **failed** `suites/tls/test_a.py::test_x[mysql]` — `suites/tls/test_a.py:12: AssertionError: boom`"
            in summary.markdown)
    assert "- **error** `suites/vault/test_c.py::test_w` — ``fixture `vault` broke``" in summary.markdown
    assert "test_ok" not in summary.markdown
    assert summary.failing == 2 and summary.exit_code == 1


def test_pipes_in_a_reason_do_not_break_the_table():
    data = _report([_result("suites/a/test_a.py::test_a", "skipped", "needs a|b")])
    assert _row(summarize([_loaded(data)]).markdown, "1") == ["`needs a\\", "b`", "suites/a"]  # split on \| only


def test_header_lines_name_run_mode_and_unavailable_services():
    data = _realistic().data
    data["compose"] = {"project": "devstack", "files": ["a.yml"]}
    markdown = summarize([_loaded(data, "full-1.json")]).markdown
    header = next(line for line in markdown.splitlines() if line.startswith("- **full-1.json**"))
    for part in ("run `r1`", "image set debian", "created 2025-01-01T00:00:00+00:00", "exit status 0",
                 "stack mode testcontainers", "compose `project=devstack`", "5 passed, 0 failed, 3 skipped"):
        assert part in header
    assert "  - mongodb unavailable: `no image mongo:7.0.16`" in markdown
    assert "**Result: PASS**" in markdown


# -------------------------------------------------------------------------------------- figures shown


def test_time_to_ready_stack_start_and_ratio():
    markdown = summarize([_realistic()]).markdown
    assert _row(markdown, "postgres") == ["5.20 s"]
    assert _row(markdown, "**total stack start**") == ["8.70 s"]
    assert _row(markdown, "parallel ratio (target ≤ 1.3)") == ["1.02"]


def test_drill_medians_and_lost_writes_shown():
    data = _realistic().data
    data["drills"] = _drills(promote_ms=2345.0, lost=2)
    markdown = summarize([_loaded(data)]).markdown
    assert "#### redis-failover (node_timeout_ms=1000, topology=3+3)" in markdown
    assert _row(markdown, "metric")[:2] == ["fault=kill", "fault=stop"]
    assert _row(markdown, "promote_ms") == ["2345 ms", "2345 ms"]
    assert _row(markdown, "recovery_ms") == ["1200 ms"]
    assert "Lost acknowledged writes, all rounds: fault=kill 2; fault=stop 2." in markdown
    assert "Keys missing after recovery, all rounds: redis-node-loss 0." in markdown


def test_drill_with_several_rounds_shows_median_and_max():
    rounds = [FailoverRound(round=i, fault="kill", victim="redis-1", promote_ms=v) for i, v in
              enumerate((1000.0, 1200.0, 3000.0))]
    data = _report([], drills=[report("redis-failover", rounds, {"node_timeout_ms": 1000, "rounds": 3})])
    markdown = summarize([_loaded(data)]).markdown
    assert _row(markdown, "rounds") == ["3"]
    assert _row(markdown, "promote_ms") == ["1200 ms (max 3000 ms)"]


def test_backup_figures_and_other_benchmarks():
    markdown = summarize([_realistic(restore_s=21.25)]).markdown
    assert _row(markdown, "restore_s (RTO)") == ["21.25 s"]
    assert _row(markdown, "verify_s") == ["0.12 s"]
    assert _row(markdown, "restore_per_service_s.redis") == ["2.00 s"]
    assert _row(markdown, "stored_bytes") == ["1,234,567"]
    assert "- parallel: 1.02" in markdown


def test_unknown_and_missing_keys_are_tolerated():
    odd = {"schema": 7, "results": "not a list", "drills": ["junk", {"drill": "x", "summary": {"m_ms": "?"}}],
           "benchmarks": {"backup": "n/a", "weird": [1, 2]}, "time_to_ready_s": {"vault": "fast"},
           "compose": "not a dict", "exitstatus": None}
    summary = summarize([_loaded(odd)], previous=_loaded({"schema": 1}))
    assert "No test results in the report(s)." in summary.markdown
    assert "- backup: n/a" in summary.markdown
    assert summary.nothing_passed == ["run.json (no test results)"]  # tolerated, but not a PASS
    assert summary.exit_code == 1


# ---------------------------------------------------------------------------- nothing passed is no PASS


def _verdict(markdown):
    return next(line for line in markdown.splitlines() if line.startswith("**Result:"))


def test_only_skips_is_not_a_pass():
    data = _report([_result("suites/mongodb/test_m.py::test_a", "skipped", MONGO_SKIP),
                    _result("suites/mongodb/test_m.py::test_b", "skipped", MONGO_SKIP)])
    summary = summarize([_loaded(data)])
    assert _verdict(summary.markdown) == ("**Result: FAIL** — no test passed in run.json (2 skipped): "
                                          "a run that passes nothing proves nothing.")
    assert summary.exit_code == 1


def test_no_results_at_all_is_not_a_pass():
    summary = summarize([_loaded(_report([]))])
    assert _verdict(summary.markdown) == ("**Result: FAIL** — no test passed in run.json (no test results): "
                                          "a run that passes nothing proves nothing.")
    assert summary.exit_code == 1


def test_a_report_without_passes_fails_the_merge_even_when_another_passed():
    passed = _report([_result("suites/vault/test_v.py::test_a", "passed")])
    skipped = _report([_result("suites/compose/test_c.py::test_b", "skipped", "attach mode only")])
    summary = summarize([_loaded(passed, "report.json"), _loaded(skipped, "report-compose.json")])
    assert _verdict(summary.markdown) == ("**Result: FAIL** — no test passed in report-compose.json (1 skipped): "
                                          "a run that passes nothing proves nothing.")
    assert summary.exit_code == 1


def test_only_failures_names_both_problems():
    summary = summarize([_loaded(_report([_result("suites/a/test_a.py::test_a", "failed", "x")]))])
    assert _verdict(summary.markdown) == ("**Result: FAIL** — no test passed in run.json (1 failed): a run that "
                                          "passes nothing proves nothing; 1 failed, 0 errors; pytest exit status "
                                          "not 0 in run.json.")


def test_one_pass_is_enough_for_a_pass():
    data = _report([_result("suites/vault/test_v.py::test_a", "passed"),
                    _result("suites/mongodb/test_m.py::test_b", "skipped", MONGO_SKIP)])
    summary = summarize([_loaded(data)])
    assert _verdict(summary.markdown) == "**Result: PASS** — 1 passed, 1 skipped, nothing failed."
    assert summary.exit_code == 0


def test_a_failed_drill_round_is_not_a_pass():
    """Every test passed, pytest exited 0, but a drill round in the report had problems (a drill report's
    ``failed_rounds``): the CLI exits 1 on such a round, and so must the summary (before: PASS)."""
    data = _realistic().data
    slow = FailoverRound(round=0, fault="kill", victim="redis-1", detect_ms=1500.0, promote_ms=6100.0,
                         cluster_ok_ms=6200.0, client_outage_ms=6300.0, rejoin_ms=900.0, writes_acked=400,
                         writes_replicated=390, lost_writes=0, lost_replicated=0,
                         problems=["promotion took 6100 ms, beyond drill_promote_max_ms (5000 ms)"])
    data["drills"].append(report("redis-failover", [slow], {"fault": "pause", "node_timeout_ms": 1000,
                                                            "topology": "3+3"}))
    summary = summarize([_loaded(data)])
    assert _verdict(summary.markdown) == ("**Result: FAIL** — 1 drill round(s) with problems: redis-failover "
                                          "fault=pause round 0.")
    assert summary.failed_drill_rounds == ["redis-failover fault=pause round 0"]
    assert summary.exit_code == 1


def test_a_drill_round_counts_as_failed_by_its_problems_or_the_reports_failed_rounds():
    rounds = [{"round": 0, "problems": []}, {"round": 1, "problems": ["x"]}, {"round": 2, "problems": []}]
    data = _report([_result("suites/vault/test_v.py::test_a", "passed")],
                   drills=[{"drill": "latency", "settings": {}, "rounds": rounds, "summary": {},
                            "failed_rounds": [2]}])
    assert summarize([_loaded(data)]).failed_drill_rounds == ["latency round 1", "latency round 2"]


def test_a_report_without_an_exit_status_is_not_a_pass():
    """A run killed before pytest ended (or a report cut short) has no exit status: never a PASS (before: read as
    0, so PASS)."""
    data = _report([_result("suites/vault/test_v.py::test_a", "passed")])
    del data["exitstatus"]
    summary = summarize([_loaded(data)])
    assert _verdict(summary.markdown) == ("**Result: FAIL** — no exit status in run.json: the run did not end "
                                          "(killed?) or its report is incomplete.")
    assert "exit status missing" in next(line for line in summary.markdown.splitlines() if line.startswith("- **run"))
    assert summary.no_exit_status == ["run.json"] and summary.exit_code == 1
    data["exitstatus"] = "0"  # not a number either
    assert summarize([_loaded(data)]).no_exit_status == ["run.json"]


def test_xfails_are_counted_and_listed_with_their_reasons():
    """A known failure is recorded with the skips (reason ``xfail: ...``); the summary says how many there are and
    why, apart from the skips (before: one more skip, its reason among theirs)."""
    data = _report([_result("suites/vault/test_v.py::test_a", "passed"),
                    _result("suites/mongodb/test_m.py::test_b", "skipped", MONGO_SKIP),
                    _result("suites/drills/test_service_drills.py::test_round[rabbitmq-broker-loss-docker-kill]",
                            "skipped", "xfail: the broker lost its queue")])
    summary = summarize([_loaded(data)])
    assert _verdict(summary.markdown) == ("**Result: PASS** — 1 passed, 2 skipped (1 of them xfail: a known "
                                          "failure, listed below), nothing failed.")
    assert "1 passed, 0 failed, 2 skipped (1 of them xfail), 0 errors" in summary.markdown
    assert ("### Known failures (xfail): 1\n\n- `suites/drills/test_service_drills.py::test_round"
            "[rabbitmq-broker-loss-docker-kill]` — `the broker lost its queue`") in summary.markdown
    assert "### Skips (1) by reason" in summary.markdown and _row(summary.markdown, "1")[0] == f"`{MONGO_SKIP}`"
    assert summary.xfails == 1


def test_counts_without_results_are_read_from_tests():
    data = {"schema": 1, "tests": {"passed": 0, "failed": 0, "skipped": 3, "error": 0}, "exitstatus": 0}
    summary = summarize([_loaded(data)])
    assert summary.nothing_passed == ["run.json (3 skipped)"] and summary.exit_code == 1


# ----------------------------------------------------------------------------------------- comparison


def test_regression_flagged_beyond_tolerance():
    summary = summarize([_timed({"vault": 3.0, "postgres": 3.0})], _timed({"vault": 3.0, "postgres": 2.0}), 0.25)
    assert [(c.label, c.previous, c.current) for c in summary.regressions] == [("time-to-ready postgres", 2.0, 3.0)]
    assert "- time-to-ready postgres: 2.00 s → 3.00 s (+50%)" in summary.markdown
    assert _row(summary.markdown, "time-to-ready postgres") == ["2.00 s", "3.00 s", "+50%", "**REGRESSION**"]
    assert _row(summary.markdown, "time-to-ready vault")[-1] == "ok"
    assert summary.exit_code == 1


@pytest.mark.parametrize(("previous", "current", "tolerance"), [
    (2.0, 2.4, 0.25),   # +20 %: within the tolerance
    (2.0, 2.5, 0.25),   # exactly the tolerance is not "more than" it
    (2.0, 3.0, 0.6),    # +50 % with a wider tolerance
    (0.02, 0.06, 0.25),  # +200 %, but only 0.04 s: below the 0.05 s floor
    (2.0, 1.0, 0.25),   # faster
])
def test_not_flagged_within_tolerance_or_below_the_floor(previous, current, tolerance):
    summary = summarize([_timed({"postgres": current})], _timed({"postgres": previous}), tolerance)
    assert summary.regressions == []
    assert len(summary.comparisons) == 1
    assert summary.exit_code == 0


def test_below_the_floor_is_named_in_the_table():
    summary = summarize([_timed({"postgres": 0.06})], _timed({"postgres": 0.02}))
    assert _row(summary.markdown, "time-to-ready postgres") == ["0.020 s", "0.060 s", "+200%",
                                                                 "worse, below the floor"]


def test_ms_floor_applies_to_drill_medians():
    assert FLOORS["ms"] == 50.0
    base = _realistic(promote_ms=100.0)
    small = summarize([_realistic(promote_ms=140.0)], base)  # +40 %, +40 ms: noise
    big = summarize([_realistic(promote_ms=160.0)], base)    # +60 %, +60 ms: a regression
    assert small.regressions == []
    assert {c.label for c in big.regressions} == {"redis-failover fault=kill promote_ms median",
                                                  "redis-failover fault=stop promote_ms median"}


def test_backup_rto_and_stack_start_compared():
    summary = summarize([_realistic(restore_s=30.0)], _realistic(restore_s=20.0))
    assert [c.label for c in summary.regressions] == ["backup restore_s (RTO)"]
    labels = {c.label for c in summary.comparisons}
    assert {"total stack start", "backup backup_s", "backup verify_s", "backup restore_per_service_s.postgres",
            "redis-node-loss recovery_ms median"} <= labels
    assert not any("stored_bytes" in label or "artifacts" in label for label in labels)  # sizes: not timings


def test_same_report_as_previous_has_no_regression():
    summary = summarize([_realistic()], _realistic())
    assert summary.regressions == [] and summary.newly_failing == []
    assert len(summary.comparisons) > 20
    assert all(c.verdict == "ok" for c in summary.comparisons)
    assert "No regressions." in summary.markdown
    assert summary.exit_code == 0


def test_count_floor_for_lost_writes():
    def with_lost(lost):
        data = _realistic().data
        data["drills"] = _drills(lost=lost)
        return _loaded(data)

    assert summarize([with_lost(1)], with_lost(0)).regressions == []  # one lost write: within the floor of 1
    flagged = summarize([with_lost(2)], with_lost(0)).regressions
    assert {c.label for c in flagged} == {"redis-failover fault=kill lost_writes median",
                                          "redis-failover fault=stop lost_writes median"}
    assert all(c.change is None for c in flagged)  # from 0: no percentage, the floor decides


def test_newly_failing_test_flagged():
    before = _loaded(_report([_result("suites/tls/test_a.py::test_x", "passed"),
                              _result("suites/tls/test_a.py::test_y", "failed", "old")]), "prev.json")
    now = _loaded(_report([_result("suites/tls/test_a.py::test_x", "failed", "boom"),
                           _result("suites/tls/test_a.py::test_y", "failed", "still")]))
    summary = summarize([now], before)
    assert summary.newly_failing == ["suites/tls/test_a.py::test_x"]
    assert "**1 test(s) passed in prev.json and fail now:**" in summary.markdown
    assert "1 test(s) newly failing" in summary.markdown


def test_passed_then_skipped_is_flagged_like_passed_then_failed():
    before = _loaded(_report([_result("suites/tls/test_a.py::test_x", "passed"),
                              _result("suites/tls/test_a.py::test_y", "passed"),
                              _result("suites/tls/test_a.py::test_z", "skipped", "old skip")]), "prev.json")
    now = _loaded(_report([_result("suites/tls/test_a.py::test_x", "skipped", "vault unavailable here"),
                           _result("suites/tls/test_a.py::test_y", "passed"),
                           _result("suites/tls/test_a.py::test_z", "skipped", "still")]))
    summary = summarize([now], before)
    assert summary.newly_skipped == ["suites/tls/test_a.py::test_x"]
    assert summary.newly_failing == []
    assert "**1 test(s) passed in prev.json and are skipped now:**" in summary.markdown
    assert "- `suites/tls/test_a.py::test_x`" in summary.markdown
    assert _verdict(summary.markdown) == "**Result: FAIL** — 1 test(s) newly skipped."
    assert summary.exit_code == 1


def test_skipped_before_and_now_is_not_newly_skipped():
    before = _loaded(_report([_result("suites/a/test_a.py::test_p", "passed"),
                              _result("suites/a/test_a.py::test_s", "skipped", "x")]), "prev.json")
    summary = summarize([before], before)
    assert summary.newly_skipped == [] and summary.exit_code == 0


def test_several_current_reports_are_compared_one_by_one():
    a, b = _timed({"postgres": 2.0}), _timed({"postgres": 4.0})
    summary = summarize([LoadedReport("a.json", a.data), LoadedReport("b.json", b.data)], _timed({"postgres": 2.0}))
    assert [c.label for c in summary.regressions] == ["b.json: time-to-ready postgres"]


# ------------------------------------------------------------------------------------------- loading


def test_load_reports_errors_and_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "report.json").write_text(json.dumps(_report([])))
    loaded = load_reports([tmp_path / "a" / "report.json", tmp_path / "b" / "report.json"])
    assert [r.name for r in loaded] == [str(tmp_path / "a" / "report.json"), str(tmp_path / "b" / "report.json")]
    with pytest.raises(ReportInputError, match="no such file"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ReportInputError, match="not valid JSON"):
        load_report(tmp_path / "bad.json")
    (tmp_path / "drill.json").write_text(json.dumps(_drills()[0]))
    with pytest.raises(ReportInputError, match="not a run report"):
        load_report(tmp_path / "drill.json")


# ---------------------------------------------------------------------------------------- CLI and exit


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory (no harness.toml) and no HARNESS_* variables from the caller."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("HARNESS_")]:
        monkeypatch.delenv(key)
    return tmp_path


def _write(path, loaded):
    path.write_text(json.dumps(loaded.data))
    return str(path)


def test_cli_clean_report_exits_0_and_writes_output(workdir, capsys):
    current = _write(workdir / "full-1.json", _realistic())
    assert main(["report", "summarize", current, "--previous", current, "--output", "out/summary.md"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("## Run report summary")
    assert "### Compared with full-1.json" in printed
    assert (workdir / "out" / "summary.md").read_text() == printed


def test_cli_failed_test_exits_1(workdir, capsys):
    path = _write(workdir / "r.json", _loaded(_report([_result("suites/a/test_a.py::test_a", "failed", "x")])))
    assert main(["report", "summarize", path]) == 1
    assert "**Result: FAIL**" in capsys.readouterr().out


def test_cli_only_skips_exits_1(workdir, capsys):
    path = _write(workdir / "r.json", _loaded(_report([_result("suites/a/test_a.py::test_a", "skipped", "x")])))
    assert main(["report", "summarize", path]) == 1
    assert ("**Result: FAIL** — no test passed in r.json (1 skipped): a run that passes nothing proves nothing."
            in capsys.readouterr().out.splitlines())


def test_cli_passed_then_skipped_exits_1(workdir, capsys):
    previous = _write(workdir / "prev.json", _loaded(_report([_result("suites/a/test_a.py::test_a", "passed"),
                                                              _result("suites/a/test_a.py::test_b", "passed")])))
    current = _write(workdir / "cur.json", _loaded(_report([_result("suites/a/test_a.py::test_a", "skipped", "x"),
                                                            _result("suites/a/test_a.py::test_b", "passed")])))
    assert main(["report", "summarize", current, "--previous", previous]) == 1
    assert "**Result: FAIL** — 1 test(s) newly skipped." in capsys.readouterr().out.splitlines()


def test_cli_regression_exits_1_and_tolerance_option_wins(workdir, capsys):
    previous = _write(workdir / "prev.json", _timed({"postgres": 2.0}))
    current = _write(workdir / "cur.json", _timed({"postgres": 3.0}))
    assert main(["report", "summarize", current, "--previous", previous]) == 1
    assert "**REGRESSION**" in capsys.readouterr().out
    assert main(["report", "summarize", current, "--previous", previous, "--tolerance", "0.6"]) == 0


def test_cli_tolerance_from_the_setting(workdir, monkeypatch, capsys):
    previous = _write(workdir / "prev.json", _timed({"postgres": 2.0}))
    current = _write(workdir / "cur.json", _timed({"postgres": 3.0}))
    monkeypatch.setenv("HARNESS_REPORT_TOLERANCE", "0.6")
    assert main(["report", "summarize", current, "--previous", previous]) == 0
    assert "worse by more than 60%" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["missing.json", "broken.json"])
def test_cli_unreadable_input_is_one_error_line_and_exit_2(workdir, capsys, bad):
    (workdir / "broken.json").write_text("[1, 2")
    good = _write(workdir / "good.json", _timed({"vault": 1.0}))
    assert main(["report", "summarize", good, bad]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and bad in lines[0]


def test_cli_missing_previous_exits_2(workdir, capsys):
    good = _write(workdir / "good.json", _timed({"vault": 1.0}))
    assert main(["report", "summarize", good, "--previous", "nope.json"]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err


def test_cli_negative_tolerance_is_a_usage_error(workdir, capsys):
    good = _write(workdir / "good.json", _timed({"vault": 1.0}))
    with pytest.raises(SystemExit) as exc:
        main(["report", "summarize", good, "--tolerance", "-0.1"])
    assert exc.value.code == 2
    assert "must be a fraction >= 0" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- setting


def test_report_tolerance_setting(tmp_path):
    assert load_settings({}, cwd=tmp_path).report_tolerance == 0.25
    (tmp_path / "harness.toml").write_text("[harness]\nreport_tolerance = 0.4\n")
    assert load_settings({}, cwd=tmp_path).report_tolerance == 0.4
    assert load_settings({"HARNESS_REPORT_TOLERANCE": "0.1"}, cwd=tmp_path).report_tolerance == 0.1
    with pytest.raises(ConfigError, match="report_tolerance must be a fraction >= 0"):
        load_settings({"HARNESS_REPORT_TOLERANCE": "-1"}, cwd=tmp_path)
