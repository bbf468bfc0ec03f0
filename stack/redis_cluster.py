"""A Redis cluster: N masters (3 by default) with R replicas each, on the stack network.

Image: official ``redis:<pinned>`` or Redis 7.0 from Debian; each node runs ``redis-server <conf>`` with a
config file copied into the container (password, ``cluster-enabled``, ``cluster-node-timeout``), so the
password never appears in argv or the container's environment.
Ports: 6379 per node, published on 127.0.0.1; nodes gossip on the stack network, and host clients reach
them through ``address_remap`` (container IP:6379 -> 127.0.0.1:<published port>).
TLS: with a Vault-issued certificate every node also listens on ``tls-port`` 6380 with ``tls-cluster yes`` and
``tls-replication yes`` (bus and replication encrypted), client certificates optional, TLS 1.2/1.3 with the
TLS 1.2 suites of :mod:`stack.tls_policy` in the server's order (the bus uses the same settings). The
cluster is created over the TLS ports, and answers plain clients with plain ports and TLS clients with TLS
ports (MOVED, CLUSTER SLOTS). Strict mode sets ``port 0``. A rotated certificate is picked up live by
``CONFIG SET tls-cert-file/tls-key-file`` (Redis rebuilds its TLS context on any tls-* change).
Readiness: every node answers an authenticated PING; then ``redis-cli --cluster create`` (always under
``timeout``) and a poll until every node reports ``cluster_state:ok`` with all 16384 slots assigned.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as RedisClusterClient
from redis.retry import Retry

from stack.backup_ops import BackupOps, BackupSeed, BackupSource, Captured
from stack.base import (
    TLS_CA,
    TLS_CERT,
    TLS_KEY,
    LoopbackContainer,
    ProbeWaitStrategy,
    RunContext,
    TlsInfo,
    TlsListener,
    TlsMaterial,
    endpoint_from_json,
    random_secret,
)
from stack.driver import Refusal, ServiceDriver
from stack.errors import ServiceStartError
from stack.images import DebianLine, ImageSpec
from stack.service import MakeRequest, PublishedService, ServiceSpec
from stack.tls_policy import OPENSSL_TLS12
from stack.waiting import poll

REDIS_PORT = 6379
REDIS_TLS_PORT = 6380
CLUSTER_SLOTS = 16384
# In /data (owned by redis in both images) so CONFIG REWRITE can replace it after a password rotation.
CONF_PATH = "/data/harness.conf"
CREATE_TIMEOUT_S = 60
#: the last octet of each compose node's fixed address in the compose network (compose/docker-compose.yml): a
#: node's identity in nodes.conf is its address, so after a restart the nodes find each other again there.
COMPOSE_HOST_OCTETS = (11, 12, 13)


def node_alias(index: int) -> str:
    """The network alias (and certificate name) of the cluster's node ``index`` (0-based): ``redis-1`` …"""
    return f"redis-{index + 1}"


