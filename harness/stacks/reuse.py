"""One session stack for many pytest processes: kept between runs (``pytest --reuse``) and shared by the workers
of one ``pytest -n N`` run (pytest-xdist).

Both cases are the same mechanism. A *shared stack* has a record, ``<state_dir>/shared/<key>.json`` (0600, no
secrets: run id, configuration hash and its inputs, the processes using it, the stack's report), and a lock file
beside it. A process that needs the session stack takes the lock (``fcntl.flock``), reads the record and either
attaches to the stack it names or starts one and writes the record; then it adds itself to the record's users and
lets the lock go. At the end it takes the lock again and removes itself; the last user removes the stack, unless
the stack is kept for the next run (``--reuse``).

* ``--reuse`` uses the key ``reuse``: the stack is labelled keep=true (``python -m harness down`` removes it,
  ``down --stale`` never does) and survives the run. The next run attaches when the configuration hash matches
  (:func:`config_inputs`: the services, each image reference and id, the settings that shape the stack, the
  harness version and a digest of the code that builds and runs containers, :func:`shaping_files`); a mismatch,
  a container that is not running, a sealed Vault or a service refusing a login removes it and starts a fresh one,
  with one line saying why.
* ``pytest -n N`` without ``--reuse`` uses the key ``xdist-<testrunuid>`` (one per run): the stack is labelled
  keep=false with the xdist controller as its owner, so ``down --stale`` removes it only once the whole run is
  gone, and the last worker removes it.

Attaching rebuilds the :class:`~harness.stacks.engine.Stack` object around the running containers: every service's
container object comes from its module's driver (``make``), fed with what Vault holds now (each
service's KV document, read with its own AppRole) and the certificate the run last installed (its private run
state, ``<state_dir>/runs/<run-id>/pki/<service>/``), and is then bound to its running container by name. The
unseal keys, tokens and keys stay where the run that started the stack wrote them (0600 files in its private run
state), never in labels, environment or argv.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from harness.images import ImageResolver
from harness.reports.redact import redact, register_fields
from harness.settings import Settings
from harness.stacks.docker_env import docker_client
from harness.stacks.engine import ServiceRecord, Stack, StackReport, remove_run, with_dependencies
from harness.stacks.runstate import prune_run_state
from harness.trust.bootstrap import BootstrapResult, approle_login
from harness.trust.pki import CaChain
from stack import registry
from stack.base import (
    LABEL_KEEP,
    LABEL_OWNER_PID,
    LABEL_RUN_ID,
    LABEL_SERVICE,
    LoopbackContainer,
    RunContext,
    TlsMaterial,
)
from stack.errors import HarnessError
from stack.files import write_file
from stack.service import MakeRequest
from stack.vault import VaultContainer, VaultInit

Log = Callable[[str], None]

REUSE_KEY = "reuse"

#: Settings that do not change what the session stack's containers are (reporting, timeouts of waits and drills,
#: the compose stack's own settings, what to keep afterwards). Every other setting is part of the configuration
#: hash, so a new setting counts as shaping the stack until it is listed here.
NOT_SHAPING = frozenset({
    "state_dir", "report_path", "ready_timeout", "registry_probe_timeout", "report_tolerance", "keep_stack",
    "keep_run_state", "reuse", "stack", "allow_destructive", "compose_file", "compose_project",
    "compose_subnet_prefix", "tls_min_days_left", "drill_node_timeout_ms", "drill_promote_max_ms",
    "drill_round_timeout_s", "drill_max_rounds",
})

#: The harness modules (paths under ``harness/``) the session stack's start path imports
#: (:meth:`harness.stacks.engine.Stack.start` and what it imports, directly or not, subpackages' ``__init__`` included):
#: with every ``stack`` module they decide what a container of the session stack is and how it runs (the images
#: resolved, the certificates installed and reloaded, the labels and owner records written).
#: tests/test_reuse.py compares this with what a fresh interpreter holds after importing ``harness.stacks.engine`` and
#: every registered service: a module the start path starts importing fails there until it is listed here.
SHAPING_MODULES = ("__init__.py", "images.py", "settings.py", "reports/__init__.py", "reports/redact.py",
                   "stacks/__init__.py", "stacks/docker_env.py", "stacks/engine.py", "stacks/runstate.py",
                   "trust/__init__.py", "trust/bootstrap.py", "trust/certs.py", "trust/params.py", "trust/pki.py")


class Unhealthy(HarnessError):
    """A kept stack that cannot be attached to (the message says why)."""


# ------------------------------------------------------------------------------------ the configuration hash


def shaping_files() -> list[tuple[str, Path]]:
    """The code the configuration hash covers, as (name, file): every ``stack`` module, the harness modules of
    :data:`SHAPING_MODULES`, and the module of every registered service that lives elsewhere (added with
    :func:`stack.registry.register`)."""
    stack_dir, harness_dir = Path(str(resources.files("stack"))), Path(str(resources.files("harness")))
    files = [(f"stack/{p.name}", p) for p in sorted(stack_dir.glob("*.py"))]
    files += [(f"harness/{name}", harness_dir / name) for name in SHAPING_MODULES]
    for module in registry.MODULES.values():
        found = importlib.util.find_spec(module)
        origin = Path(found.origin) if found is not None and found.origin else None
        if origin is not None and origin.parent.resolve() != stack_dir.resolve():
            files.append((module, origin))
    return files


def harness_version() -> str:
    """The package version plus a digest of the code that builds and runs the session stack's containers
    (:func:`shaping_files`): editing such a module must not attach to a stack its old code started."""
    import harness

    digest = hashlib.sha256()
    for name, path in shaping_files():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{harness.__version__}+{digest.hexdigest()[:12]}"


def stack_settings(settings: Settings) -> dict[str, Any]:
    """The settings that shape the session stack, as JSON-able values."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        if f.name in NOT_SHAPING:
            continue
        value = getattr(settings, f.name)
        values[f.name] = dict(sorted(value.items())) if isinstance(value, Mapping) else (
            list(value) if isinstance(value, tuple) else value if isinstance(value, (int, float, str)) else str(value))
    return values


