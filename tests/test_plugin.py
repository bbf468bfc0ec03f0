"""The pytest plugin, exercised with pytester against a fake engine (no Docker needed).

These prove the selection contract: a marker pulls in its service plus dependencies and nothing else,
``--services`` filters tests, a test needing no service starts nothing, and skips carry their reasons.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import sys
import typing
from pathlib import Path

import pytest

import harness.plugin
import harness.reports.html
import harness.stacks.reuse
from harness.cli import main as harness_main
from harness.reports.redact import forget, register_fields
from stack.vault import VaultInit

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


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_engine(monkeypatch):
    monkeypatch.setattr(harness.plugin, "Stack", FakeStack)
    FakeStack.started = []
    return FakeStack


@pytest.fixture(autouse=True)
def _no_charts(monkeypatch, request):
    """The HTML page beside the run report is tests/test_html_report.py's subject (and the leak checks' below,
    which draw it): the other runs here write the JSON report only, not its page (charts drawn with matplotlib,
    about a third of a second of CPU each run). harness.reports.html is imported by this module, so runs in this
    process find it (and numpy) loaded and the leak checks' pages are drawn here too."""
    if "real_charts" not in request.fixturenames:
        monkeypatch.setattr(harness.reports.html, "write_beside",
                            lambda path, tolerance=0.25: path.with_suffix(".html"))


@pytest.fixture
def real_charts():
    """The run draws its HTML page (see _no_charts)."""


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


def test_collect_only_leaves_the_last_run_report_alone(pytester, fake_engine):
    """``--collect-only`` runs nothing: it must not replace the last run's JSON and HTML reports with empty ones."""
    report = pytester.path / "report.json"
    report.write_text('{"previous": "run"}')
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={report}", "--collect-only")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["harness: services needed by the selected tests: vault, *"])
    assert report.read_text() == '{"previous": "run"}'
    assert not (pytester.path / "report.html").exists()
    assert fake_engine.started == []


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


# For a pytest process of its own: the HTML page beside the run report is not drawn (test_html_report's subject;
# importing matplotlib and drawing would cost the run about a second and a half of CPU).
NO_CHARTS = """
import sys, types
_html = types.ModuleType("harness.reports.html")
_html.write_beside = lambda path, tolerance=0.25: path.with_suffix(".html")
sys.modules["harness.reports.html"] = _html
"""


