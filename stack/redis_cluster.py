"""A Redis cluster: N masters (3 by default) with R replicas each, on the stack network.

Image: official ``redis:<pinned>`` or Redis 7.0 from Debian; each node runs ``redis-server <conf>`` with a
config file copied into the container (password, ``cluster-enabled``, ``cluster-node-timeout``), so the
password never appears in argv or the container's environment.
Ports: 6379 per node, published on 127.0.0.1; nodes gossip on the stack network, and host clients reach
them through ``address_remap`` (container IP:6379 -> 127.0.0.1:<published port>).
Readiness: every node answers an authenticated PING; then ``redis-cli --cluster create`` (always under
``timeout``) and a poll until every node reports ``cluster_state:ok`` with all 16384 slots assigned.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as RedisClusterClient
from redis.retry import Retry
from testcontainers.core.container import ExecConfig

from harness.errors import ServiceStartError
from harness.waiting import poll
from stack.base import LoopbackContainer, ProbeWaitStrategy, RunContext, TlsMaterial

REDIS_PORT = 6379
CLUSTER_SLOTS = 16384
# In /data (owned by redis in both images) so CONFIG REWRITE can replace it after a password rotation.
CONF_PATH = "/data/harness.conf"
CREATE_TIMEOUT_S = 60


def node_config(password: str, node_timeout_ms: int) -> str:
    """The redis.conf of every node."""
    return "\n".join([
        f"port {REDIS_PORT}",
        "bind 0.0.0.0",
        "protected-mode no",
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        f"cluster-node-timeout {node_timeout_ms}",
        "appendonly no",
        "dir /data",
        f"requirepass {password}",
        f"masterauth {password}",
        "",
    ])


@dataclass(frozen=True)
class RedisNodeEndpoint:
    """One cluster node: its alias and IP on the stack network, and its published host port."""

    alias: str
    internal_ip: str
    host: str
    port: int


@dataclass(frozen=True)
class RedisClusterEndpoint:
    """The cluster as seen from the host."""

    nodes: tuple[RedisNodeEndpoint, ...]
    password: str
    masters: int
    replicas_per_master: int

    def remap(self) -> Callable[[tuple[str, int]], tuple[str, int]]:
        """Map the addresses the cluster announces (container IPs) to the published loopback ports."""
        table = {(n.internal_ip, REDIS_PORT): (n.host, n.port) for n in self.nodes}
        return lambda address: table.get(address, address)

    def client(self, **overrides: Any) -> RedisClusterClient:
        first = self.nodes[0]
        params: dict[str, Any] = {"host": first.host, "port": first.port, "password": self.password,
                                  "address_remap": self.remap(), "socket_timeout": 5, "socket_connect_timeout": 5,
                                  "decode_responses": True}
        params.update(overrides)
        return RedisClusterClient(**params)

    def node_client(self, node: RedisNodeEndpoint, **overrides: Any) -> redis.Redis:
        params: dict[str, Any] = {"host": node.host, "port": node.port, "password": self.password,
                                  "socket_timeout": 5, "socket_connect_timeout": 5, "decode_responses": True}
        params.update(overrides)
        return redis.Redis(**params)


class RedisNodeContainer(LoopbackContainer):
    """One cluster-enabled Redis node, published on 127.0.0.1 only."""

    def __init__(self, image: str, *, ctx: RunContext, alias: str, password: str, node_timeout_ms: int,
                 tls: TlsMaterial | None = None, **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="redis", alias=alias, **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="redis")
        self.password = password
        self.expose_on_loopback(REDIS_PORT)
        self.with_private_file(CONF_PATH, node_config(password, node_timeout_ms).encode(), owner="redis")
        self.with_command(["redis-server", CONF_PATH])
        self.waiting_for(ProbeWaitStrategy(
            self._ping, what=f"Redis node {alias} to answer an authenticated PING through its published port",
            hint="a DENIED reply means protected mode is on; read the container log", timeout=ctx.ready_timeout))

    def _ping(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.host_port(REDIS_PORT), password=self.password,
                             socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        finally:
            client.close()


class RedisCluster:
    """Starts the nodes concurrently, creates the cluster and waits until every slot is served.

    Args:
        image: Redis image reference.
        ctx: run context.
        password: ``requirepass``/``masterauth`` of every node.
        masters: number of masters (>= 3).
        replicas: replicas per master.
        node_timeout_ms: ``cluster-node-timeout``.
    """

    name = "redis"

    def __init__(self, image: str, *, ctx: RunContext, password: str, masters: int = 3, replicas: int = 0,
                 node_timeout_ms: int = 5000, tls: TlsMaterial | None = None) -> None:
        self.ctx = ctx
        self.password = password
        self.masters = masters
        self.replicas = replicas
        count = masters * (1 + replicas)
        self.nodes = [RedisNodeContainer(image, ctx=ctx, alias=f"redis-{i + 1}", password=password,
                                         node_timeout_ms=node_timeout_ms, tls=tls) for i in range(count)]

    def start(self) -> RedisCluster:
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for future in [pool.submit(node.start) for node in self.nodes]:
                future.result()
        self._create()
        endpoint = self.endpoint()
        for node in endpoint.nodes:
            with endpoint.node_client(node, retry=Retry(NoBackoff(), 0)) as client:
                poll(partial(client.cluster, "info"), what=f"{node.alias} to report cluster_state:ok with "
                     f"{CLUSTER_SLOTS} slots assigned", timeout=self.ctx.ready_timeout, accept=_cluster_ok,
                     hint="gossip needs a few node-timeouts to converge; check the nodes reach each other's bus")
        return self

    def _create(self) -> None:
        addresses = [f"{node.network_ip()}:{REDIS_PORT}" for node in self.nodes]
        command = ["timeout", str(CREATE_TIMEOUT_S), "redis-cli", "--cluster", "create", *addresses,
                   "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        # REDISCLI_AUTH keeps the password out of redis-cli's argv.
        result = self.nodes[0].exec(ExecConfig(command=command, environment={"REDISCLI_AUTH": self.password}))
        if result.exit_code != 0:
            output = result.output.decode(errors="replace")[-1500:]
            reason = "timed out" if result.exit_code == 124 else f"exited {result.exit_code}"
            raise ServiceStartError(f"redis-cli --cluster create {reason}: {output}")

    def apply_password(self, new: str) -> None:
        """Set ``requirepass`` and ``masterauth`` on every node, then CONFIG REWRITE so restarts keep it."""
        endpoint = self.endpoint()
        for node in endpoint.nodes:
            with endpoint.node_client(node) as client:
                client.config_set("masterauth", new)
                client.config_set("requirepass", new)
                client.config_rewrite()
        self.password = new
        for container in self.nodes:
            container.password = new

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def endpoint(self) -> RedisClusterEndpoint:
        nodes = tuple(RedisNodeEndpoint(alias=n.alias, internal_ip=n.network_ip(), host="127.0.0.1",
                                        port=n.host_port(REDIS_PORT)) for n in self.nodes)
        return RedisClusterEndpoint(nodes=nodes, password=self.password, masters=self.masters,
                                    replicas_per_master=self.replicas)

    def logs(self, tail: int = 200) -> str:
        return "\n".join(f"--- {n.alias} ---\n{n.logs(tail)}" for n in self.nodes)

    def container_ids(self) -> list[str]:
        return [cid for n in self.nodes for cid in n.container_ids()]


def parse_cluster_info(text: str | dict[str, Any]) -> dict[str, str]:
    """CLUSTER INFO as a dict (redis-py already parses it; raw text is accepted too)."""
    if isinstance(text, dict):
        return {k: str(v) for k, v in text.items()}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _cluster_ok(info: Any) -> bool:
    parsed = parse_cluster_info(info)
    return parsed.get("cluster_state") == "ok" and parsed.get("cluster_slots_assigned") == str(CLUSTER_SLOTS)
