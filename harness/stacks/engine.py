"""The engine: a dependency graph of services started concurrently, with timings and cleanup.

Vault is the root of every other service (later issues hand each service its Vault-issued credentials and
certificate before its container is created), so the graph is Vault -> everything else, and everything else
starts in parallel once Vault is unsealed. Each service's time-to-ready runs from the moment its start was
submitted to the moment its readiness probe (a real login through the published port) succeeded.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors
import hvac
from docker import DockerClient
from docker.models.containers import Container
from testcontainers.core.network import Network

from harness.images import ImageResolver, ResolvedImage
from harness.reports.redact import register_fields
from harness.settings import Settings
from harness.stacks.docker_env import configure_testcontainers, docker_client
from harness.stacks.runstate import prune_run_state, write_owner
from harness.trust.bootstrap import BootstrapResult, bootstrap, fetch_material
from harness.trust.certs import install_tls, reload_tls
from harness.trust.pki import CaChain, ServiceMaterial, export_ca, write_service_pem
from stack import registry
from stack.base import (
    LABEL_KEEP,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_RUN_ID,
    RunContext,
    Service,
    TlsMaterial,
)
from stack.errors import ConfigError, HarnessError, ImageMissing, ServiceStartError
from stack.files import write_file
from stack.service import MakeRequest
from stack.vault import VaultContainer, VaultInit

Log = Callable[[str], None]

#: service -> the services it needs running first: each module's ``SPEC.depends_on``, read at each access so a
#: service added with ``stack.registry.register`` is in the graph.
DEPENDENCIES: Mapping[str, tuple[str, ...]] = registry.view(lambda spec: spec.depends_on)


def validate_services(names: Iterable[str]) -> list[str]:
    """Check service names; raise ConfigError listing the valid ones."""
    result = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in DEPENDENCIES:
            raise ConfigError(f"unknown service {raw!r}; valid services: {', '.join(registry.names())}")
        if name not in result:
            result.append(name)
    return result


def network_aliases(settings: Settings) -> dict[str, list[str]]:
    """The network aliases of each service's containers in a test stack with these settings (its driver's
    ``aliases``: every node of a cluster; by default the service name)."""
    return {spec.name: list(spec.driver.aliases({key: getattr(settings, key) for key in spec.settings}))
            for spec in registry.specs()}


def with_dependencies(services: Iterable[str]) -> list[str]:
    """The services plus everything they depend on, in a valid start order (dependencies first)."""
    ordered: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            raise ConfigError(f"dependency cycle: {' -> '.join((*trail, name))}")
        for dep in DEPENDENCIES[name]:
            visit(dep, (*trail, name))
        if name not in ordered:
            ordered.append(name)

    for svc in validate_services(services):
        visit(svc, ())
    return ordered


def start_layers(services: Iterable[str]) -> list[list[str]]:
    """Services grouped into layers that can start concurrently (each layer needs only earlier ones)."""
    remaining = with_dependencies(services)
    done: set[str] = set()
    layers: list[list[str]] = []
    while remaining:
        layer = [s for s in remaining if set(DEPENDENCIES[s]) <= done]
        layers.append(layer)
        done.update(layer)
        remaining = [s for s in remaining if s not in done]
    return layers


def new_run_id() -> str:
    """Sortable by time, unique across processes: UTC timestamp plus random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass
class ServiceRecord:
    """What happened to one service in this run."""

    service: str
    status: str = "pending"  # pending | ready | failed | unavailable
    image: str | None = None
    image_id: str | None = None
    image_source: str | None = None
    image_reason: str = ""
    expected_version: str | None = None  # the version prefix the image's server must report (its line's)
    submitted_s: float | None = None  # seconds since the stack start began
    ready_s: float | None = None
    time_to_ready_s: float | None = None
    error: str | None = None
    bootstrap_s: dict[str, float] | None = None  # Vault only: seconds per bootstrap step
    bootstrap_started_s: float | None = None  # Vault only: when its bootstrap began (steps follow in order)