def test_no_engine_stops_the_run_with_one_line(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.postgres\ndef test_x(): pass\n")
    pytester.makeconftest(NO_CHARTS)
    # A pytest process of its own: that a real run with the plugin ends with exit status 3 is the point.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 3
    result.stdout.fnmatch_lines([f"*harness: no Docker engine answers at unix://{tmp_path}/no.sock*"])
    assert "passed" not in result.stdout.str().split("\n")[-2], "an engine-less run must not look green"


# ------------------------------------------------------------------------------------------- redaction

LEAKY_SUITE = '''
import base64
import logging
import sys

import pytest


@pytest.fixture
def broken_fixture(harness_stack):
    raise RuntimeError(f"could not log in with root token {harness_stack.vault_init.root_token}")


@pytest.mark.postgres
def test_leaks_in_message_and_output(harness_stack, postgres_service):
    init = harness_stack.vault_init
    unseal_b64 = base64.b64encode(bytes.fromhex(init.keys[0])).decode()
    print(f"stdout: password={postgres_service.password} token={init.root_token} key={init.keys[0]}")
    sys.stderr.write(f"stderr: url=postgresql://app:{postgres_service.password}@127.0.0.1/app b64={unseal_b64}\\n")
    logging.getLogger("leaky").warning("log record: %s", init.root_token)
    password = postgres_service.password
    assert password == init.root_token, f"password {password!r} is not the token {init.root_token} ({init.keys})"


def test_error_in_setup(broken_fixture):
    pass


def test_skip_reason(harness_stack):
    pytest.skip(f"skipped: the admin token {harness_stack.vault_init.root_token} expired")
'''


@dataclasses.dataclass(frozen=True)
class _PgEndpoint:
    host: str
    port: int
    user: str
    password: str


class SecretStack(FakeStack):
    """A fake engine that registers its Vault init the way the engine does (``register_fields`` on the
    ``VaultInit``) and hands out an endpoint whose password it registers nowhere itself: the plugin must learn
    it from the endpoint (a password rotated during the run reaches the registry only that way, or through
    ``rotate_password``). Its service logs hold the password too."""

    root_token = "hvs." + secrets.token_urlsafe(24)
    unseal_key = secrets.token_hex(32)
    password = secrets.token_urlsafe(18)

    def __init__(self, settings, keep=False, log=None):
        super().__init__(settings, keep, log)
        self.state_dir = settings.state_dir / "runs" / "fake"
        self.vault_bootstrap = None
        self.vault_init = VaultInit(keys=[self.unseal_key, secrets.token_hex(32)], root_token=self.root_token,
                                    shares=2, threshold=1)

    def start(self, services):
        super().start(services)
        register_fields(self.vault_init)

    def endpoint(self, name):
        return _PgEndpoint("127.0.0.1", 5432, "app", self.password) if name == "postgres" else super().endpoint(name)

    def logs(self, name, tail=200):
        return f"{name} log: FATAL password authentication failed, tried {self.password!r}"


@pytest.fixture
def secret_engine(monkeypatch, tmp_path):
    monkeypatch.setattr(harness.plugin, "Stack", SecretStack)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    forget()
    yield SecretStack
    forget()


def _forms(stack: type[SecretStack]) -> dict[str, bytes]:
    """Every form of the secrets that must not appear: whole, base64 of the unseal key, and a 12-character
    head of each (a secret cut by a length limit before redaction would leave its head)."""
    key_b64 = base64.b64encode(bytes.fromhex(stack.unseal_key)).decode()
    whole = {"root token": stack.root_token, "unseal key": stack.unseal_key, "unseal key (base64)": key_b64,
             "password": stack.password}
    heads = {f"head of the {name}": value[:12] for name, value in whole.items()}
    return {name: value.encode() for name, value in {**whole, **heads}.items()}


def _leak_run(pytester: pytest.Pytester, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
              ) -> tuple[pytest.RunResult, dict[str, bytes]]:
    """The leaky suite, run as a user would (with ``-n``, xdist's workers are processes of their own; the
    controller is pytest.main in this process, as without), and every artifact of it: JUnit XML, JSON report, the
    HTML report, the Markdown summary made by ``report summarize`` knowing no secret (harness.cli.main in this
    process after ``forget()``: the registry of secrets starts empty, as in the separate process CI runs it in)
    with that command's output, and the terminal output."""
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    junit, report, summary = tmp_path / "junit.xml", tmp_path / "report.json", tmp_path / "summary.md"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--junitxml={junit}", "-o", "junit_logging=all",
                                          f"--harness-report={report}", "-l", "-rA", *args)
    result.assert_outcomes(failed=1, errors=1, skipped=1)
    forget()
    capsys.readouterr()
    assert harness_main(["report", "summarize", str(report), "--output", str(summary)]) == 1  # failed tests: FAIL
    printed = capsys.readouterr()
    artifacts = {"junit xml": junit.read_bytes(), "json report": report.read_bytes(), "summary": summary.read_bytes(),
                 "summary stdout": printed.out.encode(), "summary stderr": printed.err.encode(),
                 "terminal": "\n".join(result.outlines + result.errlines).encode(),
                 "html report": report.with_suffix(".html").read_bytes()}
    return result, artifacts


def _leaks(artifacts: dict[str, bytes]) -> list[str]:
    """Which form of which secret is in which artifact (names only: never a secret itself)."""
    return sorted(f"{form} in {where}" for where, data in artifacts.items()
                  for form, value in _forms(SecretStack).items() if value in data)


def _assert_masked_but_useful(result: pytest.RunResult, tmp_path: Path) -> None:
    """What was redacted is still there around the mask: the reports stay useful. (Called past the leak check, so
    these assertions cannot print a secret when they fail.)"""
    data = json.loads((tmp_path / "report.json").read_text())
    reasons = {r["nodeid"].split("::")[-1]: r["reason"] for r in data["results"]}
    assert "password '***' is not the token *** (['***', '***'])" in reasons["test_leaks_in_message_and_output"]
    assert "could not log in with root token ***" in reasons["test_error_in_setup"]
    assert reasons["test_skip_reason"] == "skipped: the admin token *** expired"
    xml = (tmp_path / "junit.xml").read_text()
    for text in ("stdout: password=*** token=*** key=***", "url=postgresql://app:***@127.0.0.1/app b64=***",
                 "log record: ***", "AssertionError: password '***' is not the token ***"):
        assert text in xml, text
    result.stdout.fnmatch_lines(["*postgres logs (last 80 lines)*",
                                 "postgres log: FATAL password authentication failed, tried '***'"])
    assert "**Result: FAIL**" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("tb", ["long", "native"])