def config_inputs(settings: Settings, services: Sequence[str], images: Mapping[str, Mapping[str, Any]],
                  version: str) -> dict[str, Any]:
    """Everything the configuration hash covers: services, images (reference, id, source), settings, version."""
    return {"services": sorted(services),
            "images": {name: {k: images[name].get(k) for k in ("ref", "id", "source")} for name in sorted(images)},
            "settings": stack_settings(settings), "harness": version}


def config_digest(inputs: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def describe_mismatch(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 3) -> str:
    """What changed between two sets of inputs, e.g. ``settings.redis_replicas 0 -> 1``."""
    a, b = _flatten(old), _flatten(new)
    rank = {"services": 0, "harness": 1, "settings": 2, "images": 3}  # the likeliest cause first
    changed = sorted((key for key in set(a) | set(b) if a.get(key) != b.get(key)),
                     key=lambda key: (rank.get(key.split(".", 1)[0], 9), key))
    parts = [f"{key} {_short(a.get(key))} -> {_short(b.get(key))}" for key in changed[:limit]]
    if len(changed) > limit:
        parts.append(f"and {len(changed) - limit} more")
    return "; ".join(parts) or "no input differs (the hash function changed)"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(data, list) and prefix in ("services",):
        return {prefix: ",".join(map(str, data)) or "none"}
    return {prefix: data}


def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    text = str(value)
    return text[:19] if text.startswith("sha256:") else text


# ------------------------------------------------------------------------------------------- the record


@dataclass
class SharedRecord:
    """What ``<state_dir>/shared/<key>.json`` says about a shared stack (no secrets)."""

    run_id: str
    digest: str
    inputs: dict[str, Any]
    services: list[str]
    persist: bool
    host: str = field(default_factory=socket.gethostname)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    users: list[int] = field(default_factory=list)
    attaches: int = 0
    report: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> SharedRecord | None:
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        write_file(path, json.dumps(asdict(self), indent=2, default=str))

    def live_users(self) -> list[int]:
        if self.host != socket.gethostname():
            return list(self.users)
        return [pid for pid in self.users if _pid_alive(pid)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def shared_dir(state_dir: Path) -> Path:
    path = state_dir / "shared"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@contextlib.contextmanager
def file_lock(path: Path, shared: bool = False) -> Iterator[None]:
    """An advisory lock on ``path`` (created 0600) for the block: exclusive, or shared with ``shared``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def stack_access(state_dir: Path, key: str, exclusive: bool) -> Iterator[None]:
    """Readers-writer lock over a shared stack: tests take it shared, destructive tests (restarts, rotations,
    restores) exclusive, so no other worker's test runs while one of them changes the stack. A writer holds the
    gate while it waits, so new readers queue behind it instead of starving it."""
    directory = shared_dir(state_dir)
    gate, rw = directory / f"{key}.gate", directory / f"{key}.rw"
    if exclusive:
        with file_lock(gate), file_lock(rw):
            yield
        return
    with file_lock(gate):
        fd = os.open(rw, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        yield
    finally:
        os.close(fd)


def generation(state_dir: Path, key: str) -> int:
    """How many destructive tests have changed the shared stack so far (its ``<key>.gen`` file)."""
    try:
        return int((shared_dir(state_dir) / f"{key}.gen").read_text() or 0)
    except (OSError, ValueError):
        return 0


def bump_generation(state_dir: Path, key: str) -> int:
    """Count one more change (call while holding the exclusive :func:`stack_access`)."""
    value = generation(state_dir, key) + 1
    write_file(shared_dir(state_dir) / f"{key}.gen", str(value))
    return value


# --------------------------------------------------------------------------------------------- the engine


class Engine(Protocol):
    """What the shared stack needs from the engine (a fake in the plugin's self-tests)."""

    def images(self, settings: Settings, services: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def start(self, settings: Settings, services: Sequence[str], labels: Mapping[str, str], log: Log) -> Any: ...

    def adopt(self, settings: Settings, record: SharedRecord, log: Log) -> Any: ...

    def remove(self, settings: Settings, run_id: str) -> None: ...


class DockerEngine:
    """The real engine: :class:`~harness.stacks.engine.Stack` on the Docker engine."""

    def images(self, settings: Settings, services: Sequence[str]) -> dict[str, dict[str, Any]]:
        resolver = ImageResolver(docker_client(), settings)
        found = {}
        for name in with_dependencies(services):
            image = resolver.resolve(name)
            found[name] = {"ref": image.ref, "id": image.image_id, "source": image.source}
        return found

    def start(self, settings: Settings, services: Sequence[str], labels: Mapping[str, str], log: Log) -> Stack:
        stack = Stack(settings, keep=True, log=log, labels=labels)
        try:
            images = stack.resolve(services)
            log(f"run {stack.run_id}, image set {settings.images}: "
                + ", ".join(f"{n}={r.ref} ({r.source})" for n, r in images.items()))
            stack.start(services)
        except BaseException:
            remove_run(stack.client, stack.run_id)
            raise
        return stack

    def adopt(self, settings: Settings, record: SharedRecord, log: Log) -> Stack:
        return adopt(settings, record, log)

    def remove(self, settings: Settings, run_id: str) -> None:
        client = docker_client()
        remove_run(client, run_id)
        prune_run_state(client, settings.state_dir, settings.keep_run_state, finished={run_id})


ENGINE: Engine = DockerEngine()


# ------------------------------------------------------------------------------------------ attaching


def adopt(settings: Settings, record: SharedRecord, log: Log) -> Stack:
    """The running stack of ``record`` as a :class:`Stack`; :class:`Unhealthy` says why it cannot be used."""
    client = docker_client()
    stack = Stack(settings, keep=True, log=log, client=client, run_id=record.run_id)
    state_dir = stack.state_dir
    if not (state_dir / "vault-bootstrap.json").is_file() or not (state_dir / "vault-init.json").is_file():
        raise Unhealthy(f"its private run state is gone ({state_dir})")
    labelled = {"label": f"{LABEL_RUN_ID}={record.run_id}"}
    containers = {c.name: c for c in client.containers.list(all=True, filters=labelled)}
    if not containers:
        raise Unhealthy("its containers are gone (removed by `python -m harness down`?)")
    for name, container in sorted(containers.items()):
        if container.status != "running":
            raise Unhealthy(f"container {name} is {container.status}")
    networks = client.networks.list(filters=labelled)
    if not networks:
        raise Unhealthy("its network is gone")
    labels = {k: v for k, v in next(iter(containers.values())).labels.items() if k != LABEL_SERVICE}
    stack.report = _report(record)
    bootstrap = BootstrapResult.load(state_dir / "vault-bootstrap.json")
    init = VaultInit.load(state_dir / "vault-init.json")
    register_fields(init)
    register_fields(bootstrap)
    pki = state_dir / "pki"
    stack.ca = CaChain(root=(pki / "root-ca.pem").read_text(), intermediate=(pki / "intermediate-ca.pem").read_text(),
                       directory=pki)
    stack.vault_bootstrap = bootstrap
    stack._network = _network(networks[0])
    ctx = RunContext(run_id=record.run_id, labels=labels, network=stack._network,
                     ready_timeout=settings.ready_timeout, ca_file=str((pki / "root-ca.pem").resolve()))
    stack._ctx = ctx
    for name, error in record.errors.items():
        stack.errors[name] = HarnessError(error)
    wanted = [n for n in with_dependencies(record.services) if n not in record.errors
              and stack.unavailable_reason(n) is None]
    if not _bind_services(stack, ctx, containers, wanted, init):
        raise Unhealthy("Vault is sealed")
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        refusals = [r for r in pool.map(lambda n: _login_refusal(n, stack.services[n]), wanted) if r]
    if refusals:
        raise Unhealthy(refusals[0])
    return stack


def refresh(stack: Stack) -> None:
    """Rebuild the service objects of a shared stack from what Vault and the run state hold now: another process
    rotated a password or a certificate (each process's objects keep what they were built with)."""
    ctx, bootstrap = stack._ctx, stack.vault_bootstrap
    if ctx is None or bootstrap is None:
        return
    containers = {c.name: c for c in stack.client.containers.list(
        all=True, filters={"label": f"{LABEL_RUN_ID}={stack.run_id}"})}
    _bind_services(stack, ctx, containers, list(stack.services), VaultInit.load(stack.state_dir / "vault-init.json"))


def _bind_services(stack: Stack, ctx: RunContext, containers: Mapping[str, Any], wanted: Sequence[str],
                   init: VaultInit) -> bool:
    """Make every service object of ``wanted`` with its module's factory and bind it to its running containers;
    False (and nothing bound) when Vault is sealed."""
    assert stack.vault_bootstrap is not None
    bootstrap = stack.vault_bootstrap
    vault = _make(stack, "vault", {}, ctx, containers)
    if not isinstance(vault, VaultContainer):
        raise Unhealthy("the vault module's factory did not make a Vault container")
    vault.init_result = init
    vault.admin_token = bootstrap.admin_token
    if vault.health().get("sealed", True):
        return False
    others = [n for n in wanted if n != "vault"]
    with ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
        made = dict(zip(others, pool.map(lambda n: _make(stack, n, _secret(vault.url, bootstrap, n), ctx,
                                                         containers), others), strict=True))
    stack._vault = vault
    stack.services["vault"] = vault
    stack.services.update(made)
    return True


def _report(record: SharedRecord) -> StackReport:
    data = record.report
    known = {f.name for f in dataclasses.fields(ServiceRecord)}
    report = StackReport(run_id=record.run_id, image_set=str(data.get("image_set", "")),
                         requested=list(data.get("requested", [])), started=list(data.get("started", [])),
                         total_start_s=data.get("total_start_s"))
    for name, rec in (data.get("services") or {}).items():
        report.services[name] = ServiceRecord(**{k: v for k, v in rec.items() if k in known})
    return report


def _network(docker_network: Any) -> Any:
    """A testcontainers Network object for an existing network (what the containers' run context holds)."""
    from testcontainers.core.network import Network

    network = Network()
    network.name = docker_network.name
    network._network = docker_network
    return network


def _secret(vault_url: str, bootstrap: BootstrapResult, name: str) -> dict[str, Any]:
    """The service's KV document as Vault holds it now, read with the service's own AppRole."""
    creds = bootstrap.approles[name]
    client = approle_login(vault_url, creds["role_id"], creds["secret_id"])
    secret: dict[str, Any] = client.secrets.kv.v2.read_secret_version(
        path=name, mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    register_fields(secret)
    return secret


def _tls(stack: Stack, name: str) -> TlsMaterial | None:
    """The certificate the run last installed for the service (its private run state)."""
    directory = stack.state_dir / "pki" / name
    if not (directory / "key.pem").is_file() or stack.ca is None:
        return None
    key = (directory / "key.pem").read_text()
    register_fields({"private_key": key})
    return TlsMaterial(certificate=(directory / "cert.pem").read_text(), private_key=key, ca_chain=stack.ca.chain,
                       root_ca=stack.ca.root, serial=(directory / "serial").read_text().strip())


def _make(stack: Stack, name: str, secret: Mapping[str, Any], ctx: RunContext, containers: Mapping[str, Any]) -> Any:
    """The service's object from its own factory, bound to its running containers."""
    rec = stack.report.services.get(name)
    if rec is None or not rec.image:
        raise Unhealthy(f"the kept stack's report does not name {name}'s image")
    spec = registry.get(name)
    tls = _tls(stack, name) if name == "vault" or secret.get("tls_enabled") is True else None
    options = {key: getattr(stack.settings, key) for key in spec.settings}
    service = spec.driver.make(MakeRequest(image=rec.image, ctx=ctx, secret=secret, tls=tls,
                                           strict=secret.get("tls_strict") is True, options=options,
                                           state_dir=stack.state_dir))
    for container in _containers_of(service):
        running = containers.get(str(container._name))
        if running is None:
            raise Unhealthy(f"container {container._name} ({name}) is gone")
        container._container = running
        if name == "vault" and tls is not None:
            container.tls = tls
    return service


def _containers_of(service: Any) -> list[LoopbackContainer]:
    """The container objects a service object is made of (itself, or attributes holding them, e.g. the nodes of
    a Redis cluster)."""
    if isinstance(service, LoopbackContainer):
        return [service]
    found: list[LoopbackContainer] = []
    for value in vars(service).values():
        if isinstance(value, LoopbackContainer):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += [v for v in value if isinstance(v, LoopbackContainer)]
    if not found:
        raise Unhealthy(f"{type(service).__name__} holds no container objects to bind")
    return found


def _login_refusal(name: str, service: Any) -> str | None:
    """None when the service takes its login probe (the readiness check of a fresh start), else why not."""
    try:
        if registry.get(name).driver.login(service.endpoint()):
            return None
        return f"{name} refused its login probe"
    except Exception as exc:  # the reason for a fresh stack, not an error of this run
        return redact(f"{name} refused its login probe: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


# -------------------------------------------------------------------------------------- the shared stack


def key_for(reuse: bool, testrunuid: str | None) -> str | None:
    """The shared stack's key: ``reuse`` across runs, one per xdist run, or None (a private stack)."""
    if reuse:
        return REUSE_KEY
    if testrunuid:
        return f"xdist-{testrunuid}"
    return None


@dataclass
class SharedStack:
    """One process's use of a shared stack: :meth:`acquire` attaches or starts, :meth:`release` lets go.

    Args:
        settings: the session's settings.
        services: the services the selected tests need (dependencies included).
        key: :func:`key_for`.
        persist: keep the stack after the last user (``--reuse``).
        owner_pid: the process named as owner in the labels of a stack started here (the xdist controller for
            a per-run stack, so ``down --stale`` leaves it alone while the run lasts).
        keep: ``--keep-stack``: the last user leaves a per-run stack running too (labelled keep=true).
    """

    settings: Settings
    services: list[str]
    key: str
    persist: bool
    log: Log
    owner_pid: int = field(default_factory=os.getpid)
    engine: Engine | None = None
    keep: bool = False
    record: SharedRecord | None = None
    outcome: str = ""  # started | attached | replaced | private
    why: str = ""
    attach_s: float | None = None
    stack: Any = None
    private: bool = False

    @property
    def _engine(self) -> Engine:
        return self.engine or ENGINE

    @property
    def record_path(self) -> Path:
        return shared_dir(self.settings.state_dir) / f"{self.key}.json"

    def acquire(self) -> Any:
        t0 = time.monotonic()
        engine = self._engine
        with file_lock(shared_dir(self.settings.state_dir) / f"{self.key}.lock"):
            images = engine.images(self.settings, self.services)
            inputs = config_inputs(self.settings, self.services, images, harness_version())
            digest = config_digest(inputs)
            record = SharedRecord.load(self.record_path)
            if record is not None:
                why = self._why_not(record, digest, inputs)
                if why is None:
                    try:
                        self.stack = engine.adopt(self.settings, record, self.log)
                    except Unhealthy as exc:
                        why = str(exc)
                    except Exception as exc:  # anything else that stops an attach: start afresh, say what
                        why = redact(f"attaching failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                if self.stack is not None:
                    self.outcome = "attached"
                    self.attach_s = round(time.monotonic() - t0, 3)
                    self.log(f"reuse: attached to {'kept' if record.persist else 'shared'} stack {record.run_id} "
                             f"(configuration {digest[:12]} unchanged) in {self.attach_s:.2f}s")
                elif [u for u in record.live_users() if u != os.getpid()]:
                    # Another process uses it right now: never pull it from under that one.
                    self.outcome, self.private, self.why = "private", True, why or ""
                    self.log(f"reuse: shared stack {record.run_id} not usable here: {why}; starting a private one")
                    self.stack = engine.start(self.settings, self.services, {LABEL_KEEP: "false"}, self.log)
                    return self.stack
                else:
                    self.why = why or ""
                    self.outcome = "replaced"
                    self.log(f"reuse: kept stack {record.run_id} not reused: {why}; removed it, starting a fresh one")
                    engine.remove(self.settings, record.run_id)
                    self.record_path.unlink(missing_ok=True)
                    record = None
            if record is None:
                if not self.outcome:
                    self.outcome = "started"
                    if self.persist:
                        self.log("reuse: no kept stack; starting one (kept at exit for the next --reuse run)")
                labels = {LABEL_KEEP: "true"} if self.persist or self.keep else {
                    LABEL_KEEP: "false", LABEL_OWNER_PID: str(self.owner_pid)}
                self.stack = engine.start(self.settings, self.services, labels, self.log)
                record = SharedRecord(run_id=self.stack.run_id, digest=digest, inputs=inputs,
                                      services=list(self.services), persist=self.persist,
                                      report=self.stack.report.to_json(),
                                      errors={n: redact(f"{type(e).__name__}: {e}")
                                              for n, e in getattr(self.stack, "errors", {}).items()})
            else:
                record.attaches += 1
            record.users = [*record.live_users(), os.getpid()]
            record.save(self.record_path)
            self.record = record
        return self.stack

    def _why_not(self, record: SharedRecord, digest: str, inputs: Mapping[str, Any]) -> str | None:
        if record.persist != self.persist:
            return "it was shared by one run only"
        if record.digest != digest:
            return f"configuration changed ({describe_mismatch(record.inputs, inputs)})"
        return None

    def release(self) -> str:
        """Stop using the stack; the last user removes it unless it persists or is kept. Returns what was done."""
        if self.stack is None:
            return "none"
        engine = self._engine
        if self.private:
            engine.remove(self.settings, self.stack.run_id)
            return "removed (private)"
        with file_lock(shared_dir(self.settings.state_dir) / f"{self.key}.lock"):
            record = SharedRecord.load(self.record_path)
            if record is None or record.run_id != self.stack.run_id:
                return "gone"  # removed by `down` or replaced meanwhile
            record.users = [u for u in record.live_users() if u != os.getpid()]
            if record.users:
                record.save(self.record_path)
                return "left to other users"
            if self.persist:
                record.save(self.record_path)
                return "kept"
            if self.keep:
                self.record_path.unlink(missing_ok=True)
                return "kept (--keep-stack: remove with `python -m harness down`)"
            engine.remove(self.settings, record.run_id)
            self.record_path.unlink(missing_ok=True)
            if not self.persist:  # this run's lock files go with it (every user is done; the key is this run's)
                for suffix in ("gate", "rw", "gen", "lock"):  # "lock" is held here: unlinking it is safe on POSIX
                    (self.record_path.parent / f"{self.key}.{suffix}").unlink(missing_ok=True)
            return "removed"


def forget_all(state_dir: Path) -> bool:
    """Delete the record of the kept ``--reuse`` stack (``down`` removed its containers); whether there was one.
    Records of stacks shared by a running xdist run are theirs to remove."""
    path = state_dir / "shared" / f"{REUSE_KEY}.json"
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed


def process_start_time() -> float:
    """When this process started (epoch seconds; Linux ``/proc``), else now."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()
