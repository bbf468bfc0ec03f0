"""The shared session stack (harness/stacks/reuse.py): the configuration hash, the kept-stack record, and the plugin's
use of it with pytest-xdist and ``--reuse``, proven with pytester against a fake engine (no Docker)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.settings import Settings
from harness.stacks import reuse
from harness.stacks.reuse import NOT_SHAPING, config_digest, config_inputs, describe_mismatch
from stack import registry

IMAGES = {"vault": {"ref": "devstack-harness/openbao:2.7.2", "id": "sha256:" + "a" * 64, "source": "debian"},
          "postgres": {"ref": "devstack-harness/postgres:15", "id": "sha256:" + "b" * 64, "source": "debian"}}


def _digest(settings: Settings | None = None, services=("vault", "postgres"), images=None, version="0.1.0+x"):
    return config_digest(config_inputs(settings or Settings(), list(services), images or IMAGES, version))


def _changed(name: str, value):
    """A valid value different from the default of setting ``name``."""
    if isinstance(value, bool):
        return not value
    if name == "images":
        return "debian"
    if name == "image_overrides":
        return {"postgres": "postgres:16"}
    if name == "tls_strict":
        return ("postgres",)
    if name == "release":
        return "trixie"
    if name == "flavors":
        return ("redis=redis",)
    if name == "compose_subnet_prefix":
        return "10.213.52"
    if name in ("vault_key_shares",):
        return value + 1
    if name == "vault_key_threshold":
        return value - 1
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2
    if isinstance(value, Path):
        return value / "other"
    if isinstance(value, str):
        return value + "x" if not value[:1].isdigit() else "9" + value
    raise AssertionError(f"no changed value for {name}={value!r}")


def test_every_shaping_setting_changes_the_hash():
    base = _digest()
    shaping = [f.name for f in dataclasses.fields(Settings) if f.name not in NOT_SHAPING]
    assert "redis_replicas" in shaping and "tls_strict" in shaping and "images" in shaping
    for name in shaping:
        default = getattr(Settings(), name)
        settings = Settings().with_overrides(**{name: _changed(name, default)})
        assert _digest(settings) != base, f"changing {name} left the configuration hash unchanged"


def test_settings_that_do_not_shape_the_stack_leave_the_hash():
    base = _digest()
    for name in sorted(NOT_SHAPING):
        default = getattr(Settings(), name)
        if name in ("report_path",):
            settings = Settings().with_overrides(report_path=Path("elsewhere.json"))
        elif name == "stack":
            settings = Settings().with_overrides(stack="compose")
        else:
            settings = Settings().with_overrides(**{name: _changed(name, default)})
        assert _digest(settings) == base, f"{name} changed the hash but does not shape the stack"


@pytest.mark.parametrize(("what", "change"), [
    ("services", lambda kw: kw.update(services=("vault", "postgres", "redis"))),
    ("image ref", lambda kw: kw.update(images={**IMAGES, "postgres": {**IMAGES["postgres"], "ref": "postgres:15.10"}})),
    ("image id", lambda kw: kw.update(images={**IMAGES, "vault": {**IMAGES["vault"], "id": "sha256:" + "c" * 64}})),
    ("image source", lambda kw: kw.update(images={**IMAGES, "vault": {**IMAGES["vault"], "source": "override"}})),
    ("harness version", lambda kw: kw.update(version="0.1.0+y")),
])
def test_each_input_changes_the_hash(what, change):
    kwargs: dict = {}
    change(kwargs)
    assert _digest(**kwargs) != _digest(), what


def test_service_order_does_not_change_the_hash():
    assert _digest(services=("postgres", "vault")) == _digest(services=("vault", "postgres"))


def test_harness_version_covers_the_code_that_builds_containers(monkeypatch):
    first = reuse.harness_version()
    assert first.startswith("0.1.0+") and first == reuse.harness_version()
    original = Path.read_bytes

    def edited(self):
        data = original(self)
        return data + b"# edited" if self.name == "postgres.py" else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert reuse.harness_version() != first


ROOT = Path(__file__).resolve().parents[1]
# What a fresh interpreter holds after importing the start path (harness.stacks.engine: Stack.start) and every
# registered service module (the registry imports them when the stack starts them), as repository-relative file names.
_START_PATH = """
import json, sys
import harness.stacks.engine
from stack import registry
registry.specs()
print(json.dumps(sorted(m.__file__ for m in list(sys.modules.values())
                        if (getattr(m, "__name__", "") + ".").split(".")[0] in ("harness", "stack"))))