def test_no_secret_reaches_any_artifact(pytester, secret_engine, tmp_path, tb, capsys, real_charts):
    """A run that fails on purpose with its secrets in the assertion message, captured stdout/stderr/log, a
    setup error, a skip reason and the attached service logs: no artifact holds any of them, each holds ``***``."""
    result, artifacts = _leak_run(pytester, tmp_path, capsys, f"--tb={tb}")
    assert _leaks(artifacts) == []
    assert [where for where, data in artifacts.items() if b"***" not in data] == ["summary stderr"]
    _assert_masked_but_useful(result, tmp_path)


# The same secrets in xdist workers: a conftest gives every worker the engine of SecretStack (as the engine does, it
# registers the Vault init when it starts or attaches to the shared stack; the password only its endpoint holds).
XDIST_SECRET_ENGINE = """
import dataclasses, os
import harness.plugin, harness.stacks.reuse
from harness.reports.redact import register_fields
from stack.vault import VaultInit


@dataclasses.dataclass(frozen=True)
class PgEndpoint:
    host: str
    port: int
    user: str
    password: str


class Report:
    def __init__(self, run_id):
        self.run_id = run_id

    def to_json(self):
        return {"run_id": self.run_id, "image_set": "debian", "started": ["vault", "postgres"],
                "total_start_s": 1.0, "services": {}}


class SecretStack:
    def __init__(self, run_id, settings):
        self.run_id, self.report, self.errors = run_id, Report(run_id), {}
        self.state_dir = settings.state_dir / "runs" / run_id
        self.vault_bootstrap = None
        self.vault_init = VaultInit(keys=os.environ["LEAK_UNSEAL_KEYS"].split(","),
                                    root_token=os.environ["LEAK_ROOT_TOKEN"], shares=2, threshold=1)
        register_fields(self.vault_init)

    def unavailable_reason(self, name):
        return None

    def endpoint(self, name):
        password = os.environ["LEAK_PASSWORD"]
        return PgEndpoint("127.0.0.1", 5432, "app", password) if name == "postgres" else f"endpoint-of-{name}"

    def logs(self, name, tail=200):
        return f"{name} log: FATAL password authentication failed, tried {os.environ['LEAK_PASSWORD']!r}"


class SecretEngine:
    def images(self, settings, services):
        return {n: {"ref": f"img/{n}", "id": "sha256:1", "source": "debian"} for n in services}

    def start(self, settings, services, labels, log):
        return SecretStack("fake-1", settings)

    def adopt(self, settings, record, log):
        return SecretStack(record.run_id, settings)

    def remove(self, settings, run_id):
        pass


harness.stacks.reuse.ENGINE = SecretEngine()
if os.environ.get("LEAK_BREAK_WORKER_REDACTION") and os.environ.get("PYTEST_XDIST_WORKER"):
    harness.plugin.redact_report = lambda report: None  # the broken thing: workers send their reports as they are
"""


