"""The pytest plugin (entry point ``pytest11``): markers pull in only the services a test needs.

* Every service in :mod:`stack.registry` gets a marker (its ``SPEC.marker``, described by ``SPEC.description``)
  and a ``<name>_service`` fixture, both made here in code: a service added with ``registry.register`` has
  them with no other edit.
* A test marked ``@pytest.mark.postgres`` (or asking for the ``postgres_service`` fixture) needs PostgreSQL;
  the plugin adds dependencies (``SPEC.depends_on``: Vault) and, at the first such test, starts every service
  the *selected* tests need, concurrently. ``pytest suites/ -m postgres`` therefore starts Vault and PostgreSQL
  only. Tests marked ``own_stack`` start stacks of their own and add nothing to the session's stack.
* ``--services postgres,redis`` keeps only tests whose services are all among those listed.
* A failing test gets the logs of the services it used attached to its report.
* A JSON run report (images, time-to-ready, tests with skip reasons) is written at the end.
* Every secret the run knows (``harness.reports.redact``) is replaced by ``***`` in each test report before anything
  reads it (terminal, JUnit XML, the JSON report) and in the attached logs.
* ``--reuse`` keeps the session stack for the next run and attaches to it; ``pytest -n N`` (pytest-xdist) shares
  one session stack among the workers and merges what they measured into one run report (:mod:`harness.stacks.reuse`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import time
import types
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from harness.reports.redact import (
    active,
    contains_secret,
    redact,
    redact_data,
    redact_in_place,
    register_fields,
    register_state_dir,
)
from harness.reports.report import Outcomes, build_report, write_report
from harness.settings import Settings, load_settings
from harness.stacks.engine import Stack, validate_services, with_dependencies
from harness.stacks.reuse import (
    SharedStack,
    bump_generation,
    generation,
    key_for,
    process_start_time,
    refresh,
    shared_dir,
    stack_access,
)
from harness.stacks.running import Endpoint, RunningStack
from stack import registry
from stack.errors import ConfigError, DockerUnavailable, HarnessError, ImageMissing
from stack.images import RELEASES

if TYPE_CHECKING:
    # Imported where used: attach mode (compose files, its own Vault client) and the Redis drills (redis-py) are
    # not needed by every process that loads the plugin (each xdist worker, each `pytest --collect-only`).
    from harness.stacks.attach import AttachedStack


@dataclass
class _State:
    settings: Settings
    report_path: Path
    keep: bool
    needed: list[str] = field(default_factory=list)
    stack: Stack | AttachedStack | None = None
    outcomes: Outcomes = field(default_factory=Outcomes)
    drills: list[dict[str, Any]] = field(default_factory=list)
    benchmarks: dict[str, Any] = field(default_factory=dict)
    reuse: bool = False
    shared: SharedStack | None = None
    first_test_at: float | None = None  # epoch seconds: the first test's call phase began
    workers: list[dict[str, Any]] = field(default_factory=list)  # xdist controller: what each worker sent
    generation: int = 0  # the shared stack's change count this worker's service objects reflect
    tls: list[dict[str, Any]] = field(default_factory=list)
    service_logs: dict[str, dict[str, str]] = field(default_factory=dict)  # nodeid -> service -> redacted log tail


_STATE = pytest.StashKey[_State]()
_USED = pytest.StashKey[list[str]]()


def _parse_services(text: str) -> list[str]:
    try:
        return validate_services(text.split(","))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "devstack-harness")
    group.addoption("--services", type=_parse_services, default=None, metavar="LIST",
                    help="run only tests whose services are all in LIST (comma-separated service names: "
                         f"{','.join(registry.names())})")
    group.addoption("--harness-report", default=None, metavar="PATH",
                    help="where to write the JSON run report (default: HARNESS_REPORT_PATH or .harness/report.json)")
    group.addoption("--keep-stack", action="store_true", default=None,
                    help="leave the containers running after the session (remove with `python -m harness down`)")
    group.addoption("--stack", choices=["testcontainers", "compose"], default=None,
                    help="compose: attach mode, check the running compose stack (`python -m harness compose up`) "
                         "instead of starting containers (default: HARNESS_STACK or testcontainers)")
    group.addoption("--reuse", action="store_true", default=None,
                    help="keep the session stack at the end and attach to it in the next run when its configuration "
                         "matches (default: HARNESS_REUSE); destructive tests on it are skipped")
    group.addoption("--release", choices=list(RELEASES), default=None,
                    help="the Debian release line of the Debian image set (default: HARNESS_RELEASE, else bookworm); "
                         "build its images first with `python -m harness images build --release NAME`")
    group.addoption("--allow-destructive", action="store_true", default=None,
                    help="in attach mode, also run the destructive tests (restarts, rotations) against the compose "
                         "stack (default: HARNESS_ALLOW_DESTRUCTIVE or skip them)")


def pytest_configure(config: pytest.Config) -> None:
    _register_services(config)
    environ = dict(os.environ)
    if config.getoption("release"):  # before the settings are validated: HARNESS_FLAVORS is judged on this line
        environ["HARNESS_RELEASE"] = config.getoption("release")
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        raise pytest.UsageError(f"harness settings: {exc}") from None
    report = config.getoption("harness_report")
    keep = config.getoption("keep_stack")
    if config.getoption("stack"):
        settings = settings.with_overrides(stack=config.getoption("stack"))
    if config.getoption("allow_destructive"):
        settings = settings.with_overrides(allow_destructive=True)
    config.stash[_STATE] = _State(settings=settings,
                                  report_path=Path(report) if report else settings.report_file,
                                  keep=settings.keep_stack if keep is None else bool(keep),
                                  reuse=settings.reuse or bool(config.getoption("reuse")))
    config.pluginmanager.register(_Recorder(config.stash[_STATE].outcomes), "devstack-harness-recorder")


def pytest_report_header(config: pytest.Config) -> str:
    state = config.stash[_STATE]
    overrides = ", ".join(f"{k}={v}" for k, v in state.settings.image_overrides.items())
    mode = "attach to the compose stack" if state.settings.stack == "compose" else "testcontainers"
    return (f"harness: {mode}, image set {state.settings.images}" + (f" (overrides: {overrides})" if overrides else "")
            + f", report {state.report_path}")


def _register_services(config: pytest.Config) -> None:
    """Each registered service's marker and ``<name>_service`` fixture (the registry is read now, after the
    initial conftests and ``-p`` plugins had their chance to call ``registry.register``)."""
    fixtures = types.ModuleType("harness_service_fixtures")
    for spec in registry.specs():
        config.addinivalue_line("markers", f"{spec.marker}: {spec.description}")
        setattr(fixtures, spec.fixture, _service_fixture(spec.name, spec.fixture))
    config.pluginmanager.register(fixtures, "devstack-harness-service-fixtures")


def services_of(item: pytest.Item) -> list[str]:
    """Services an item needs from the session's stack: its service markers plus any ``<service>_service``
    fixture it requests. An ``own_stack`` item starts a stack of its own: it needs nothing from the session's."""
    if item.get_closest_marker("own_stack") is not None:
        return []
    return _marked_services(item)


