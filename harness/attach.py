"""Attach mode: the suites check the running compose stack instead of starting containers.

:class:`AttachedStack` offers what the suites use of a test :class:`~harness.engine.Stack` (endpoints, the
Vault bootstrap record and CA, container ids, logs, expected versions, certificate rotation), built from the
compose project's containers (published ports, network addresses) and from Vault: credentials are read
with each service's own AppRole every time an endpoint is asked for, so an endpoint always carries what
Vault holds now. A password rotated through :meth:`ComposeService.apply_password` is also written back to
``certs/compose/``, so the next restart of the container comes up with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from docker import DockerClient
from docker.models.containers import Container
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.certs import reload_server
from harness.compose import (
    COMPOSE_SERVICES,
    ComposeLayout,
    ComposeState,
    ComposeVault,
    host_port,
    install_live,
    issue_tls,
    kept_tls,
    network_ip,
    project_containers,
    read_secret,
    service_files,
    write_material,
)
from harness.docker_env import docker_client
from harness.engine import ServiceRecord, StackReport
from harness.pki import CaChain
from harness.settings import Settings
from harness.vault_bootstrap import BootstrapResult
from stack import redis_cluster, registry, vault
from stack.base import TlsMaterial
from stack.errors import ComposeError, ServiceStartError
from stack.redis_cluster import RedisClusterEndpoint, RedisNodeEndpoint
from stack.service import PublishedService
from stack.vault import VAULT_PORT, VaultInit
from stack.waiting import poll

Log = Callable[[str], None]


def build_endpoint(name: str, layout: ComposeLayout, containers: Mapping[str, Container],
                   secret: Mapping[str, Any], admin_token: str) -> Any:
    """The endpoint of one service of the compose stack, built by its module (``ops["endpoint"]``)."""
    spec = registry.get(name)
    build = spec.op("endpoint")
    serial = (layout.service_dir(name) / "serial").read_text().strip()
    return build(PublishedService(
        names=spec.compose_services, port=lambda cname, port: host_port(containers[cname], port),
        ip=lambda cname: network_ip(containers[cname]), container_name=lambda cname: str(containers[cname].name),
        secret=secret, serial=serial, ca_file=str(layout.state_dir / "pki" / "root-ca.pem"), admin_token=admin_token))


def probe(name: str, endpoint: Any) -> bool:
    """A real login from the host with the credentials Vault holds (what the test stacks' readiness does)."""
    return bool(registry.get(name).op("login")(endpoint))


def cluster_info(endpoint: RedisClusterEndpoint, node: RedisNodeEndpoint) -> dict[str, str]:
    with endpoint.node_client(node, retry=Retry(NoBackoff(), 0)) as client:
        return redis_cluster.parse_cluster_info(client.cluster("info"))


def ensure_cluster(layout: ComposeLayout, containers: Mapping[str, Container], endpoint: RedisClusterEndpoint,
                   timeout: float, log: Log) -> bool:
    """Create the cluster over TLS on a first start (every node empty and alone); then wait until every node
    reports ``cluster_state:ok`` with all slots assigned. Returns whether it was created now."""
    infos = [cluster_info(endpoint, node) for node in endpoint.nodes]
    created = False
    if all(i.get("cluster_slots_assigned") == "0" and i.get("cluster_known_nodes") == "1" for i in infos):
        port = redis_cluster.REDIS_TLS_PORT
        redis_cluster.create_cluster(containers["redis-1"], [f"{ip}:{port}" for ip in layout.redis_ips()], 0,
                                     True, endpoint.password)
        created = True
        log("redis: cluster created over TLS (3 masters, 16384 slots)")

    def cluster_ok(info: dict[str, str]) -> bool:
        slots = str(redis_cluster.CLUSTER_SLOTS)
        return info.get("cluster_state") == "ok" and info.get("cluster_slots_assigned") == slots

    for node in endpoint.nodes:
        poll(partial(cluster_info, endpoint, node), what=f"{node.alias} to report cluster_state:ok with "
             f"{redis_cluster.CLUSTER_SLOTS} slots assigned", timeout=timeout, accept=cluster_ok,
             hint="after a restart the nodes find each other at the fixed addresses in nodes.conf; a node "
                  "recreated with another address (compose_subnet_prefix changed?) cannot rejoin")
    return created


class ComposeService:
    """One service of the compose stack, as the suites see a test stack's service object."""

    def __init__(self, stack: AttachedStack, name: str) -> None:
        self.stack = stack
        self.name = name
        self._endpoint = stack.endpoint(name)  # credentials as they are now, before a rotation writes Vault

    def containers(self) -> list[Container]:
        return self.stack.containers(self.name)

    def container_ids(self) -> list[str]:
        return [c.id for c in self.containers() if c.id]

    def logs(self, tail: int = 200) -> str:
        return self.stack.logs(self.name, tail)

    def endpoint(self) -> Any:
        return self.stack.endpoint(self.name)

    def apply_password(self, new: str) -> None:
        """Change the password on the running server, then in certs/compose so a restart keeps it."""
        changer = registry.get(self.name).op("change_password")
        changer(self._endpoint, new)
        self._endpoint = replace(self._endpoint, password=new)
        files = self.stack.rewrite_material(self.name, password=new)
        for container in self.containers():  # the running container's copies too, as a restart would install them
            install_live(container, self.name, files)

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
    """The running compose stack, in the shape the pytest plugin and the suites expect of a Stack."""

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

    def endpoint(self, name: str) -> Any:
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
        from stack.images import CATALOGUE

        image = self.state.images.get(name)
        if image is None or image["source"] == "override":
            return None
        spec = CATALOGUE[name]
        return spec.official_version if image["source"] == "official" else spec.debian_version

    def logs(self, name: str, tail: int = 200) -> str:
        parts = []
        for container in self.containers(name):
            raw: bytes = container.logs(tail=tail, stdout=True, stderr=True)
            parts.append(f"--- {container.name} ---\n{raw.decode(errors='replace')}")
        return "\n".join(parts)

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

    def rotate_certificate(self, name: str) -> tuple[str, str, str]:
        """Issue a new leaf with the service's AppRole, install it in the running containers and in
        certs/compose, and make the servers use it without a restart: (old serial, new serial, how)."""
        old = self.endpoint(name).tls.serial
        containers = project_containers(self.client, self.layout.project)
        compose_vault = ComposeVault(self._vault_url(containers), self.vault_bootstrap, self.ca, False, {})
        tls = issue_tls(compose_vault, name)
        self.rewrite_material(name, tls=tls)
        files = {p: c for p, (c, _) in registry.get(name).tls_files(tls).items()}
        running = self.containers(name)
        for container in running:
            install_live(container, name, files)
        how = reload_server(name, self.endpoint(name), running[0], self.settings.ready_timeout)
        return old, tls.serial, how


def _describe(container: Container | None) -> str:
    if container is None:
        return "missing"
    container.reload()
    state = container.attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    return f"{state.get('Status', 'unknown')}, {health}" if health else str(state.get("Status", "unknown"))


def wait_ready(name: str, layout: ComposeLayout, client: DockerClient, endpoint_of: Callable[[], Any],
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

