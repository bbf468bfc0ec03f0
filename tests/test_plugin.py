"""The pytest plugin, exercised with pytester against a fake engine (no Docker needed).

These prove the selection contract: a marker pulls in its service plus dependencies and nothing else,
``--services`` filters tests, a test needing no service starts nothing, and skips carry their reasons.
"""

from __future__ import annotations

import json
import typing

import pytest

import harness.plugin

SUITE = """
import pytest

@pytest.mark.postgres
def test_pg(postgres_service):
    assert postgres_service == "endpoint-of-postgres"

@pytest.mark.redis
def test_redis():
    pass

def test_uses_fixture_only(rabbitmq_service):
    pass

@pytest.mark.mongodb
def test_mongo():
    pass

def test_pure():
    pass
"""


class FakeReport:
    def __init__(self, log):
        self.services = {}
        self.log = log

    def to_json(self):
        return {"run_id": "fake", "image_set": "debian", "started": list(self.log), "total_start_s": 1.0,
                "parallel_ratio": 1.0,
                "services": {n: {"image": f"img/{n}", "image_id": "sha256:x", "image_source": "debian",
                                 "image_reason": "test", "status": "ready", "time_to_ready_s": 0.5}
                             for n in self.log}}


class FakeStack:
    started: typing.ClassVar[list[str]] = []

    def __init__(self, settings, keep=False, log=None):
        self.settings = settings
        self.run_id = "fake"
        FakeStack.started = []
        self.report = FakeReport(FakeStack.started)

    def resolve(self, services):
        return {}

    def start(self, services):
        FakeStack.started.extend(s for s in services if s != "mongodb")

    def unavailable_reason(self, name):
        return "image mongo:7.0.16 is not present locally and no registry answers" if name == "mongodb" else None

    def endpoint(self, name):
        return f"endpoint-of-{name}"

    def logs(self, name, tail=200):
        return f"log lines of {name}"

    def close(self):
        pass


@pytest.fixture
def fake_engine(monkeypatch):
    monkeypatch.setattr(harness.plugin, "Stack", FakeStack)
    FakeStack.started = []
    return FakeStack


def _run(pytester, *args):
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={report}", *args)
    return result, json.loads(report.read_text()) if report.exists() else None


def test_marker_selects_only_that_service_and_vault(pytester, fake_engine):
    result, report = _run(pytester, "-m", "postgres")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.fnmatch_lines(["harness: services needed by the selected tests: vault, postgres"])
    assert fake_engine.started == ["vault", "postgres"]
    assert report["services_needed"] == ["vault", "postgres"]
    assert report["services_started"] == ["vault", "postgres"]


def test_services_option_filters_tests(pytester, fake_engine):
    result, _ = _run(pytester, "--services", "redis")
    result.assert_outcomes(passed=1, deselected=4)
    assert fake_engine.started == ["vault", "redis"]


def test_fixture_without_marker_counts(pytester, fake_engine):
    result, _ = _run(pytester, "-k", "uses_fixture_only")
    result.assert_outcomes(passed=1, deselected=4)
    assert fake_engine.started == ["vault", "rabbitmq"]


def test_no_service_no_stack(pytester, fake_engine):
    result, report = _run(pytester, "-k", "pure")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.fnmatch_lines(["harness: services needed by the selected tests: none"])
    assert fake_engine.started == []
    assert report["services_started"] == []


def test_unavailable_service_skips_with_reason_and_counts_as_skip(pytester, fake_engine):
    result, report = _run(pytester, "-m", "mongodb")
    result.assert_outcomes(skipped=1, deselected=4)
    assert report["tests"] == {"passed": 0, "failed": 0, "skipped": 1, "error": 0}
    assert "mongo:7.0.16 is not present locally" in report["skips"][0]["reason"]


def test_failing_test_gets_service_logs(pytester, fake_engine):
    pytester.makepyfile(test_fail="""
import pytest

@pytest.mark.postgres
def test_boom():
    assert False
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={pytester.path / 'r.json'}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*postgres logs (last 80 lines)*", "log lines of postgres"])
    assert "vault logs" not in result.stdout.str(), "only the services the test used are attached"


def test_bad_services_option_lists_valid_values(pytester, fake_engine):
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_inprocess("--services", "postgres,oracle")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown service 'oracle'; valid services: vault, postgres, mysql*"])


def test_unknown_marker_is_an_error_with_strict_markers(pytester, fake_engine):
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.postgress\ndef test_x(): pass")
    result = pytester.runpytest_inprocess("--strict-markers")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*'postgress' not found in `markers` configuration option*"])


def test_no_engine_stops_the_run_with_one_line(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.postgres\ndef test_x(): pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 3
    result.stdout.fnmatch_lines([f"*harness: no Docker engine answers at unix://{tmp_path}/no.sock*"])
    assert "passed" not in result.stdout.str().split("\n")[-2], "an engine-less run must not look green"