@dataclass
class StackReport:
    run_id: str
    image_set: str
    requested: list[str]
    started: list[str] = field(default_factory=list)
    total_start_s: float | None = None
    services: dict[str, ServiceRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report, plus the parallel-start benchmark: total / (vault + slowest other service), and the
        serial sum (every time-to-ready added up) for comparison."""
        data = asdict(self)
        vault = self.services.get("vault")
        others = [r.time_to_ready_s or 0.0 for n, r in self.services.items() if n != "vault"]
        if vault and vault.time_to_ready_s and self.total_start_s:
            bound = vault.time_to_ready_s + max(others, default=0.0)
            data["benchmark"] = {"vault_s": vault.time_to_ready_s, "slowest_other_s": max(others, default=0.0),
                                 "bound_s": round(bound, 3), "serial_s": round(vault.time_to_ready_s + sum(others), 3)}
            data["parallel_ratio"] = round(self.total_start_s / bound, 3)
        return data


class Stack:
    """A set of services for one run: resolve images, start along the graph, expose endpoints, clean up.

    Args:
        settings: resolved harness settings.
        keep: leave containers running after this process exits (``harness up``, a shared stack).
        labels: labels that replace the defaults on containers and network (a shared stack: keep flag, owner).
        log: where progress lines go.
        client: a docker client (the default engine when omitted).
    """

    def __init__(self, settings: Settings, *, keep: bool = False, log: Log | None = None,
                 client: DockerClient | None = None, run_id: str | None = None,
                 labels: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.keep = keep
        self.log: Log = log or (lambda _: None)
        self.client = client or docker_client()
        configure_testcontainers(self.client)
        self.run_id = run_id or new_run_id()
        self.state_dir = settings.state_dir / "runs" / self.run_id
        self.resolver = ImageResolver(self.client, settings)
        self.report = StackReport(run_id=self.run_id, image_set=settings.images, requested=[])
        self.services: dict[str, Service] = {}
        self.errors: dict[str, HarnessError | Exception] = {}
        self.failed_logs: dict[str, str] = {}
        self.vault_bootstrap: BootstrapResult | None = None
        self.ca: CaChain | None = None
        self._vault: VaultContainer | None = None
        self._network: Network | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._ctx: RunContext | None = None
        self.extra_labels = dict(labels or {})  # e.g. a shared stack's keep flag and owner (harness.stacks.reuse)
        if not keep:
            atexit.register(self.close)

    # ---------------------------------------------------------------------------------------- planning

    def resolve(self, services: Iterable[str]) -> dict[str, ResolvedImage]:
        """Resolve the image of every service needed (with dependencies); record it in the report."""
        resolved = {}
        for name in with_dependencies(services):
            if name in self.report.services and self.report.services[name].image_source:
                continue
            image = self.resolver.resolve(name)
            resolved[name] = image
            rec = self.report.services.setdefault(name, ServiceRecord(name))
            rec.image, rec.image_id, rec.image_source, rec.image_reason, rec.expected_version = (
                image.ref, image.image_id, image.source, image.reason, image.version)
            if not image.available:
                rec.status = "unavailable"
                rec.error = image.reason
        return resolved

    def unavailable_reason(self, name: str) -> str | None:
        rec = self.report.services.get(name)
        return rec.error if rec is not None and rec.status == "unavailable" else None

    # ---------------------------------------------------------------------------------------- starting

    def start(self, services: Iterable[str]) -> None:
        """Start the services (and their dependencies) that are not running yet, concurrently.

        Image problems fail fast (before any container starts) except for a service whose image simply does
        not exist here and that nothing else needs (a spec with ``image_optional``, such as MongoDB): that one is
        recorded as unavailable so its tests can skip with the reason. A service that fails to start is recorded; the
        first failure is re-raised by :meth:`require`.
        """
        wanted = with_dependencies(services)
        self.report.requested = sorted(set(self.report.requested) | set(validate_services(services)))
        self.resolve(wanted)
        for name in wanted:
            reason = self.unavailable_reason(name)
            if reason and (not registry.get(name).image_optional or any(name in DEPENDENCIES[o] for o in wanted)):
                raise ImageMissing(reason)
        todo = [s for s in wanted if s not in self.services and s not in self.errors
                and self.unavailable_reason(s) is None]
        if not todo:
            return
        ctx = self._context()
        t0 = time.monotonic()
        self._run_graph(todo, ctx, t0)
        if self.report.total_start_s is None:
            self.report.total_start_s = round(time.monotonic() - t0, 3)

    def _context(self) -> RunContext:
        if self._ctx is None:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.state_dir, 0o700)
            write_owner(self.state_dir, keep=self.keep)  # protects it from pruning until its containers exist
            labels = {LABEL_RUN_ID: self.run_id, LABEL_OWNER_PID: str(os.getpid()),
                      LABEL_OWNER_HOST: socket.gethostname(), LABEL_KEEP: "true" if self.keep else "false",
                      **self.extra_labels}
            self._network = Network(docker_network_kw={"labels": labels}).create()
            self._ctx = RunContext(run_id=self.run_id, labels=labels, network=self._network,
                                   ready_timeout=self.settings.ready_timeout,
                                   ca_file=str((self.state_dir / "pki" / "root-ca.pem").resolve()))
        return self._ctx

    def _run_graph(self, todo: list[str], ctx: RunContext, t0: float) -> None:
        pending = list(todo)
        running: dict[Future[None], str] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
            while pending or running:
                for name in list(pending):
                    deps = DEPENDENCIES[name]
                    failed = [d for d in deps if d in self.errors]
                    if failed:
                        pending.remove(name)
                        self._fail(name, ServiceStartError(f"{name} not started: {failed[0]} failed to start"))
                    elif all(d in self.services for d in deps):
                        pending.remove(name)
                        running[pool.submit(self._start_one, name, ctx, t0)] = name
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)

    def _start_one(self, name: str, ctx: RunContext, t0: float) -> None:
        rec = self.report.services[name]
        rec.submitted_s = round(time.monotonic() - t0, 3)
        self.log(f"{name}: starting {rec.image} ({rec.image_source})")
        try:
            service = self._make(name, rec.image or "", ctx)
        except Exception as exc:  # e.g. Vault refused the AppRole login: nothing was created
            self._fail(name, exc)
            return
        try:
            service.start()
            if isinstance(service, VaultContainer):
                rec.bootstrap_started_s = round(time.monotonic() - t0, 3)
                self._bootstrap_vault(service, rec)
        except Exception as exc:  # recorded per service; re-raised by require()
            self._fail(name, exc)
            try:
                self.failed_logs[name] = service.logs(60)
            except Exception as log_exc:  # the container may never have been created
                self.failed_logs[name] = f"(no logs: {log_exc})"
            return
        rec.ready_s = round(time.monotonic() - t0, 3)
        rec.time_to_ready_s = round(rec.ready_s - rec.submitted_s, 3)
        rec.status = "ready"
        with self._lock:
            self.services[name] = service
            self.report.started.append(name)
        self.log(f"{name}: ready in {rec.time_to_ready_s:.1f}s")

    def _fail(self, name: str, exc: Exception) -> None:
        with self._lock:
            self.errors[name] = exc
        rec = self.report.services[name]
        rec.status = "failed"
        rec.error = f"{type(exc).__name__}: {exc}"
        self.log(f"{name}: FAILED: {rec.error.splitlines()[0][:300]}")

    def _bootstrap_vault(self, vault: VaultContainer, rec: ServiceRecord) -> None:
        """PKI, KV, policies and AppRoles (root token revoked at the end); export the CA chain."""
        assert vault.init_result is not None
        register_fields(vault.init_result)  # unseal keys and root token: redacted from every output
        s = self.settings
        client = hvac.Client(url=vault.url, token=vault.init_result.root_token, timeout=30)
        result = bootstrap(client, services=list(registry.names()), internal_url=f"http://{vault.alias}:8200",
                           pki=s.pki(), approle=s.approle(), aliases=network_aliases(s),
                           tls_strict=s.tls_strict)
        register_fields(result)  # admin token and AppRole secret-ids
        result.save(self.state_dir / "vault-bootstrap.json")
        vault.admin_token = result.admin_token
        self.vault_bootstrap = result
        self._vault = vault
        self.ca = export_ca(vault.url, self.state_dir / "pki")
        # Vault's HTTPS listener: swap the placeholder for a certificate from Vault's own PKI (its AppRole).
        t0 = time.monotonic()
        tls = self._tls_material(self.material("vault"))
        install_tls("vault", tls, [vault.get_wrapped_container()])
        vault.use_tls(tls)
        reload_tls("vault", vault.endpoint(), vault.get_wrapped_container(), self.settings.ready_timeout)
        result.timings["https listener"] = round(time.monotonic() - t0, 3)
        result.timings["total"] = round(result.timings["total"] + result.timings["https listener"], 3)
        rec.bootstrap_s = result.timings

    def material(self, name: str) -> ServiceMaterial:
        """The service's credentials and certificate, fetched with its own AppRole (not an admin token)."""
        vault = self._vault
        if self.vault_bootstrap is None or vault is None:
            raise ServiceStartError(f"{name} needs Vault's bootstrap, which has not run")
        material = fetch_material(vault.url, name, self.vault_bootstrap.approles[name],
                                  self.vault_bootstrap.names[name])
        register_fields(material)  # passwords and private key
        write_service_pem(self.state_dir / "pki" / name, material)
        return material

    def _make(self, name: str, image: str, ctx: RunContext) -> Service:
        """The service's container, from its driver's ``make``."""
        spec = registry.get(name)
        secret: Mapping[str, Any] = {}
        tls: TlsMaterial | None = None
        if name != "vault":  # the root of trust: its material does not exist before its own bootstrap
            material = self.material(name)
            secret = material.secret
            # Vault's KV holds the TLS switches (JSON booleans); the harness settings only seeded them.
            tls = self._tls_material(material) if secret.get("tls_enabled") is True else None
        options = {key: getattr(self.settings, key) for key in spec.settings}
        service: Service = spec.driver.make(MakeRequest(image=image, ctx=ctx, secret=secret, tls=tls,
                                            strict=secret.get("tls_strict") is True, options=options,
                                            state_dir=self.state_dir))
        return service

    def _tls_material(self, material: ServiceMaterial) -> TlsMaterial:
        assert self.ca is not None
        return material.tls(self.ca)

    # ------------------------------------------------------------------------------------------- access

    def require(self, name: str) -> Service:
        """The running service, or the error that kept it from running."""
        if name in self.services:
            return self.services[name]
        if name in self.errors:
            err = self.errors[name]
            raise ServiceStartError(f"{name} failed to start: {err}") from err
        raise ServiceStartError(f"{name} was not started in this run")

    def endpoint(self, name: str) -> Any:
        return self.require(name).endpoint()

    def expected_version(self, name: str) -> str | None:
        """The version prefix the service's server must report, or None for an override image."""
        rec = self.report.services.get(name)
        return rec.expected_version if rec is not None else None

    # The rest of harness.stacks.running.RunningStack: what certs, credentials and backup use.

    @property
    def ready_timeout(self) -> float:
        return self.settings.ready_timeout

    def running(self) -> list[str]:
        return list(self.services)

    def containers(self, name: str) -> list[Container]:
        return [self.client.containers.get(cid) for cid in self.require(name).container_ids()]

    def record_tls(self, name: str, tls: TlsMaterial) -> None:
        self.require(name).use_tls(tls)

    def record_password(self, name: str, new: str) -> None:
        self.require(name).use_password(new)

    def adopt_vault(self, init: dict[str, Any], bootstrap: dict[str, Any]) -> None:
        vault = self._vault
        if vault is None:
            raise ServiceStartError("vault was not started in this run")
        vault.init_result = VaultInit(keys=list(init["keys"]), root_token=str(init["root_token"]),
                                      shares=int(init["shares"]), threshold=int(init["threshold"]))
        vault.init_result.save(vault.keys_file)
        result = BootstrapResult(**bootstrap)
        result.save(self.state_dir / "vault-bootstrap.json")
        vault.admin_token = result.admin_token
        self.vault_bootstrap = result

    def logs(self, name: str, tail: int = 200) -> str:
        if name in self.services:
            return self.services[name].logs(tail)
        return self.failed_logs.get(name, "")

    # ------------------------------------------------------------------------------------------ cleanup

    def close(self) -> None:
        """Remove every container and the network of this run (idempotent), then the private state of
        finished runs beyond the newest ``keep_run_state`` (this one included)."""
        if self._closed or self.keep:
            return
        self._closed = True
        remove_run(self.client, self.run_id)
        prune_run_state(self.client, self.settings.state_dir, self.settings.keep_run_state, finished={self.run_id})

    def write_state(self) -> Path:
        """Write endpoints and the report to ``<state>/stack.json`` (0600) for ``status``/``down``."""
        path = self.state_dir / "stack.json"
        data = {"run_id": self.run_id, "keep": self.keep, "report": self.report.to_json(),
                "endpoints": {n: asdict(s.endpoint()) for n, s in self.services.items()}}
        write_file(path, json.dumps(data, indent=2, default=str))
        return path


def remove_run(client: DockerClient, run_id: str) -> int:
    """Remove all containers and networks labelled with ``run_id``; returns the number of containers."""
    return _remove_where(client, {"label": f"{LABEL_RUN_ID}={run_id}"})


def _remove_where(client: DockerClient, filters: Mapping[str, Any], keep: Callable[[Any], bool] | None = None) -> int:
    removed = 0
    for container in client.containers.list(all=True, filters=dict(filters)):
        if keep is not None and keep(container):
            continue
        try:
            container.remove(force=True, v=True)
            removed += 1
        except docker.errors.NotFound:
            pass
    for network in client.networks.list(filters=dict(filters)):
        if keep is not None and keep(network):
            continue
        # APIError: still in use by a container we kept; it goes with its run.
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.remove()
    return removed


def _owner_alive(labels: Mapping[str, str]) -> bool:
    if labels.get(LABEL_OWNER_HOST) != socket.gethostname():
        return True  # another machine's run: not ours to judge
    try:
        os.kill(int(labels.get(LABEL_OWNER_PID, "0")), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def is_stale(obj: Any) -> bool:
    """A container or network that a killed run left behind: not kept, and its owning process is gone."""
    labels = obj.attrs.get("Config", {}).get("Labels") or obj.attrs.get("Labels") or {}
    return labels.get(LABEL_KEEP) != "true" and not _owner_alive(labels)


def remove_stale(client: DockerClient) -> int:
    """Remove what killed runs left behind: non-kept runs whose owning process is gone."""
    return _remove_where(client, {"label": LABEL_RUN_ID}, keep=lambda obj: not is_stale(obj))


def remove_kept(client: DockerClient) -> int:
    """Remove stacks started by ``harness up`` (labelled keep=true)."""
    return _remove_where(client, {"label": f"{LABEL_KEEP}=true"})


if TYPE_CHECKING:  # mypy proves here that the test stack implements the protocol directly
    from harness.stacks.running import RunningStack

    def _is_a_running_stack(stack: Stack) -> RunningStack:
        return stack
