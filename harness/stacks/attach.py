"""Attach mode: the suites check the running compose stack instead of starting containers.

:class:`AttachedStack` is a :class:`~harness.stacks.running.RunningStack` like the test stack (endpoints, the
Vault bootstrap record and CA, containers, logs, expected versions, what rotations change), built from the
compose project's containers (published ports, network addresses) and from Vault: credentials are read
with each service's own AppRole every time an endpoint is asked for, so an endpoint always carries what
Vault holds now. A password or certificate changed while it runs (``record_password``, ``record_tls``) is also
written back to ``certs/compose/``, so the next restart of the container comes up with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from docker import DockerClient
from docker.models.containers import Container

from harness.settings import Settings
from harness.stacks.compose import (
    COMPOSE_SERVICES,
    ComposeLayout,
    ComposeState,
    host_port,
    install_live,
    kept_tls,
    network_ip,
    project_containers,
    read_secret,
    service_files,
    write_material,
)
from harness.stacks.docker_env import docker_client
from harness.stacks.engine import ServiceRecord, StackReport
from harness.stacks.running import Endpoint, RunningStack, containers_logs, recorded_version
from harness.trust.bootstrap import BootstrapResult
from harness.trust.pki import CaChain
from stack import registry, vault
from stack.base import TlsMaterial
from stack.errors import ComposeError, ServiceStartError
from stack.files import write_file
from stack.service import PublishedService
from stack.vault import VAULT_PORT, VaultInit
from stack.waiting import poll

Log = Callable[[str], None]


def published(name: str, layout: ComposeLayout, containers: Mapping[str, Container], secret: Mapping[str, Any],
              admin_token: str) -> PublishedService:
    """One service of the compose stack as its module's compose operations see it (``PublishedService``)."""
    spec = registry.get(name)
    serial = (layout.service_dir(name) / "serial").read_text().strip()
    return PublishedService(
        names=spec.compose_services, port=lambda cname, port: host_port(containers[cname], port),
        ip=lambda cname: network_ip(containers[cname]), container_name=lambda cname: str(containers[cname].name),
        secret=secret, serial=serial, ca_file=str(layout.state_dir / "pki" / "root-ca.pem"), admin_token=admin_token,
        container=lambda cname: containers[cname])


def build_endpoint(name: str, layout: ComposeLayout, containers: Mapping[str, Container],
                   secret: Mapping[str, Any], admin_token: str) -> Endpoint:
    """The endpoint of one service of the compose stack, built by its driver (``compose_endpoint``)."""
    return registry.get(name).driver.compose_endpoint(published(name, layout, containers, secret, admin_token))


def probe(name: str, endpoint: Endpoint) -> bool:
    """A real login from the host with the credentials Vault holds (what the test stacks' readiness does)."""
    return registry.get(name).driver.login(endpoint)


class ComposeService:
    """One service of the compose stack, as the suites see a test stack's service object."""

    def __init__(self, stack: AttachedStack, name: str) -> None:
        self.stack = stack
        self.name = name

    def containers(self) -> list[Container]:
        return self.stack.containers(self.name)

    def container_ids(self) -> list[str]:
        return [c.id for c in self.containers() if c.id]

    def logs(self, tail: int = 200) -> str:
        return self.stack.logs(self.name, tail)

    def endpoint(self) -> Endpoint:
        return self.stack.endpoint(self.name)

    # Vault only: the restart drill of suites/vault/test_vault_restart.py
    def restart(self, timeout: float | None = None) -> dict[str, Any]:
        container = self.containers()[0]
        container.restart(timeout=10)
        deadline = timeout or self.stack.settings.ready_timeout
        url = self.endpoint().url
        poll(lambda: vault.listener_answers(url), what="Vault's API to answer again after a restart",
             timeout=deadline, accept=bool, hint="read `compose logs vault`")
        return vault.health(url)

    def unseal(self, timeout: float | None = None) -> None:
        init = VaultInit.load(self.stack.state_dir / "vault-init.json")
        vault.unseal(self.endpoint().url, init, timeout or self.stack.settings.ready_timeout)