"""


@functools.cache
def start_path_files() -> list[str]:
    # A subprocess on purpose: what a fresh interpreter imports is the point (this process has imported everything).
    proc = subprocess.run([sys.executable, "-c", _START_PATH], capture_output=True, text=True, timeout=120,
                          check=False, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [str(Path(f).resolve().relative_to(ROOT)) for f in json.loads(proc.stdout)]


def test_harness_version_changes_with_every_module_of_the_start_path(monkeypatch):
    """Edit each module the start path imports (its bytes as the hash reads them): the version, and so the
    configuration hash, must change, or --reuse would attach to a stack that module's old code started."""
    files = start_path_files()
    assert {"harness/stacks/engine.py", "harness/trust/certs.py", "stack/postgres.py"} <= set(files), files
    first = reuse.harness_version()
    original = Path.read_bytes
    unnoticed = []
    for name in files:
        edited_file = (ROOT / name).resolve()

        def edited(self: Path, target: Path = edited_file) -> bytes:
            data = original(self)
            return data + b"# edited" if Path(self).resolve() == target else data

        with monkeypatch.context() as patch:
            patch.setattr(Path, "read_bytes", edited)
            if reuse.harness_version() == first:
                unnoticed.append(name)
    assert unnoticed == [], f"edits the configuration hash does not see: {unnoticed}"


def test_the_listed_harness_modules_are_those_of_the_start_path():
    """SHAPING_MODULES is neither short of a module the start path imports nor holding one it no longer does."""
    imported = sorted(f.removeprefix("harness/") for f in start_path_files() if f.startswith("harness/"))
    assert sorted(reuse.SHAPING_MODULES) == imported