def service_params(names: Iterable[str] | None = None) -> list[Any]:
    """One ``pytest.param`` per service (default: every registered one, in order), marked with that service's
    marker and identified by its name: a case about a service is selected by it (``-m postgres``) and needs it.
    For tests parametrized over services, so that ``-m vault`` keeps only what needs Vault alone."""
    chosen = registry.names() if names is None else tuple(names)
    return [pytest.param(name, marks=getattr(pytest.mark, registry.get(name).marker), id=name) for name in chosen]


def _marked_services(item: pytest.Item) -> list[str]:
    specs = registry.specs()
    markers = {spec.marker: spec.name for spec in specs}
    fixtures = {spec.fixture: spec.name for spec in specs}
    names = {markers[m.name] for m in item.iter_markers() if m.name in markers}
    names |= {fixtures[f] for f in getattr(item, "fixturenames", ()) if f in fixtures}
    return [spec.name for spec in specs if spec.name in names]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Destructive tests (restarts, kills, restores) run after everything that expects a calm stack.
    items.sort(key=lambda item: item.get_closest_marker("destructive") is not None)
    settings = config.stash[_STATE].settings
    if config.stash[_STATE].reuse and settings.stack != "compose":
        for item in items:
            if item.get_closest_marker("destructive") is not None and services_of(item):
                item.add_marker(pytest.mark.skip(reason=REUSE_DESTRUCTIVE))
    if settings.stack == "compose":
        for item in items:
            if item.get_closest_marker("own_stack") is not None:
                item.add_marker(pytest.mark.skip(reason=ATTACH_OWN_STACK))
            elif item.get_closest_marker("destructive") is not None and not settings.allow_destructive:
                item.add_marker(pytest.mark.skip(reason=ATTACH_DESTRUCTIVE))
    selected = config.getoption("services")
    if not selected:
        return
    allowed = set(with_dependencies(selected))
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        needs = _marked_services(item)  # own_stack items too: their own stacks start these
        (keep if needs and set(needs) <= allowed else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[_STATE]
    wanted: set[str] = set()
    for item in session.items:
        wanted.update(services_of(item))
    state.needed = with_dependencies(sorted(wanted)) if wanted else []
    groups_file = getattr(session.config, "workerinput", {}).get("harness_groups")
    if groups_file:  # an xdist worker: tell the controller's scheduler which tests share a stack of their own
        groups = {item.nodeid: g for item in session.items if (g := own_stack_group(item)) is not None}
        tmp = Path(f"{groups_file}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(groups_file)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        listed = ", ".join(state.needed) if state.needed else "none"
        reporter.write_line(f"harness: services needed by the selected tests: {listed}")


REUSE_DESTRUCTIVE = ("destructive (restarts, kills, rotates or restores): skipped on the reused session stack "
                     "(--reuse), so the next run attaches to a stack in a known state; run without --reuse")
#: Session-scoped fixtures that start a stack of their own: with -n, all their tests go to one worker.
OWN_STACK_FIXTURES = ("strict_stack", "failover_stack", "node_loss_stack", "drill_stack")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: where each worker writes the groups of the tests it collected (see below)."""
    node.workerinput["harness_groups"] = str(_groups_file(node.config))


def _groups_file(config: pytest.Config) -> Path:
    return shared_dir(config.stash[_STATE].settings.state_dir) / f"groups-{os.getpid()}.json"


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N`` (xdist's ``load``): the tests that share a stack of their own go to one worker as a unit, so that
    stack starts once; every other test is scheduled alone, as ``load`` does. (xdist's ``xdist_group`` renames
    node ids, which pytest 9.2 no longer honours; this needs no renaming.)"""
    if config.getvalue("dist") != "load":
        return None
    from harness.xdist_groups import OwnStackScheduling

    return OwnStackScheduling(config, log, _groups_file(config))


def own_stack_group(item: pytest.Item) -> str | None:
    """The group of an item that starts (or shares) a stack of its own: the session fixture's name, or for other
    ``own_stack`` tests their module plus the ids of module-scoped parameters (one round trip per parameter)."""
    names = getattr(item, "fixturenames", ())
    for fixture in OWN_STACK_FIXTURES:
        if fixture in names:
            return f"harness-{fixture}"
    if item.get_closest_marker("own_stack") is None:
        return None
    module = item.nodeid.split("::", 1)[0]
    callspec = getattr(item, "callspec", None)
    info = getattr(item, "_fixtureinfo", None)
    params = []
    if callspec is not None and info is not None:
        for arg, value in sorted(callspec.params.items()):
            defs = info.name2fixturedefs.get(arg)
            if defs and defs[-1].scope in ("module", "package", "session"):
                params.append(f"{arg}={value}")
    return "harness-" + module + (f"[{','.join(params)}]" if params else "")


ATTACH_OWN_STACK = ("starts a stack of its own (strict TLS, drill or backup round-trip stack); attach mode "
                    "(--stack compose) starts no containers: run it without --stack compose")
ATTACH_DESTRUCTIVE = ("destructive (restarts, kills, rotates or restores): skipped against the long-lived compose "
                      "stack; run it with --allow-destructive (or HARNESS_ALLOW_DESTRUCTIVE=true)")


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # lets pytest unwind: session fixtures tear down and containers are removed


@pytest.fixture(scope="session")
def harness_stack(request: pytest.FixtureRequest) -> Iterator[Stack | AttachedStack]:
    """The session's stack, with every service the selected tests need started concurrently (or, in attach
    mode, the running compose stack, checked for those services)."""
    state = request.config.stash[_STATE]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def log(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"harness: {redact(line)}")

    if state.settings.stack == "compose":
        yield from _attached(state, log)
        return

    key = key_for(state.reuse, getattr(request.config, "workerinput", {}).get("testrunuid"))
    if key is not None:
        yield from _shared(request, state, key, log)
        return

    try:
        stack = Stack(state.settings, keep=state.keep, log=log)
    except DockerUnavailable as exc:
        pytest.exit(f"harness: {exc}", returncode=3)
    state.stack = stack
    if hasattr(signal, "SIGTERM") and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with _live_progress(request.config):
            images = stack.resolve(state.needed)
            log(f"run {stack.run_id}, image set {state.settings.images}: "
                + ", ".join(f"{n}={r.ref} ({r.source})" for n, r in images.items()))
            stack.start(state.needed)
    except (ImageMissing, HarnessError) as exc:
        stack.close()
        pytest.exit(f"harness: {exc}", returncode=4)
    try:
        yield stack
    finally:
        stack.close()


@contextlib.contextmanager
def _live_progress(config: pytest.Config) -> Iterator[None]:
    """Show a stack's start progress live, on lines of its own, not in the first test's captured output."""
    capman = config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")
        yield


def _shared(request: pytest.FixtureRequest, state: _State, key: str, log: Callable[[str], None]) -> Iterator[Stack]:
    """The session stack shared with other processes: kept between runs (``--reuse``) or among xdist workers."""
    workerinput = getattr(request.config, "workerinput", None)
    shared = SharedStack(state.settings, state.needed, key=key, persist=state.reuse, log=log,
                         owner_pid=os.getppid() if workerinput else os.getpid(), keep=state.keep)
    try:
        with _live_progress(request.config):
            stack = shared.acquire()
    except DockerUnavailable as exc:
        pytest.exit(f"harness: {exc}", returncode=3)
    except (ImageMissing, HarnessError) as exc:
        pytest.exit(f"harness: {exc}", returncode=4)
    state.stack, state.shared = stack, shared
    _learn_secrets(stack, [])
    try:
        yield stack
    finally:
        outcome = shared.release()
        log(f"session stack {stack.run_id}: {outcome}")


def _attached(state: _State, log: Callable[[str], None]) -> Iterator[AttachedStack]:
    from harness.stacks.attach import AttachedStack

    try:
        attached = AttachedStack(state.settings, log=log)
        attached.start(state.needed)
    except DockerUnavailable as exc:
        pytest.exit(f"harness: {exc}", returncode=3)
    except HarnessError as exc:
        pytest.exit(f"harness (attach mode): {exc}", returncode=4)
    state.stack = attached
    _learn_secrets(attached, [])  # the compose stack's unseal keys, admin token and secret-ids
    log(f"attached to compose project {state.settings.compose_project} (stack state updated "
        f"{attached.state.updated}): " + ", ".join(f"{n}={r.image} ({r.image_source})"
                                                   for n, r in attached.report.services.items() if r.image))
    yield attached


def _extra_stack(request: pytest.FixtureRequest, fixture: str, label: str,
                 overrides: Callable[[Settings, list[str]], Settings]) -> Iterator[Stack]:
    """A second stack for the tests that use ``fixture``: the services those tests need, with ``overrides``
    applied to the session's settings; removed at the end of the session. It does not wait for the session's
    stack: under ``-n N`` a worker starts its own-stack group at once instead of first queueing for the shared
    session stack that another worker is starting."""
    state = request.config.stash[_STATE]
    if state.settings.stack == "compose":
        pytest.skip(reason=ATTACH_OWN_STACK)
    wanted = sorted({s for item in request.session.items if fixture in getattr(item, "fixturenames", ())
                     for s in _marked_services(item)} - {"vault"})
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def log(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"harness ({label}): {redact(line)}")

    try:
        stack = Stack(overrides(state.settings, wanted), keep=state.keep, log=log)
    except DockerUnavailable as exc:
        pytest.exit(f"harness: {exc}", returncode=3)
    try:
        with _live_progress(request.config):
            # Vault always: it is every service's dependency, and the only service of the Vault drills (with
            # ``-m vault`` nothing else is wanted, and starting nothing made those drills fail).
            stack.start(["vault", *wanted])
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="session")
def strict_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A stack whose services serve TLS only (``tls_strict`` set in its own Vault)."""
    yield from _extra_stack(request, "strict_stack", "strict TLS stack",
                            lambda s, wanted: s.with_overrides(tls_strict=tuple(wanted)))


def _drill_settings(settings: Settings, replicas: int) -> Settings:
    from harness.drills.redis import drill_settings

    return drill_settings(settings, replicas=replicas)


@pytest.fixture(scope="session")
def failover_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Vault and a Redis cluster of 3 masters + 1 replica each, ``cluster-node-timeout`` from
    ``drill_node_timeout_ms``, for the failover drills."""
    yield from _extra_stack(request, "failover_stack", "failover drill stack",
                            lambda s, _: _drill_settings(s, replicas=1))


@pytest.fixture(scope="session")
def node_loss_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Vault and a Redis cluster of 3 masters without replicas, drill node timeout, for the node-loss drills."""
    yield from _extra_stack(request, "node_loss_stack", "node-loss drill stack",
                            lambda s, _: _drill_settings(s, replicas=0))


@pytest.fixture(scope="session")
def drill_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Vault and the services whose drills the selected tests run (their service markers), on a stack of their own:
    the service drills (``ServiceSpec.drills``) kill, crash and seal them."""
    yield from _extra_stack(request, "drill_stack", "service drill stack", lambda s, _: s)


@pytest.fixture(scope="session")
def harness_settings(request: pytest.FixtureRequest) -> Settings:
    """The session's settings (``HARNESS_*`` > file > defaults, and the command-line options), for suites that
    start stacks of their own and need nothing of the session's stack."""
    settings: Settings = request.config.stash[_STATE].settings
    return settings


@pytest.fixture(scope="session")
def harness_benchmarks(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Suites put measured figures here (name -> value); printed at the end and saved in the report."""
    return request.config.stash[_STATE].benchmarks


@pytest.fixture(scope="session")
def tls_results(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Suites append what each TLS listener served (service, listener, serial, days left, version, suites);
    saved in the report as ``tls`` (the HTML report's TLS table)."""
    return request.config.stash[_STATE].tls


@pytest.fixture(scope="session")
def drill_results(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Drill tests append their measured rounds here; they are printed at the end and put in the report."""
    return request.config.stash[_STATE].drills


def _service_fixture(name: str, fixture_name: str) -> Callable[..., Any]:
    def fixture(harness_stack: RunningStack) -> Endpoint:
        reason = harness_stack.unavailable_reason(name)
        if reason is not None:
            pytest.skip(reason=f"{name} unavailable here: {reason}")
        endpoint = harness_stack.endpoint(name)
        register_fields(endpoint)  # its password as it is now (rotations included)
        return endpoint

    fixture.__name__ = fixture_name
    fixture.__doc__ = (f"Endpoint of {name} (frozen dataclass), read fresh for each test so it reflects restarts "
                       f"and rotated credentials; the service itself lives for the session.")
    return pytest.fixture(name=fixture_name)(fixture)


@pytest.fixture(autouse=True)
def _harness_marked_services(request: pytest.FixtureRequest) -> Iterator[None]:
    """Marker -> service: a test marked with a service gets it started even without asking for a fixture. On a
    stack shared with other xdist workers, a destructive test runs alone (the others' tests wait meanwhile)."""
    needs = services_of(request.node)
    request.node.stash[_USED] = needs
    state = request.config.stash[_STATE]
    if needs:
        request.getfixturevalue("harness_stack")
    shared = state.shared
    if not needs or shared is None or shared.private or not hasattr(request.config, "workerinput"):
        for name in needs:
            request.getfixturevalue(registry.get(name).fixture)
        yield
        return
    exclusive = request.node.get_closest_marker("destructive") is not None
    with stack_access(state.settings.state_dir, shared.key, exclusive):
        seen = generation(state.settings.state_dir, shared.key)
        if seen != state.generation and isinstance(state.stack, Stack):
            refresh(state.stack)  # another worker's destructive test changed passwords or certificates
            state.generation = seen
        for name in needs:
            request.getfixturevalue(registry.get(name).fixture)
        yield
        if exclusive:
            state.generation = bump_generation(state.settings.state_dir, shared.key)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    state = item.config.stash.get(_STATE, None)
    if state is not None and state.first_test_at is None:
        state.first_test_at = time.time()


# tryfirst: the outermost wrapper, so this runs after every other plugin has shaped the report (pytest's skipping
# plugin rewrites xfail reports in its own wrapper) and before pytest_runtest_logreport hands it to the terminal,
# JUnit XML (which reads longrepr and the captured-output sections there) and the run report.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    state = item.config.stash.get(_STATE, None)
    if report.failed and state is not None and state.stack is not None:
        for name in item.stash.get(_USED, []):
            try:
                text = state.stack.logs(name, tail=80)
            except Exception as exc:  # a report must still be produced
                text = f"(could not read logs: {exc})"
            report.sections.append((f"{name}{LOGS_TITLE}", text))
        _learn_secrets(state.stack, item.stash.get(_USED, []))
    redact_report(report)
    if report.failed and state is not None:  # the HTML report links each failure to these
        logs = {title.removesuffix(LOGS_TITLE): text for title, text in report.sections if title.endswith(LOGS_TITLE)}
        if logs:
            state.service_logs.setdefault(report.nodeid, {}).update(logs)
    return report


LOGS_TITLE = " logs (last 80 lines)"


def _learn_secrets(stack: RunningStack, services: list[str]) -> None:
    """Register what the stack holds now: its private files (keys, tokens, secret-ids, also when a restore
    replaced them), its bootstrap record and the current endpoints of ``services`` (rotated passwords)."""
    with contextlib.suppress(Exception):  # whatever cannot be read cannot be missed here: redaction still runs
        register_state_dir(stack.state_dir)
        register_fields(stack.vault_bootstrap)
    for name in services:
        with contextlib.suppress(Exception):
            register_fields(stack.endpoint(name))


def redact_report(report: pytest.TestReport) -> None:
    """Replace every registered secret by ``***`` in the report's failure text, captured output and attached
    logs (its ``sections``) and user properties, in place."""
    if not active():
        return
    if report.longrepr is not None:
        report.longrepr = redact_in_place(report.longrepr)
        if contains_secret(str(report.longrepr)):  # a representation the walk does not know: flatten it
            report.longrepr = redact(str(report.longrepr))
    report.sections = [(redact(title), redact(text)) for title, text in report.sections]
    report.user_properties = [(redact(str(name)), redact(value) if isinstance(value, str) else value)
                              for name, value in report.user_properties]


class _Recorder:
    """Folds every phase report into the run's outcomes (registered per session in pytest_configure)."""

    def __init__(self, outcomes: Outcomes) -> None:
        self.outcomes = outcomes

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reason = ""
        if report.skipped and hasattr(report, "wasxfail"):  # a known failure: counted with the skips, reason kept
            reason = f"xfail: {report.wasxfail}"[:600]
        elif report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed and report.longrepr is not None:
            # Cut after redaction (the report is redacted in makereport): a cut secret would escape it.
            reason = str(getattr(report.longrepr, "reprcrash", None) or report.longrepr)[:300]
        self.outcomes.add(report.nodeid, report.when, report.outcome, report.duration, reason)


def _session_figures(state: _State) -> dict[str, Any]:
    """How this process got its session stack and how long the first test waited (for the run report)."""
    shared = state.shared
    figures: dict[str, Any] = {"stack": shared.outcome if shared is not None else
                               ("started" if state.stack is not None else "none")}
    if shared is not None:
        figures.update(key=shared.key, why=shared.why, attach_s=shared.attach_s)
    if state.first_test_at is not None:
        figures["time_to_first_test_s"] = round(state.first_test_at - _PROCESS_START, 3)
    return figures


_PROCESS_START = process_start_time()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: keep what a finished worker measured (merged into the one run report)."""
    state = node.config.stash.get(_STATE, None)
    payload = getattr(node, "workeroutput", {}).get("devstack_harness")
    if state is not None and payload:
        state.workers.append(json.loads(payload))


def _merge_workers(state: _State) -> dict[str, Any] | None:
    """Fold the workers' payloads into the controller's state; the stack report of the worker that started (or
    first attached to) the shared stack is the run's."""
    order = {"started": 0, "replaced": 1, "attached": 2, "private": 3}
    with_stack = sorted((w for w in state.workers if w.get("stack")),
                        key=lambda w: order.get(w["session"].get("stack"), 9))
    needed = {n for w in state.workers for n in w.get("needed", [])}
    state.needed = with_dependencies(sorted(needed)) if needed else []
    for worker in state.workers:
        state.drills += worker.get("drills", [])
        state.tls += worker.get("tls", [])
        state.service_logs.update(worker.get("service_logs", {}))
        _deep_merge(state.benchmarks, worker.get("benchmarks", {}))
    starts = [w["first_test_at"] for w in state.workers if w.get("first_test_at")]
    if starts:
        state.first_test_at = min(starts)
    return with_stack[0]["stack"] if with_stack else None


def _deep_merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into.setdefault(key, value)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    if state.stack is not None:
        _learn_secrets(state.stack, [])
    stack_json = state.stack.report.to_json() if state.stack is not None else None
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes the one run report
        payload = {"needed": state.needed, "stack": stack_json, "session": _session_figures(state),
                   "drills": state.drills, "benchmarks": state.benchmarks, "first_test_at": state.first_test_at,
                   "tls": state.tls, "service_logs": state.service_logs}
        workeroutput["devstack_harness"] = json.dumps(redact_data(json.loads(json.dumps(payload, default=str))))
        return
    if state.workers:
        _groups_file(session.config).unlink(missing_ok=True)
    if session.config.option.collectonly:
        return  # nothing ran: the last run's reports stay as they were (and drawing charts costs a second)
    sessions = [w["session"] for w in state.workers]
    if state.workers:
        stack_json = _merge_workers(state) or stack_json
    data = build_report(stack=stack_json, outcomes=state.outcomes, needed=state.needed, exitstatus=int(exitstatus))
    session_figures = _session_figures(state)
    if sessions:
        session_figures["stack"] = ",".join(sorted({s["stack"] for s in sessions}))
        session_figures["workers"] = len(sessions)
        session_figures["why"] = next((s["why"] for s in sessions if s.get("why")), "")
    data["session_stack"] = {k: v for k, v in session_figures.items() if k not in ("time_to_first_test_s",)}
    if session_figures.get("time_to_first_test_s") is not None:
        state.benchmarks.setdefault("session", {})["time_to_first_test_s"] = session_figures["time_to_first_test_s"]
    data["stack_mode"] = state.settings.stack
    if state.settings.stack == "compose" and state.stack is not None:  # the AttachedStack of `_attached`
        compose = cast("AttachedStack", state.stack).state
        data["compose"] = {"project": compose.project, "compose_command": compose.compose_command,
                           "last_up": compose.updated, "vault_initialised_by_last_up": compose.vault_initialised_now}
    if state.drills:
        data["drills"] = state.drills
    if state.benchmarks:
        data["benchmarks"] = state.benchmarks
    if state.tls:
        data["tls"] = state.tls
    if state.service_logs:
        data["service_logs"] = state.service_logs
    write_report(state.report_path, data)
    session.config.stash[_REPORT] = data
    try:  # the pictures, from the report as written (redacted)
        from harness.reports.html import write_beside

        session.config.stash[_HTML] = str(write_beside(state.report_path, state.settings.report_tolerance))
    except Exception as exc:  # the JSON report stands; a chart that cannot be drawn must not fail the run
        session.config.stash[_HTML] = f"not written: {type(exc).__name__}: {redact(str(exc))[:300]}"


_REPORT = pytest.StashKey[dict[str, Any]]()
_HTML = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    data = config.stash.get(_REPORT, None)
    if state is None or data is None or not state.needed:
        return
    tr = terminalreporter
    tr.section("devstack-harness")
    tr.write_line(f"image set: {data['image_set']}")
    for name, image in data["images"].items():
        ready = data["time_to_ready_s"].get(name)
        status = f"ready in {ready:.2f}s" if ready is not None else (
            data["services_unavailable"].get(name) or data["services_failed"].get(name) or "not started")
        tr.write_line(f"  {name:9} {image['ref']} ({image['source']}): {status}")
    if data.get("compose"):
        tr.write_line(f"attach mode: compose project {data['compose']['project']}; the times above are those of its "
                      f"last `compose up` ({data['compose']['last_up']}, {data['total_stack_start_s']:.2f}s in all)")
    elif data["total_stack_start_s"] is not None:
        tr.write_line(f"stack start: {data['total_stack_start_s']:.2f}s (ratio to vault+slowest: "
                      f"{data['parallel_ratio']})")
    if data.get("drills"):
        from harness.drills.redis import drill_lines

        for drill in data["drills"]:
            for line in drill_lines(drill):
                tr.write_line(line)
    session = data.get("session_stack") or {}
    if session.get("stack") not in (None, "none", "started"):
        tr.write_line(f"session stack: {session['stack']}" + (f" (attached in {session['attach_s']:.2f}s)"
                      if session.get("attach_s") else "") + (f"; why not reused: {session['why']}"
                                                            if session.get("why") else ""))
    for name, value in data.get("benchmarks", {}).items():
        tr.write_line(f"benchmark {name}: {value}")
    counts = data["tests"]
    tr.write_line(f"tests: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped, "
                  f"{counts['error']} errors; report: {state.report_path}")
    tr.write_line(f"html report: {config.stash.get(_HTML, 'not written')}")