@pytest.fixture
def xdist_secret_engine(pytester, monkeypatch, tmp_path):
    pytester.makeconftest(XDIST_SECRET_ENGINE)
    # The conftest is imported by the controller too, which runs in this process: what it sets here goes back.
    monkeypatch.setattr(harness.stacks.reuse, "ENGINE", harness.stacks.reuse.ENGINE)
    monkeypatch.setattr(harness.plugin, "redact_report", harness.plugin.redact_report)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)  # this process may be a worker of the outer run: not the controller
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LEAK_ROOT_TOKEN", SecretStack.root_token)
    monkeypatch.setenv("LEAK_UNSEAL_KEYS", f"{SecretStack.unseal_key},{secrets.token_hex(32)}")
    monkeypatch.setenv("LEAK_PASSWORD", SecretStack.password)
    monkeypatch.delenv("LEAK_BREAK_WORKER_REDACTION", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    forget()


def test_no_secret_reaches_any_artifact_under_xdist(pytester, xdist_secret_engine, tmp_path, capsys,
                                                    real_charts):
    """The leak check with the tests in two xdist workers: their reports reach the controller, which writes the
    terminal output, the JUnit XML and the one run report, and knows none of the secrets itself."""
    result, artifacts = _leak_run(pytester, tmp_path, capsys, "-n", "2", "--tb=long")
    assert _leaks(artifacts) == []
    assert [where for where, data in artifacts.items() if b"***" not in data] == ["summary stderr"]
    _assert_masked_but_useful(result, tmp_path)
    assert "[gw" in result.stdout.str(), "the tests did not run in xdist workers"


def test_the_xdist_leak_check_sees_workers_that_do_not_redact(pytester, xdist_secret_engine, tmp_path, monkeypatch,
                                                             capsys, real_charts):
    """The check above can fail: with redaction off in the workers only, every secret reaches every artifact the
    controller writes (the base64 unseal key is only in captured stderr, so only where captured output goes)."""
    monkeypatch.setenv("LEAK_BREAK_WORKER_REDACTION", "1")
    try:
        _, artifacts = _leak_run(pytester, tmp_path, capsys, "-n", "2", "--tb=long")
    finally:
        capsys.readouterr()  # the unredacted run's output: not for this test's own report, even with fake secrets
    everywhere = ("html report", "json report", "junit xml", "summary", "summary stdout", "terminal")
    expected = [f"{form} in {where}" for secret in ("password", "root token", "unseal key")
                for form in (secret, f"head of the {secret}") for where in everywhere]
    expected += [f"{form} in {where}" for form in ("unseal key (base64)", "head of the unseal key (base64)")
                 for where in ("junit xml", "terminal")]
    assert _leaks(artifacts) == sorted(expected)


def test_redaction_leaves_a_run_without_secrets_alone(pytester, fake_engine):
    forget()
    result, report = _run(pytester, "-m", "postgres")
    result.assert_outcomes(passed=1, deselected=4)
    assert "***" not in json.dumps(report)


# ------------------------------------------------------------------------ markers and fixtures from the registry

OWN_STACK_SUITE = """
import pytest

@pytest.mark.own_stack
@pytest.mark.postgres
@pytest.mark.mysql
def test_round_trip_of_its_own(harness_stack):
    pass

@pytest.mark.redis
def test_redis(redis_service):
    assert redis_service == "endpoint-of-redis"
"""


def test_own_stack_tests_add_nothing_to_the_session_stack(pytester, fake_engine):
    """A test that starts its own stack (own_stack) is selected by its markers but its services are not started
    in the session's stack (before: vault, mysql, postgres, redis were started for this selection)."""
    pytester.makepyfile(test_own=OWN_STACK_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers", "-m", "postgres or redis",
                                          f"--harness-report={pytester.path / 'r.json'}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["harness: services needed by the selected tests: vault, redis"])
    assert fake_engine.started == ["vault", "redis"]


def test_services_option_judges_own_stack_tests_by_their_markers(pytester, fake_engine):
    pytester.makepyfile(test_own=OWN_STACK_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--services", "postgres,mysql",
                                          f"--harness-report={pytester.path / 'r.json'}")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["harness: services needed by the selected tests: none"])
    assert fake_engine.started == []


def test_every_registered_service_has_its_marker_and_fixture(pytester, fake_engine):
    from stack import registry

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--markers")
    for spec in registry.specs():
        result.stdout.fnmatch_lines([f"@pytest.mark.{spec.marker}: {spec.description}"])
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--fixtures")
    for spec in registry.specs():
        result.stdout.fnmatch_lines([f"{spec.fixture}*"])


EXTRA_MODULE = """
from fake_service import fake_spec

SPEC = fake_spec("kafkaish", description="needs the self-test's extra service (and Vault)", tls=False)
"""

EXTRA_SUITE = """
import pytest

@pytest.mark.kafkaish
def test_marked(kafkaish_service):
    assert kafkaish_service == "endpoint-of-kafkaish"

def test_fixture_only(kafkaish_service):
    pass

@pytest.mark.postgres
def test_other():
    pass

@pytest.mark.vault
def test_vault_alone():
    pass
"""


@pytest.fixture
def extra_service(pytester):
    """A service registered through stack.registry.register alone: its module is written to a directory put on
    sys.path (no backup, no TLS); removed from the registry afterwards."""
    from stack import registry

    pytester.makepyfile(kafkaish_stack=EXTRA_MODULE)
    pytester.syspathinsert()
    spec = registry.register("kafkaish_stack")
    try:
        yield spec
    finally:
        registry.unregister("kafkaish")
        sys.modules.pop("kafkaish_stack", None)


def test_extra_service_gets_marker_fixture_and_selection(pytester, fake_engine, extra_service):
    from stack import registry

    assert extra_service.name in registry.names()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.kafkaish: needs the self-test's extra service (and Vault)"])
    pytester.makepyfile(test_extra=EXTRA_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers", "-m", "kafkaish",
                                          f"--harness-report={pytester.path / 'r.json'}")
    result.assert_outcomes(passed=1, deselected=3)
    result.stdout.fnmatch_lines(["harness: services needed by the selected tests: vault, kafkaish"])
    assert fake_engine.started == ["vault", "kafkaish"]
    # The fixture alone also counts, and --services knows the name.
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers", "--services", "kafkaish",
                                          f"--harness-report={pytester.path / 'r.json'}")
    result.assert_outcomes(passed=3, deselected=1)
    assert fake_engine.started == ["vault", "kafkaish"]