def test_a_service_registered_from_elsewhere_is_covered(monkeypatch, tmp_path):
    (tmp_path / "extra_service.py").write_text("SPEC = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.MODULES, "extra", "extra_service")
    assert ("extra_service", tmp_path / "extra_service.py") in reuse.shaping_files()
    first = reuse.harness_version()
    (tmp_path / "extra_service.py").write_text("SPEC = None  # edited\n")
    assert reuse.harness_version() != first


def test_mismatch_names_what_changed():
    old = config_inputs(Settings(), ["vault", "postgres"], IMAGES, "v1")
    new = config_inputs(Settings(redis_replicas=1), ["vault", "postgres", "redis"],
                        {**IMAGES, "vault": {**IMAGES["vault"], "id": "sha256:" + "d" * 64}}, "v1")
    assert describe_mismatch(old, new) == (
        "services postgres,vault -> postgres,redis,vault; settings.redis_replicas 0 -> 1; "
        "images.vault.id sha256:aaaaaaaaaaaa -> sha256:dddddddddddd")
    assert describe_mismatch(old, new, limit=1).endswith("; and 2 more")


def test_record_round_trip_and_live_users(tmp_path):
    record = reuse.SharedRecord(run_id="r1", digest="d", inputs={}, services=["vault"], persist=True,
                                users=[os.getpid(), 2**22 + 12345])
    path = tmp_path / "reuse.json"
    record.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = reuse.SharedRecord.load(path)
    assert loaded == record
    assert loaded.live_users() == [os.getpid()]  # the other pid does not exist
    path.write_text("{not json")
    assert reuse.SharedRecord.load(path) is None


# ------------------------------------------------------------------------ the plugin with a fake engine

FAKE_ENGINE = '''
import json, os, sys, time, types
from pathlib import Path
import harness.stacks.reuse

LOG = Path(os.environ["FAKE_ENGINE_LOG"])

# The HTML page beside the run report is tests/test_html_report.py's subject; here drawing it would only cost every
# run a matplotlib import and a chart (about a second of CPU), so the plugin's import of it finds this instead.
_html = types.ModuleType("harness.reports.html")
_html.write_beside = lambda path, tolerance=0.25: path.with_suffix(".html")
sys.modules["harness.reports.html"] = _html


def lock_waiter(state_dir, timeout_s=30.0):
    """The pid of a process blocked in flock() on one of the shared stacks' lock files (Linux /proc/locks marks a
    waiting request with '->'), waiting for one to appear; None if none does within timeout_s."""
    inodes = set()
    for lock in Path(state_dir, "shared").glob("*.lock"):
        st = lock.stat()
        inodes.add(f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "->" and fields[2] == "FLOCK" and fields[6] in inodes:
                return int(fields[5])
        time.sleep(0.01)
    return None


def note(**event):
    with LOG.open("a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), **event}) + "\\n")


class Report:
    def __init__(self, run_id):
        self.run_id = run_id

    def to_json(self):
        return {"run_id": self.run_id, "image_set": "debian", "started": ["vault", "postgres"],
                "total_start_s": 1.0, "services": {}}


class FakeStack:
    def __init__(self, run_id):
        self.run_id = run_id
        self.report = Report(run_id)
        self.errors = {}

    def unavailable_reason(self, name):
        return None

    def endpoint(self, name):
        return f"{self.run_id}:{name}"

    def logs(self, name, tail=200):
        return ""


class FakeEngine:
    def images(self, settings, services):
        return {n: {"ref": f"img/{n}", "id": "sha256:1", "source": "debian"} for n in services}

    def start(self, settings, services, labels, log):
        starts = sum(1 for line in LOG.read_text().splitlines() if json.loads(line)["event"] == "start") \\
            if LOG.exists() else 0
        run_id = f"fake-{starts + 1}"
        event = {"event": "start", "run_id": run_id, "labels": dict(labels)}
        if os.environ.get("FAKE_START_UNTIL_WAITED"):  # the start lasts until another process waits on the lock
            event["waiter"] = lock_waiter(settings.state_dir)
        note(**event)
        return FakeStack(run_id)

    def adopt(self, settings, record, log):
        why = os.environ.get("FAKE_UNHEALTHY")
        if why:
            raise harness.stacks.reuse.Unhealthy(why)
        note(event="adopt", run_id=record.run_id)
        return FakeStack(record.run_id)

    def remove(self, settings, run_id):
        note(event="remove", run_id=run_id)


harness.stacks.reuse.ENGINE = FakeEngine()
'''

TESTS = '''
import os
import pytest

@pytest.mark.parametrize("i", range(6))
def test_uses_postgres(postgres_service, i, record_property):
    record_property("served", f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {postgres_service}")
'''


@pytest.fixture
def fake_project(pytester, monkeypatch, tmp_path):
    pytester.makeconftest(FAKE_ENGINE)
    pytester.makepyfile(test_shared=TESTS)
    log = tmp_path / "engine.log"
    monkeypatch.setenv("FAKE_ENGINE_LOG", str(log))
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("FAKE_UNHEALTHY", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    # The runs below are pytest.main in this process (xdist's workers are processes of their own): the engine the
    # conftest installs goes back after the test, and this process (maybe a worker of the outer run) is no worker.
    monkeypatch.setattr(reuse, "ENGINE", reuse.ENGINE)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    return log


def _events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _run(pytester, *args):
    """One pytest run of the fake project: pytest.main in this process (with ``-n``, its xdist controller; the
    workers are processes), as the user's command line would run it."""
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--harness-report={report}",
                                          "--junitxml=junit.xml", *args)
    return result, json.loads(report.read_text())


GROUPS = '''
import os
import pytest

@pytest.fixture(scope="session")
def strict_stack():
    return os.environ["PYTEST_XDIST_WORKER"]

@pytest.mark.parametrize("i", range(8))
def test_strict(strict_stack, i, record_property):
    record_property("worker", strict_stack)
'''
SHARED_IDS = {f"test_shared.py::test_uses_postgres[{i}]" for i in range(6)}
GROUP_IDS = {f"test_groups.py::test_strict[{i}]" for i in range(8)}


@dataclasses.dataclass(frozen=True)
class XdistRun:
    """What the fake project's ``-n 2`` run left: pytest's result, the run report, the engine's events, the JUnit
    XML, and the names of the run's shared-stack files still in the state directory after it."""

    result: pytest.RunResult
    report: dict[str, Any]
    events: list[dict[str, Any]]
    junit: str
    xdist_files: list[str]


@pytest.fixture(scope="module")
def _xdist_runs() -> dict[str, XdistRun]:
    return {}


@pytest.fixture
def two_worker_run(_xdist_runs: dict[str, XdistRun], pytester: pytest.Pytester, fake_project: Path,
                   monkeypatch: pytest.MonkeyPatch) -> XdistRun:
    """One ``pytest -n 2`` run of the fake project, test_shared.py (the session stack) and test_groups.py (a stack
    of its own) together, made by the first test of this module that asks and read by both tests below: an xdist
    run costs two worker processes (about 3 core-s), and the two checks need the same flags. Neither part changes
    what the other's check proves: the group's tests use a session fixture of their own (no service, no engine
    call; services needed stay vault, postgres), and the one worker the group goes to must still run a postgres
    test, since the other worker's start lasts until a second process waits on the lock (FAKE_START_UNTIL_WAITED,
    set for this run only). Split over workers, the group's 8 tests would show it: 14 units of one test, both
    workers free to take them."""
    if "run" not in _xdist_runs:
        pytester.makepyfile(test_groups=GROUPS)
        with monkeypatch.context() as patch:
            patch.setenv("FAKE_START_UNTIL_WAITED", "1")
            result, report = _run(pytester, "-n", "2")
        shared = Path(os.environ["HARNESS_STATE_DIR"]) / "shared"
        _xdist_runs["run"] = XdistRun(result, report, _events(fake_project), (pytester.path / "junit.xml").read_text(),
                                      sorted(p.name for p in shared.iterdir() if p.name.startswith("xdist-")))
    return _xdist_runs["run"]


def _outcomes(report: dict[str, Any], ids: set[str]) -> dict[str, str]:
    return {r["nodeid"]: r["outcome"] for r in report["results"] if r["nodeid"] in ids}


def test_two_workers_share_one_stack_started_once(two_worker_run: XdistRun):
    run = two_worker_run
    run.result.assert_outcomes(passed=len(SHARED_IDS) + len(GROUP_IDS))
    assert _outcomes(run.report, SHARED_IDS) == dict.fromkeys(SHARED_IDS, "passed")
    events = run.events
    starts = [e for e in events if e["event"] == "start"]
    adopts = [e for e in events if e["event"] == "adopt"]
    removes = [e for e in events if e["event"] == "remove"]
    assert len(starts) == 1, events
    assert len(adopts) == 1 and adopts[0]["pid"] != starts[0]["pid"], events  # the other worker attached
    # ... after waiting on the lock while the stack was being started, not merely coming later
    assert starts[0]["waiter"] == adopts[0]["pid"], events
    assert removes == [{"pid": removes[0]["pid"], "event": "remove", "run_id": "fake-1"}], events  # once, last user
    assert starts[0]["labels"]["devstack-harness.keep"] == "false"
    assert int(starts[0]["labels"]["devstack-harness.owner-pid"]) != starts[0]["pid"]  # the controller owns it
    junit = run.junit
    assert "gw0 fake-1:postgres" in junit and "gw1 fake-1:postgres" in junit  # both workers, the same stack
    # One run report for the run: every worker's tests, the stack of the worker that started it.
    assert run.report["tests"]["passed"] == len(SHARED_IDS) + len(GROUP_IDS) and run.report["run_id"] == "fake-1"
    assert run.report["session_stack"]["stack"] == "attached,started"
    assert run.report["session_stack"]["workers"] == 2
    assert run.report["services_needed"] == ["vault", "postgres"]
    # The run's shared-stack files go with it (the record, and the lock, gate and rw files the workers used).
    assert run.xdist_files == []


def test_reuse_attaches_then_replaces_on_a_configuration_change(pytester, fake_project, monkeypatch):
    result, report = _run(pytester, "--reuse")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["harness: reuse: no kept stack; starting one (kept at exit for the next --reuse run)"])
    assert report["session_stack"]["stack"] == "started"

    result, report = _run(pytester, "--reuse")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["harness: reuse: attached to kept stack fake-1 (configuration * unchanged) in *s"])
    assert report["session_stack"]["stack"] == "attached"
    assert report["benchmarks"]["session"]["time_to_first_test_s"] > 0

    monkeypatch.setenv("HARNESS_REDIS_REPLICAS", "1")
    result, report = _run(pytester, "--reuse")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["harness: reuse: kept stack fake-1 not reused: configuration changed "
                                 "(settings.redis_replicas 0 -> 1); removed it, starting a fresh one"])
    assert report["session_stack"] == {"stack": "replaced", "key": "reuse", "attach_s": None,
                                       "why": "configuration changed (settings.redis_replicas 0 -> 1)"}
    assert [e["event"] for e in _events(fake_project)] == ["start", "adopt", "remove", "start"]
    labels = _events(fake_project)[0]["labels"]
    assert labels == {"devstack-harness.keep": "true"}  # `down` removes it, `down --stale` never does