def node_config(password: str, node_timeout_ms: int, tls: bool = False, strict: bool = False,
                full_coverage: bool = True) -> str:
    """The redis.conf of every node (strict: TLS only, ``port 0``).

    Persistence is AOF (``appendfsync everysec``) in /data, which lives as long as the container: a node that
    is stopped and started again comes back with its keys and its nodes.conf (same node id). A graceful stop
    loses nothing; a SIGKILL can lose up to the last second of writes.
    """
    tls_lines = [f"tls-port {REDIS_TLS_PORT}", f"tls-cert-file {TLS_CERT}", f"tls-key-file {TLS_KEY}",
                 f"tls-ca-cert-file {TLS_CA}", "tls-auth-clients optional", "tls-cluster yes",
                 "tls-replication yes", 'tls-protocols "TLSv1.2 TLSv1.3"', f"tls-ciphers {OPENSSL_TLS12}",
                 "tls-prefer-server-ciphers yes"] if tls else []
    return "\n".join([
        f"port {0 if strict else REDIS_PORT}",
        *tls_lines,
        "bind 0.0.0.0",
        "protected-mode no",
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        f"cluster-node-timeout {node_timeout_ms}",
        f"cluster-require-full-coverage {'yes' if full_coverage else 'no'}",
        "appendonly yes",
        "appendfsync everysec",
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
    tls_port: int | None = None


@dataclass(frozen=True)
class RedisClusterEndpoint:
    """The cluster as seen from the host."""

    nodes: tuple[RedisNodeEndpoint, ...]
    password: str
    masters: int
    replicas_per_master: int
    tls: TlsInfo | None = None  # port: the first node's TLS port; every node presents the same certificate

    def remap(self) -> Callable[[tuple[str, int]], tuple[str, int]]:
        """Map the addresses the cluster announces (container IP and plain or TLS port) to the published
        loopback ports."""
        table = {(n.internal_ip, REDIS_PORT): (n.host, n.port) for n in self.nodes}
        table.update({(n.internal_ip, REDIS_TLS_PORT): (n.host, n.tls_port) for n in self.nodes if n.tls_port})
        return lambda address: table.get(address, address)

    def _use_tls(self, tls: bool | None) -> bool:
        if tls and self.tls is None:
            raise ValueError("the cluster has no TLS listeners")
        return self.tls is not None and self.tls.strict if tls is None else tls

    def _tls_params(self) -> dict[str, Any]:
        assert self.tls is not None
        # 127.0.0.1 is an IP SAN of the nodes' certificate, so hostname checking stays on.
        return {"ssl": True, "ssl_ca_certs": self.tls.ca_file, "ssl_check_hostname": True,
                "ssl_min_version": ssl.TLSVersion.TLSv1_2}

    def client(self, tls: bool | None = None, **overrides: Any) -> RedisClusterClient:
        """A cluster client; with ``tls`` (default: on when strict) it talks TLS and follows the TLS ports."""
        first = self.nodes[0]
        use_tls = self._use_tls(tls)
        params: dict[str, Any] = {"host": first.host, "port": first.tls_port if use_tls else first.port,
                                  "password": self.password, "address_remap": self.remap(), "socket_timeout": 5,
                                  "socket_connect_timeout": 5, "decode_responses": True}
        if use_tls:
            params.update(self._tls_params())
        params.update(overrides)
        return RedisClusterClient(**params)

    def node_client(self, node: RedisNodeEndpoint, tls: bool | None = None, **overrides: Any) -> redis.Redis:
        use_tls = self._use_tls(tls)
        params: dict[str, Any] = {"host": node.host, "port": node.tls_port if use_tls else node.port,
                                  "password": self.password, "socket_timeout": 5, "socket_connect_timeout": 5,
                                  "decode_responses": True}
        if use_tls:
            params.update(self._tls_params())
        params.update(overrides)
        return redis.Redis(**params)


class RedisNodeContainer(LoopbackContainer):
    """One cluster-enabled Redis node, published on 127.0.0.1 only."""

    def __init__(self, image: str, *, ctx: RunContext, alias: str, password: str, node_timeout_ms: int,
                 tls: TlsMaterial | None = None, tls_strict: bool = False, full_coverage: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="redis", alias=alias, **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="redis")
            self.expose_on_loopback(REDIS_TLS_PORT)
        elif tls_strict:
            raise ValueError("tls_strict needs a certificate")
        self.tls_strict = tls_strict
        self.password = password
        self.expose_on_loopback(REDIS_PORT)
        conf = node_config(password, node_timeout_ms, tls=tls is not None, strict=tls_strict,
                           full_coverage=full_coverage)
        self.with_private_file(CONF_PATH, conf.encode(), owner="redis")
        self.with_command(["redis-server", CONF_PATH])
        self.waiting_for(ProbeWaitStrategy(
            self._ping, what=f"Redis node {alias} to answer an authenticated PING through its published port",
            hint="a DENIED reply means protected mode is on; read the container log", timeout=ctx.ready_timeout))

    def _ping(self) -> bool:
        params: dict[str, Any] = {"host": "127.0.0.1", "port": self.host_port(REDIS_PORT), "password": self.password,
                                  "socket_timeout": 2, "socket_connect_timeout": 2, "retry": Retry(NoBackoff(), 0)}
        if self.tls_strict:  # no plain port: ping over TLS
            params.update(port=self.host_port(REDIS_TLS_PORT), ssl=True, ssl_ca_certs=self.ctx.ca_file)
        client = redis.Redis(**params)
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
        full_coverage: ``cluster-require-full-coverage`` (no: the rest of the cluster serves when a master
            and its slots are lost).
    """

    name = "redis"

    def __init__(self, image: str, *, ctx: RunContext, password: str, masters: int = 3, replicas: int = 0,
                 node_timeout_ms: int = 5000, tls: TlsMaterial | None = None, tls_strict: bool = False,
                 full_coverage: bool = True) -> None:
        self.ctx = ctx
        self.node_timeout_ms = node_timeout_ms
        self.password = password
        self.masters = masters
        self.replicas = replicas
        self.tls_strict = tls_strict
        count = masters * (1 + replicas)
        self.nodes = [RedisNodeContainer(image, ctx=ctx, alias=node_alias(i), password=password,
                                         node_timeout_ms=node_timeout_ms, tls=tls, tls_strict=tls_strict,
                                         full_coverage=full_coverage)
                      for i in range(count)]

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
        tls = self.nodes[0].tls is not None
        port = REDIS_TLS_PORT if tls else REDIS_PORT
        create_cluster(self.nodes[0].get_wrapped_container(), [f"{node.network_ip()}:{port}" for node in self.nodes],
                       self.replicas, tls, self.password)

    def use_tls(self, tls: TlsMaterial) -> None:
        """Record a certificate just installed on every node (a rotation)."""
        for node in self.nodes:
            node.use_tls(tls)

    def use_password(self, new: str) -> None:
        """Record the password every node was just changed to (``change_password`` sets it on each)."""
        self.password = new
        for node in self.nodes:
            node.use_password(new)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def endpoint(self) -> RedisClusterEndpoint:
        nodes = tuple(RedisNodeEndpoint(alias=n.alias, internal_ip=n.network_ip(), host="127.0.0.1",
                                        port=n.host_port(REDIS_PORT),
                                        tls_port=n.host_port(REDIS_TLS_PORT) if n.tls else None) for n in self.nodes)
        return RedisClusterEndpoint(nodes=nodes, password=self.password, masters=self.masters,
                                    replicas_per_master=self.replicas,
                                    tls=self.nodes[0].tls_info(REDIS_TLS_PORT, "tls", self.tls_strict))

    def logs(self, tail: int = 200) -> str:
        return "\n".join(f"--- {n.alias} ---\n{n.logs(tail)}" for n in self.nodes)

    def container_ids(self) -> list[str]:
        return [cid for n in self.nodes for cid in n.container_ids()]


def create_cluster(container: Any, addresses: list[str], replicas: int, tls: bool, password: str) -> None:
    """``redis-cli --cluster create`` run in one node's container, always under ``timeout``. With
    ``tls-cluster`` the nodes meet on their TLS ports, so ``addresses`` are TLS ports and the CLI talks TLS."""
    command = ["timeout", str(CREATE_TIMEOUT_S), "redis-cli", *(["--tls", "--cacert", TLS_CA] if tls else []),
               "--cluster", "create", *addresses, "--cluster-replicas", str(replicas), "--cluster-yes"]
    # REDISCLI_AUTH keeps the password out of redis-cli's argv.
    result = container.exec_run(command, environment={"REDISCLI_AUTH": password})
    if result.exit_code != 0:
        output = result.output.decode(errors="replace")[-1500:]
        reason = "timed out" if result.exit_code == 124 else f"exited {result.exit_code}"
        raise ServiceStartError(f"redis-cli --cluster create {reason}: {output}")


def parse_cluster_info(text: str | dict[str, Any]) -> dict[str, str]:
    """CLUSTER INFO as a dict (redis-py already parses it; raw text is accepted too)."""
    if isinstance(text, dict):
        return {k: str(v) for k, v in text.items()}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _cluster_ok(info: Any) -> bool:
    parsed = parse_cluster_info(info)
    return parsed.get("cluster_state") == "ok" and parsed.get("cluster_slots_assigned") == str(CLUSTER_SLOTS)



def login(endpoint: RedisClusterEndpoint) -> bool:
    """Every node answers an authenticated PING (one try each, no client retries)."""
    for node in endpoint.nodes:
        with endpoint.node_client(node, retry=Retry(NoBackoff(), 0), socket_timeout=2) as client:
            if not client.ping():
                return False
    return True


def _cluster_info(endpoint: RedisClusterEndpoint, node: RedisNodeEndpoint) -> dict[str, str]:
    with endpoint.node_client(node, retry=Retry(NoBackoff(), 0)) as client:
        return parse_cluster_info(client.cluster("info"))


def backup_capture(src: BackupSource) -> list[Captured]:
    """Per master, every key as its ``DUMP`` payload (the key's RDB serialisation) with its absolute expiry
    (``PEXPIRETIME``), and the master's slot ranges. (Whole-RDB restore would mean stopping each node and
    swapping its data files under AOF; per-key payloads need neither.)"""
    ep: RedisClusterEndpoint = src.endpoint
    out = []
    for node in ep.nodes:
        with ep.node_client(node, decode_responses=False) as client:
            role = client.execute_command("ROLE")[0]
            if role != b"master":
                continue
            t0 = time.monotonic()
            slots = [(int(s[0]), int(s[1])) for s in client.execute_command("CLUSTER", "SLOTS")
                     if s[2][0].decode() == node.internal_ip]
            lines = []
            for key in sorted(client.scan_iter(count=1000)):
                payload = client.dump(key)
                if payload is None:
                    continue
                expires = int(client.execute_command("PEXPIRETIME", key))
                lines.append(json.dumps({"k": _b64(key), "v": _b64(payload), "exp": expires}, sort_keys=True))
        data = ("\n".join(lines) + "\n").encode() if lines else b""
        name = "redis/shard-" + "_".join(f"{lo}-{hi}" for lo, hi in sorted(slots)) + ".jsonl"
        out.append(Captured("redis", name, data, round(time.monotonic() - t0, 3),
                            {"slots": sorted(slots), "keys": len(lines), "node": node.alias}))
    return out


#: What every backup of the cluster holds: one shard file per master (``redis/shard-<lo>-<hi>[_<lo>-<hi>...].jsonl``),
#: whose slot ranges together cover every slot (:func:`backup_completeness`).
BACKUP_SHARDS = "redis/shard-*.jsonl"
_SHARD_NAME = re.compile(r"redis/shard-((?:\d+-\d+(?:_\d+-\d+)*)?)\.jsonl")


def backup_completeness(names: Sequence[str]) -> list[str]:
    """The slots no shard artifact holds (a master left out of the backup), and shard names without slot ranges.
    A shard named without any range (``shard-.jsonl``: a master that owned no slot) holds no key and is fine."""
    problems: list[str] = []
    covered: set[int] = set()
    for name in names:
        found = _SHARD_NAME.fullmatch(name)
        if found is None:
            problems.append(f"{name} is not a shard artifact (redis/shard-<lo>-<hi>[_<lo>-<hi>...].jsonl)")
            continue
        for part in filter(None, found.group(1).split("_")):
            lo, hi = (int(n) for n in part.split("-"))
            covered.update(range(lo, min(hi, CLUSTER_SLOTS - 1) + 1))
    gaps: list[list[int]] = []
    for slot in sorted(set(range(CLUSTER_SLOTS)) - covered):
        if gaps and gaps[-1][1] == slot - 1:
            gaps[-1][1] = slot
        else:
            gaps.append([slot, slot])
    if gaps:
        problems.append(f"slots {', '.join(f'{lo}-{hi}' if hi > lo else str(lo) for lo, hi in gaps)} are in no "
                        "shard artifact")
    return problems


def backup_format_check(name: str, data: bytes) -> str | None:
    """``backup verify``'s check of a shard, as the restore reads it: every line a key record, an object with the
    key and its ``DUMP`` payload in base64 and the expiry an integer."""
    for number, line in enumerate(data.splitlines(), 1):
        try:
            record = json.loads(line)
            ok = (isinstance(record, dict) and isinstance(record.get("k"), str) and isinstance(record.get("v"), str)
                  and isinstance(record.get("exp"), int) and not isinstance(record.get("exp"), bool))
            ok = ok and all(base64.b64decode(record[part], validate=True) is not None for part in ("k", "v"))
        except ValueError:  # not JSON, or not base64 (binascii.Error is a ValueError)
            ok = False
        if not ok:
            return f"line {number}: not a key record (an object with k and v in base64 and exp an integer)"
    return None


def backup_restore(src: BackupSource, files: Mapping[str, bytes]) -> None:
    """``RESTORE ... ABSTTL REPLACE`` through the cluster, so each key lands on whichever master owns its slot;
    keys that expired since the backup are left out."""
    ep: RedisClusterEndpoint = src.endpoint
    now_ms = int(time.time() * 1000)
    cluster = ep.client(decode_responses=False)
    try:
        for name, data in files.items():
            if not name.startswith("redis/"):
                continue
            for line in data.splitlines():
                record = json.loads(line)
                key = base64.b64decode(record["k"])
                if record["exp"] > 0 and record["exp"] <= now_ms:
                    continue  # expired since the backup
                cluster.restore(key, max(record["exp"], 0), base64.b64decode(record["v"]), replace=True,
                                absttl=record["exp"] > 0)
    finally:
        cluster.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def version_of(info: Mapping[str, Any]) -> str:
    """The server's own version from ``INFO server``. Valkey reports ``valkey_version`` and, for clients that
    check Redis compatibility, a fixed ``redis_version`` (7.2.4 on Valkey 8 and 9); Redis only ``redis_version``."""
    return str(info.get("valkey_version") or info["redis_version"])


def server_version(endpoint: RedisClusterEndpoint) -> str:
    with endpoint.node_client(endpoint.nodes[0]) as client:
        return version_of(client.info("server"))


# ------------------------------------------------------------------------- the backup round trip's seed
# Deterministic data the round trips in suites/backup/ write, find again after a restore and fingerprint.

REDIS_KEYS = 300


def _seed(ep: RedisClusterEndpoint) -> None:
    cluster = ep.client()
    try:
        for i in range(REDIS_KEYS):
            assert cluster.set(f"seed:{i}", f"value-{i}", ex=3600 if i % 3 == 0 else None) is True, f"SET seed:{i}"
        assert cluster.hset("seed:hash", mapping={"a": "1", "b": "2"}) == 2, "HSET seed:hash added fewer than 2 fields"
    finally:
        cluster.close()


def _seed_missing(ep: RedisClusterEndpoint) -> list[str]:
    missing = []
    cluster = ep.client()
    try:
        absent = [i for i in range(REDIS_KEYS) if cluster.get(f"seed:{i}") != f"value-{i}"]
        if absent:
            missing.append(f"redis.seed: {len(absent)} of {REDIS_KEYS} keys absent or different (first: "
                           f"seed:{absent[0]})")
        if cluster.hgetall("seed:hash") != {"a": "1", "b": "2"}:
            missing.append("redis.seed:hash: absent or different")
    finally:
        cluster.close()
    return missing


def _seed_fingerprints(ep: RedisClusterEndpoint) -> dict[str, str]:
    prints = {}
    for node in ep.nodes:
        with ep.node_client(node) as client:
            if client.execute_command("ROLE")[0] != "master":
                continue
            slots = sorted((int(s[0]), int(s[1])) for s in client.execute_command("CLUSTER", "SLOTS")
                           if s[2][0] == node.internal_ip)
            items = []
            for key in sorted(client.scan_iter(match="*", count=1000)):
                kind = client.type(key)
                value = client.get(key) if kind == "string" else json.dumps(client.hgetall(key), sort_keys=True)
                items.append(f"{key}={value}:{'ttl' if client.pttl(key) > 0 else 'persist'}")
            prints[f"redis.{slots}"] = f"{len(items)}:{hashlib.sha256('|'.join(items).encode()).hexdigest()}"
    return prints


def _seed_mark(ep: RedisClusterEndpoint, label: str) -> None:
    cluster = ep.client()
    try:
        cluster.set(f"marker:{label}", label)
    finally:
        cluster.close()


# ------------------------------------------------------------------------------------------------ the driver

class _Session:
    """A connection to the first node; the server's own record: ``ACL WHOAMI`` and ``CLIENT INFO``'s ``laddr``
    (the server-side socket: the TLS-only port or the plain one)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def whoami(self) -> str:
        return str(self.client.acl_whoami())

    def is_tls(self) -> bool:
        laddr = str(self.client.client_info()["laddr"])
        if not laddr.endswith((f":{REDIS_TLS_PORT}", f":{REDIS_PORT}")):
            raise AssertionError(f"CLIENT INFO laddr {laddr} is neither the plain nor the TLS port")
        return laddr.endswith(f":{REDIS_TLS_PORT}")


class RedisDriver(ServiceDriver[RedisClusterEndpoint]):
    endpoint_type = RedisClusterEndpoint
    password_refusal = Refusal(redis.exceptions.AuthenticationError, "invalid username-password pair")
    # A strict node has no plaintext port (port 0): the connection itself is refused.
    plaintext_refusal = Refusal(redis.exceptions.ConnectionError, None, not_as=(redis.exceptions.AuthenticationError,))
    compose_password_file = CONF_PATH

    def make(self, req: MakeRequest) -> RedisCluster:
        """The password from Vault's KV, the topology from the harness settings."""
        o = req.options
        return RedisCluster(req.image, ctx=req.ctx, password=req.secret["password"], masters=o["redis_masters"],
                            replicas=o["redis_replicas"], node_timeout_ms=o["redis_node_timeout_ms"], tls=req.tls,
                            tls_strict=req.strict, full_coverage=o["redis_full_coverage"])

    def compose_endpoint(self, pub: PublishedService) -> RedisClusterEndpoint:
        """One node per compose service, masters only (TLS dual mode)."""
        nodes = tuple(RedisNodeEndpoint(alias=alias, internal_ip=pub.ip(alias), host="127.0.0.1",
                                        port=pub.port(alias, REDIS_PORT), tls_port=pub.port(alias, REDIS_TLS_PORT))
                      for alias in pub.names)
        return RedisClusterEndpoint(nodes=nodes, password=str(pub.secret["password"]), masters=len(nodes),
                                    replicas_per_master=0,
                                    tls=TlsInfo(nodes[0].tls_port or 0, "tls", pub.serial, pub.ca_file, strict=False))

    def endpoint_from_json(self, data: Mapping[str, Any]) -> RedisClusterEndpoint:
        found: RedisClusterEndpoint = endpoint_from_json(
            RedisClusterEndpoint, data, nodes=lambda raw: tuple(RedisNodeEndpoint(**n) for n in raw))
        return found

    def login(self, endpoint: RedisClusterEndpoint) -> bool:
        return login(endpoint)

    def login_user(self, endpoint: RedisClusterEndpoint) -> str:
        return "default"  # requirepass is the default user's password

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        """A random password (Redis AUTH has no user here) and TLS flags as JSON booleans."""
        return {"password": random_secret(), "tls_enabled": True, "tls_strict": strict}

    def aliases(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Every node's network alias in a test stack of the topology the settings give (the certificate names
        them all, so one leaf serves every node)."""
        return tuple(node_alias(i) for i in range(options["redis_masters"] * (1 + options["redis_replicas"])))

    def compose_ready(self, pub: PublishedService, endpoint: RedisClusterEndpoint, timeout: float,
                      log: Callable[[str], None]) -> bool:
        """After ``compose up``: create the cluster over TLS on a first start (every node empty and alone), then
        wait until every node reports ``cluster_state:ok`` with all slots assigned. Returns whether it was created
        now."""
        infos = [_cluster_info(endpoint, node) for node in endpoint.nodes]
        created = False
        if all(i.get("cluster_slots_assigned") == "0" and i.get("cluster_known_nodes") == "1" for i in infos):
            create_cluster(pub.container(pub.names[0]), [f"{pub.ip(cname)}:{REDIS_TLS_PORT}" for cname in pub.names],
                           0, True, endpoint.password)
            created = True
            log(f"redis: cluster created over TLS ({len(pub.names)} masters, {CLUSTER_SLOTS} slots)")
        for node in endpoint.nodes:
            poll(partial(_cluster_info, endpoint, node), what=f"{node.alias} to report cluster_state:ok with "
                 f"{CLUSTER_SLOTS} slots assigned", timeout=timeout, accept=_cluster_ok,
                 hint="after a restart the nodes find each other at the fixed addresses in nodes.conf; a node "
                      "recreated with another address (compose_subnet_prefix changed?) cannot rejoin")
        return created

    def compose_files(self, secret: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, bytes]:
        """The compose nodes' configuration (TLS dual mode)."""
        return {CONF_PATH: node_config(str(secret["password"]), options["redis_node_timeout_ms"], tls=True,
                                       strict=False, full_coverage=options["redis_full_coverage"]).encode()}

    def tls_targets(self, endpoint: RedisClusterEndpoint) -> list[TlsListener]:
        """Every node is its own TLS listener."""
        return [(node.alias, node.tls_port, "tls") for node in endpoint.nodes if node.tls_port]

    def describe(self, endpoint: RedisClusterEndpoint) -> tuple[str, str]:
        """Every node."""
        return (", ".join(f"{n.alias}=127.0.0.1:{n.port}" for n in endpoint.nodes),
                ", ".join(f"{n.alias}=127.0.0.1:{n.tls_port}" for n in endpoint.nodes if n.tls_port))

    def reload_tls(self, endpoint: RedisClusterEndpoint, container: Any, timeout: float) -> str:
        """Setting any tls-* parameter makes Redis (6.0+) rebuild its TLS context from the files; the same
        paths are set again, so CONFIG REWRITE is not needed."""
        for node in endpoint.nodes:
            with endpoint.node_client(node) as client:
                client.execute_command("CONFIG", "SET", "tls-cert-file", TLS_CERT, "tls-key-file", TLS_KEY)
        return "live: CONFIG SET tls-cert-file/tls-key-file"

    def change_password(self, endpoint: RedisClusterEndpoint, new: str) -> None:
        """``requirepass`` and ``masterauth`` on every node, then CONFIG REWRITE so a restart keeps them."""
        for node in endpoint.nodes:
            with endpoint.node_client(node) as client:
                client.config_set("masterauth", new)
                client.config_set("requirepass", new)
                client.config_rewrite()

    @contextmanager
    def session(self, endpoint: RedisClusterEndpoint, *, tls: bool | None = None, user: str | None = None,
                password: str | None = None) -> Iterator[_Session]:
        # One attempt (redis-py retries ten times with backoff by default): a refusal is the answer here.
        creds = {k: v for k, v in (("username", user), ("password", password)) if v is not None}
        with endpoint.node_client(endpoint.nodes[0], tls=tls, retry=Retry(NoBackoff(), 0), socket_timeout=3,
                                  **creds) as client:
            client.ping()  # connect and authenticate now: a refusal surfaces here
            yield _Session(client)

    def tls_only_evidence(self, endpoint: RedisClusterEndpoint) -> str:
        """Every node, asked over TLS, runs with no plaintext listener (``port 0``)."""
        for node in endpoint.nodes:
            with endpoint.node_client(node, tls=True, socket_timeout=3) as client:
                port = client.config_get("port")
            assert port == {"port": "0"}, f"{node.alias} still has a plaintext port: {port}"
        return f"CONFIG GET port = 0 on all {len(endpoint.nodes)} nodes"


SPEC = ServiceSpec(
    name="redis",
    description="needs the Redis cluster (and Vault)",
    owner="redis",
    image=ImageSpec(service="redis", official="redis:7.0.15", debian="devstack-harness/redis:7.0", context="redis",
                    product="Redis 7.0", official_version="7.0.15", debian_version="7.0.",
                    flavors=("redis", "valkey"), lines=(
                        DebianLine("trixie", "redis", "devstack-harness/redis:8.0-trixie", "redis", "Redis 8.0",
                                   "8.0.", (("SERVER", "redis"),)),
                        DebianLine("trixie", "valkey", "devstack-harness/valkey:8.1-trixie", "redis", "Valkey 8.1",
                                   "8.1.", (("SERVER", "valkey"),)),
                        DebianLine("sid", "redis", "devstack-harness/redis:8.0-sid", "redis", "Redis 8.0", "8.0.",
                                   (("SERVER", "redis"),)),
                        DebianLine("sid", "valkey", "devstack-harness/valkey:9.1-sid", "redis", "Valkey 9.1", "9.1.",
                                   (("SERVER", "valkey"),)))),
    driver=RedisDriver(),
    official_volumes=("/data",),
    compose_services=("redis-1", "redis-2", "redis-3"),
    tls12_server_order="tls-prefer-server-ciphers yes",
    backup=True,
    backup_ops=BackupOps(backup_capture, backup_restore, server_version,
                         seed=BackupSeed(_seed, _seed_missing, _seed_fingerprints, _seed_mark),
                         artifacts=(BACKUP_SHARDS,), completeness=backup_completeness,
                         format_check=backup_format_check),
    settings=("redis_masters", "redis_replicas", "redis_node_timeout_ms", "redis_full_coverage"),
)
