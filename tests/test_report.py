"""Run-report assembly: phases fold into one outcome per test; skips keep their reasons."""

from __future__ import annotations

import json

from harness.reports.report import Outcomes, build_report, write_report


def test_outcomes_fold_phases():
    o = Outcomes()
    o.add("t::pass", "setup", "passed", 0.1)
    o.add("t::pass", "call", "passed", 0.2)
    o.add("t::pass", "teardown", "passed", 0.0)
    o.add("t::fail", "setup", "passed", 0.0)
    o.add("t::fail", "call", "failed", 0.1, "AssertionError")
    o.add("t::err", "setup", "failed", 0.0, "boom")
    o.add("t::skip", "setup", "skipped", 0.0, "mongodb unavailable here: image mongo:7.0.16 ...")
    o.add("t::teardown_err", "setup", "passed", 0.0)
    o.add("t::teardown_err", "call", "passed", 0.0)
    o.add("t::teardown_err", "teardown", "failed", 0.0, "cleanup failed")
    assert o.counts() == {"passed": 1, "failed": 1, "skipped": 1, "error": 2}
    assert o.skips() == [{"nodeid": "t::skip", "reason": "mongodb unavailable here: image mongo:7.0.16 ..."}]
    assert o.results["t::pass"].duration_s == 0.3


def test_build_and_write_report(tmp_path):
    o = Outcomes()
    o.add("t::a", "call", "passed", 1.0)
    stack = {"run_id": "r1", "image_set": "auto", "started": ["vault", "postgres"], "total_start_s": 5.0,
             "parallel_ratio": 1.1,
             "services": {
                 "vault": {"image": "v", "image_id": "sha256:1", "image_source": "debian", "image_reason": "x",
                           "status": "ready", "time_to_ready_s": 1.5},
                 "postgres": {"image": "p", "image_id": "sha256:2", "image_source": "debian", "image_reason": "x",
                              "status": "ready", "time_to_ready_s": 3.0},
                 "mongodb": {"image": "mongo", "image_id": None, "image_source": "official", "image_reason": "none",
                             "status": "unavailable", "time_to_ready_s": None, "error": "image mongo absent"},
             }}
    data = build_report(stack=stack, outcomes=o, needed=["vault", "postgres", "mongodb"], exitstatus=0)
    assert data["time_to_ready_s"] == {"vault": 1.5, "postgres": 3.0}
    assert data["services_unavailable"] == {"mongodb": "image mongo absent"}
    assert data["tests"]["passed"] == 1
    path = tmp_path / "deep" / "report.json"
    write_report(path, data)
    assert json.loads(path.read_text())["images"]["postgres"]["id"] == "sha256:2"


def test_report_without_stack():
    data = build_report(stack=None, outcomes=Outcomes(), needed=[], exitstatus=5)
    assert data["services_started"] == [] and data["image_set"] is None