def test_reuse_replaces_an_unhealthy_stack(pytester, fake_project, monkeypatch):
    _run(pytester, "--reuse")
    monkeypatch.setenv("FAKE_UNHEALTHY", "Vault is sealed")
    result, _ = _run(pytester, "--reuse")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["harness: reuse: kept stack fake-1 not reused: Vault is sealed; removed it, "
                                 "starting a fresh one"])
    assert [e["event"] for e in _events(fake_project)] == ["start", "remove", "start"]


def test_reuse_skips_destructive_tests_on_the_session_stack(pytester, fake_project):
    pytester.makepyfile(test_destructive='''
import pytest

@pytest.mark.destructive
def test_restarts_postgres(postgres_service):
    pass

@pytest.mark.destructive
@pytest.mark.own_stack
@pytest.mark.postgres
def test_own_stack_is_not_the_session_stack():
    pass
''')
    result, report = _run(pytester, "--reuse", "test_destructive.py")
    result.assert_outcomes(passed=1, skipped=1)
    assert report["skips"] == [{"nodeid": "test_destructive.py::test_restarts_postgres",
                                "reason": "destructive (restarts, kills, rotates or restores): skipped on the "
                                          "reused session stack (--reuse), so the next run attaches to a stack in "
                                          "a known state; run without --reuse"}]