class AttachedStack:
    """The running compose stack as a :class:`~harness.stacks.running.RunningStack` (what the plugin, certs, credentials
    and backup use of any stack)."""

    def __init__(self, settings: Settings, *, log: Log | None = None, client: DockerClient | None = None) -> None:
        self.settings = settings
        self.log: Log = log or (lambda _: None)
        self.layout = ComposeLayout.from_settings(settings)
        self.state = ComposeState.load(self.layout.state_file)
        self.client = client or docker_client()
        self.run_id = f"compose:{self.layout.project}"
        self.state_dir = self.layout.state_dir
        self.vault_bootstrap = BootstrapResult.load(self.state_dir / "vault-bootstrap.json")
        pki = self.state_dir / "pki"
        self.ca = CaChain(root=(pki / "root-ca.pem").read_text(),
                          intermediate=(pki / "intermediate-ca.pem").read_text(), directory=pki)
        self.errors: dict[str, Exception] = {}
        self.report = StackReport(run_id=self.run_id, image_set=settings.images, requested=[])
        for name, image in self.state.images.items():
            self.report.services[name] = ServiceRecord(
                name, status="ready", image=image["ref"], image_id=image["id"], image_source=image["source"],
                image_reason=image["reason"], time_to_ready_s=self.state.time_to_ready_s.get(name))
        for name, reason in self.state.unavailable.items():
            self.report.services[name] = ServiceRecord(name, status="unavailable", error=reason)
        self.report.total_start_s = self.state.total_start_s

    # ------------------------------------------------------------------------------------ plugin side

    def start(self, services: Iterable[str]) -> None:
        """Check (not start) that every needed service runs and is healthy; record what is not."""
        wanted = list(services)
        self.report.requested = sorted(set(self.report.requested) | set(wanted))
        containers = project_containers(self.client, self.layout.project)
        if "vault" in wanted and "vault" not in containers:
            raise ComposeError(f"no compose stack is running (project {self.layout.project}): start it with "
                               "`python -m harness compose up`")
        for name in wanted:
            if self.unavailable_reason(name) is not None:
                continue
            for cname in COMPOSE_SERVICES[name]:
                container = containers.get(cname)
                state = _describe(container)
                if state != "running, healthy":
                    self.errors[name] = ComposeError(
                        f"compose service {cname} is {state}; start the stack with `python -m harness compose up`")
                    break
            else:
                if name not in self.report.started:
                    self.report.started.append(name)

    def unavailable_reason(self, name: str) -> str | None:
        if name in self.state.unavailable:
            return f"not part of the compose stack: {self.state.unavailable[name]}"
        return None

    def containers(self, name: str) -> list[Container]:
        found = project_containers(self.client, self.layout.project)
        return [found[c] for c in COMPOSE_SERVICES[name] if c in found]

    def require(self, name: str) -> ComposeService:
        if name in self.errors:
            raise ServiceStartError(f"{name}: {self.errors[name]}") from self.errors[name]
        return ComposeService(self, name)

    def endpoint(self, name: str) -> Endpoint:
        if name in self.errors:
            raise ServiceStartError(f"{name}: {self.errors[name]}") from self.errors[name]
        containers = project_containers(self.client, self.layout.project)
        secret: Mapping[str, Any] = {}
        if name != "vault":
            secret = read_secret(self._vault_url(containers), name, self.vault_bootstrap.approles[name])
        return build_endpoint(name, self.layout, containers, secret, self.vault_bootstrap.admin_token)

    def _vault_url(self, containers: Mapping[str, Container]) -> str:
        return f"http://127.0.0.1:{host_port(containers['vault'], VAULT_PORT)}"

    def expected_version(self, name: str) -> str | None:
        return recorded_version(name, self.state.images.get(name) or {}, "source", "version")

    @property
    def ready_timeout(self) -> float:
        return self.settings.ready_timeout

    def running(self) -> list[str]:
        return [name for name in self.state.services if name not in self.errors]

    def logs(self, name: str, tail: int = 200) -> str:
        return containers_logs(self.containers(name), tail)

    def close(self) -> None:
        """Nothing to remove: the compose stack outlives the session."""

    # ------------------------------------------------------------------------------------ changes

    def rewrite_material(self, name: str, *, password: str | None = None,
                         tls: TlsMaterial | None = None) -> dict[str, bytes]:
        """Write the service's files in certs/compose again from Vault's KV (plus a new certificate)."""
        containers = project_containers(self.client, self.layout.project)
        secret = dict(read_secret(self._vault_url(containers), name, self.vault_bootstrap.approles[name])) \
            if name != "vault" else {}
        if password is not None:
            secret["password"] = password
        tls = tls or kept_tls(self.layout, name, self.ca)
        if tls is None:
            raise ComposeError(f"certs/compose/{name} holds no certificate: run `python -m harness compose up`")
        files = service_files(name, secret, tls, self.settings)
        write_material(self.layout, name, files, tls.serial)
        return files

    def record_tls(self, name: str, tls: TlsMaterial) -> None:
        """A rotated certificate: written to certs/compose so that a restart of the container keeps it."""
        self.rewrite_material(name, tls=tls)

    def record_password(self, name: str, new: str) -> None:
        """A changed password: written to certs/compose and to the running containers' copies (what a restart
        would install), so the next start comes up with it."""
        files = self.rewrite_material(name, password=new)
        for container in self.containers(name):
            install_live(container, name, files)

    def adopt_vault(self, init: dict[str, Any], bootstrap: dict[str, Any]) -> None:
        write_file(self.state_dir / "vault-init.json", json.dumps(init))
        self.vault_bootstrap = BootstrapResult(**bootstrap)
        self.vault_bootstrap.save(self.state_dir / "vault-bootstrap.json")


def _describe(container: Container | None) -> str:
    if container is None:
        return "missing"
    container.reload()
    state = container.attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    return f"{state.get('Status', 'unknown')}, {health}" if health else str(state.get("Status", "unknown"))


def wait_ready(name: str, layout: ComposeLayout, client: DockerClient, endpoint_of: Callable[[], Endpoint],
               timeout: float, log: Log) -> float:
    """Wait until every container of the service reports healthy and the host-side probe logs in; seconds."""
    t0 = time.monotonic()
    for cname in COMPOSE_SERVICES[name]:
        def health(cname: str = cname) -> str:
            return _describe(project_containers(client, layout.project).get(cname))

        poll(health, what=f"compose service {cname} to report healthy", timeout=timeout,
             accept=lambda seen: seen == "running, healthy", hint=f"read `docker logs {layout.project}_{cname}_1` "
             "(compose v2: ..-1); a healthcheck that never passes shows in `docker inspect` under State.Health")
    poll(lambda: probe(name, endpoint_of()), what=f"{name} to accept a login from the host with the credentials "
         "Vault holds", timeout=timeout, accept=bool,
         hint="an authentication error means the data volume predates this Vault's credentials: "
              "`python -m harness compose down --volumes` starts over")
    return time.monotonic() - t0

if TYPE_CHECKING:  # mypy proves here that the attached compose stack implements the protocol directly
    def _is_a_running_stack(stack: AttachedStack) -> RunningStack:
        return stack