def test_without_registration_the_extra_marker_is_refused(pytester, fake_engine):
    """The control: the same suite without registering the service fails --strict-markers on its marker."""
    pytester.makepyfile(test_extra=EXTRA_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers", "-m", "kafkaish")
    result.stderr.fnmatch_lines(["ERROR: Unknown marker(s) in '-m' expression: kafkaish.*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_own_stack_fixtures_do_not_wait_for_the_session_stack(pytester, fake_engine):
    """The stacks of their own (strict TLS, drill clusters, service drills) do not depend on the session's stack:
    under ``-n N`` the worker that runs them starts at once instead of queueing behind the worker that starts
    the shared session stack (before, each of them requested ``harness_stack``)."""
    pytester.makepyfile(test_own="""
import pytest
from harness.plugin import OWN_STACK_FIXTURES

@pytest.mark.own_stack
@pytest.mark.parametrize("fixture", OWN_STACK_FIXTURES)
def test_closure(fixture, request):
    request.getfixturevalue(fixture)
    assert "harness_stack" not in request.fixturenames, fixture
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={pytester.path / 'r.json'}")
    result.assert_outcomes(passed=4)


@pytest.mark.parametrize("fixture", ["drill_stack", "strict_stack", "failover_stack"])
def test_an_own_stack_of_vault_drills_alone_starts_vault(pytester, fake_engine, fixture):
    """``pytest suites/ -m vault`` selects the Vault seal drills only: their own stack wants no service but Vault,
    and it must still start Vault (before, it started nothing and the drills failed with 'vault was not started
    in this run'; the fake recorded [])."""
    pytester.makepyfile(test_vault_drill=f"""
import pytest

@pytest.mark.vault
@pytest.mark.own_stack
def test_seal({fixture}):
    pass
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={pytester.path / 'r.json'}",
                                          "-m", "vault")
    result.assert_outcomes(passed=1)
    assert fake_engine.started == ["vault"]


def test_a_known_failure_is_a_skip_with_its_reason_in_the_report(pytester, fake_engine):
    """``pytest.xfail`` (the broker-loss drill's lost queue) is never counted as passed: the run report counts it
    with the skips and keeps its reason (before, the reason was empty)."""
    pytester.makepyfile(test_known="""
import pytest

def test_known():
    pytest.xfail("the broker lost its queue")
""")
    report = pytester.path / "r.json"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={report}")
    result.assert_outcomes(xfailed=1)
    data = json.loads(report.read_text())
    assert data["tests"] == {"passed": 0, "failed": 0, "skipped": 1, "error": 0}
    assert data["skips"] == [{"nodeid": "test_known.py::test_known", "reason": "xfail: the broker lost its queue"}]


def test_a_teardown_error_after_a_skip_or_an_xfail_counts_as_an_error(pytester, fake_engine):
    """A test that skips (or xfails) and whose fixture then fails its teardown left something broken behind: pytest
    counts an error, and so must the run report (before, the skip or xfail hid the teardown's failure)."""
    pytester.makepyfile(test_teardown="""
import pytest

@pytest.fixture
def leaky():
    yield
    raise RuntimeError("cleanup broke")

def test_skips(leaky):
    pytest.skip("not here")

def test_known(leaky):
    pytest.xfail("the broker lost its queue")
""")
    report = pytester.path / "r.json"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={report}")
    result.assert_outcomes(skipped=1, xfailed=1, errors=2)
    data = json.loads(report.read_text())
    assert data["tests"] == {"passed": 0, "failed": 0, "skipped": 0, "error": 2}
    assert data["skips"] == []
    reasons = {r["nodeid"]: (r["outcome"], r["reason"].rsplit(": ", 2)[-2:]) for r in data["results"]}
    assert reasons == {"test_teardown.py::test_skips": ("error", ["RuntimeError", "cleanup broke"]),
                       "test_teardown.py::test_known": ("error", ["RuntimeError", "cleanup broke"])}