def test_xdist_groups_own_stack_tests_on_one_worker(two_worker_run: XdistRun):
    run = two_worker_run
    run.result.assert_outcomes(passed=len(SHARED_IDS) + len(GROUP_IDS))
    assert _outcomes(run.report, GROUP_IDS) == dict.fromkeys(GROUP_IDS, "passed")
    junit = run.junit
    assert junit.count('value="gw0"') + junit.count('value="gw1"') == 8
    assert junit.count('value="gw0"') in (0, 8), "the strict stack's tests were split over workers"
    assert {r["nodeid"] for r in run.report["results"]} == GROUP_IDS | SHARED_IDS


def test_xdist_is_installed():
    import xdist  # noqa: F401  (a dependency: pyproject lists pytest-xdist)

    assert "xdist" in sys.modules


# A run of its own, not two_worker_run: --keep-stack labels the stack keep=true and leaves it at exit, the opposite
# of what test_two_workers_share_one_stack_started_once asserts (keep=false, removed once by its last user).
def test_keep_stack_with_workers_leaves_the_shared_stack_for_down(pytester, fake_project):
    result, _ = _run(pytester, "-n", "2", "--keep-stack")
    result.assert_outcomes(passed=6)
    events = _events(fake_project)
    assert [e["event"] for e in events].count("start") == 1
    assert not [e for e in events if e["event"] == "remove"], events
    assert events[0]["labels"] == {"devstack-harness.keep": "true"}  # `down` removes it, `down --stale` never does
