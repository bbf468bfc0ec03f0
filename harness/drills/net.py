"""Redis cluster network drills: a partition that keeps the harness's view, and added latency.

Both run on a cluster of masters with one replica each (the failover drills' topology, ``cluster-node-timeout``
from ``drill_node_timeout_ms``). The fault is applied inside the drilled node's network namespace only, by a
helper container (image ``nettools``: iproute2, iptables, python3) started with
``network_mode=container:<node>`` and ``NET_ADMIN``; the host's firewall is never touched. Traffic to and from
the network's gateway is always left alone: the host reaches the node's published port through it, so the
harness keeps its view of the node (the drill checks that its own connection arrives from the gateway).

**redis-partition** (iptables): the victim master drops every packet except loopback and the gateway, so it is
cut off from its peers and its replica while a client on the host can still write to it. A writer sends
sequence-numbered ``SET`` + ``WAIT 1 100`` to one slot of the victim and, after an error, looks the slot's
owner up again (the master with the highest config epoch any reachable node names, as a cluster client that
refreshes its slot map would). Measured from the fault: ``detect_ms`` (a survivor flags the victim ``fail``),
``victim_down_ms`` (the isolated victim reports ``cluster_state:fail``: it noticed it is in the minority and
refuses commands), ``promote_ms``, ``cluster_ok_ms``, ``last_victim_ack_ms`` (the last write the victim
acknowledged), ``split_brain_writes`` (writes the victim acknowledged after the promotion: lost when it rejoins),
``lost_writes`` (acknowledged writes missing after the heal), ``lost_replicated`` (of those, confirmed by
``WAIT``: must be 0) and ``rejoin_ms`` (heal -> the old master is a replica and the cluster whole).

Split brain needs a window: with equal node timeouts the isolated master reports ``cluster_state:fail`` (and
refuses every command) about a second *before* its replica is promoted, so it could never acknowledge a write
after the promotion whatever ``min-replicas-to-write`` says. During the round the victim's own
``cluster-node-timeout`` is ``drill_partition_victim_timeout_ms`` and its peers' ``drill_partition_peer_timeout_ms``
(put back afterwards): the peers promote the replica while the victim still believes it is a master. The round runs
with ``min-replicas-to-write`` 0 or 1 (``min-replicas-max-lag`` 1 s, the smallest Redis accepts) and both sides
are verdicts (:func:`partition_verdict`): with 0 the isolated master *must* acknowledge writes after the promotion
(the positive control: ``split_brain_writes`` > 0), with 1 it must refuse them (``NOREPLICAS`` among the writer's
errors, ``split_brain_writes`` 0).

**latency**: the victim master's packets towards its peers (not the gateway) are delayed by
``drill_latency_ms``, below ``cluster-node-timeout``: with ``tc netem`` where the kernel has ``sch_netem``, else
with the NFQUEUE delayer :mod:`harness.drills.nfq_delay` (same effect on the packets: each is held for the delay, in
order). Eight client workers run ``SET`` + ``WAIT 1`` on the victim's slot, each at most one every 20 ms
(bounded in count and time); the replication stream crosses the delayed link, so ``WAIT`` feels it. Reported:
client p50/p99 before and during, ``added_p50_ms`` (which proves the delay took effect) and whether any node
flagged a node ``pfail``/``fail`` or a failover happened (none may, the delay being below the node timeout).

Before every fault: the cluster is whole, the victim's replica is online and caught up with the master's
replication offset (polled with a deadline). The undo runs in ``finally``; the helper container is removed.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import secrets
import statistics
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import redis

from harness.drills.redis import (
    POLL_S,
    ClusterView,
    DrillError,
    _ms,
    percentile,
    summarize,
)
from harness.drills.redis_slots import CLUSTER_SLOTS, key_for_slot, parse_cluster_nodes
from harness.settings import Settings
from stack.base import LABEL_SERVICE
from stack.errors import ReadinessTimeout
from stack.redis_cluster import REDIS_PORT, RedisCluster, RedisNodeContainer
from stack.waiting import poll

PARTITION_METRICS = ("detect_ms", "victim_down_ms", "promote_ms", "cluster_ok_ms", "last_victim_ack_ms",
                     "split_brain_writes", "lost_writes", "lost_replicated", "rejoin_ms")
LATENCY_METRICS = ("before_p50_ms", "before_p99_ms", "during_p50_ms", "during_p99_ms", "added_p50_ms",
                   "pfail_flags", "failovers", "recover_ms")
NET_DRILLS = ("redis-partition", "latency")
DELAY_METHODS = ("auto", "netem", "nfqueue")
MIN_REPLICAS_MAX_LAG_S = 1
CHAIN_IN, CHAIN_OUT, CHAIN_DELAY = "DSH-PART-IN", "DSH-PART-OUT", "DSH-DELAY"
NFQUEUE_NUM = 7
NFQ_DIR = "/tmp/dsh-nfq"
HELPER_LIFETIME_S = 3600  # the helper's own bound (`sleep`); each round removes it long before
LATENCY_WORKERS = 8
PACE_S = 0.02  # each latency worker starts at most one operation per 20 ms (8 workers: 400 operations/s at most)
BEFORE_S = 3.0


# ------------------------------------------------------------------------------------------- helper


@dataclass(frozen=True)
class Route:
    """The node's side of the stack network, as its own routing table says."""

    interface: str
    address: str
    subnet: str
    gateway: str


def parse_route(default_route: str, addresses: str) -> Route:
    """From ``ip -4 route show default`` and ``ip -4 -o addr show dev IFACE``."""
    words = default_route.split()
    if "via" not in words or "dev" not in words:
        raise DrillError(f"no default route in the node's namespace: {default_route.strip()!r}")
    gateway, interface = words[words.index("via") + 1], words[words.index("dev") + 1]
    cidr = next((w for line in addresses.splitlines() for i, w in enumerate(line.split())
                 if i > 0 and line.split()[i - 1] == "inet"), None)
    if cidr is None:
        raise DrillError(f"no IPv4 address on {interface}: {addresses.strip()!r}")
    iface = ipaddress.ip_interface(cidr)
    return Route(interface, str(iface.ip), str(iface.network), gateway)


class NetHelper:
    """The nettools container in a node's network namespace (``NET_ADMIN``), removed when the block ends."""

    def __init__(self, node: RedisNodeContainer, image: str) -> None:
        self.node = node
        self.image = image
        self.container: Any = None

    def __enter__(self) -> NetHelper:
        docker_client = self.node.get_docker_client().client
        target = self.node.get_wrapped_container()
        try:
            self.container = docker_client.containers.run(
                self.image, entrypoint=["sleep"], command=[str(HELPER_LIFETIME_S)], detach=True,
                network_mode=f"container:{target.id}", cap_add=["NET_ADMIN"],
                labels={**self.node.ctx.labels, LABEL_SERVICE: "nettools"},
                name=self.node.ctx.container_name(f"{self.node.alias}-nettools-{secrets.token_hex(2)}"))
        except docker.errors.DockerException as exc:
            raise DrillError(f"cannot start the network helper ({self.image}) in {self.node.alias}'s network "
                             f"namespace: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.container is not None:
            with contextlib.suppress(docker.errors.DockerException):
                self.container.remove(force=True)

    def run(self, script: str, what: str) -> str:
        """Run a shell script in the helper; a non-zero exit raises :class:`DrillError` with its output."""
        code, output = self.container.exec_run(["sh", "-c", script])
        text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
        if code != 0:
            raise DrillError(f"{what} in {self.node.alias}'s network namespace failed (exit {code}): "
                             f"{text.strip()[-800:]}")
        return text

    def route(self) -> Route:
        default = self.run("ip -4 route show default", "reading the default route")
        interface = default.split()[default.split().index("dev") + 1] if "dev" in default.split() else "eth0"
        return parse_route(default, self.run(f"ip -4 -o addr show dev {interface}", "reading the address"))

    def put(self, directory: str, name: str, data: bytes) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        self.run(f"mkdir -p {directory}", "creating a directory")
        if not self.container.put_archive(directory, buffer.getvalue()):
            raise DrillError(f"copying {name} into the network helper failed")


# ----------------------------------------------------------------------------------------- partition


def partition_script(gateway: str) -> str:
    """iptables in the victim's namespace: drop everything but loopback and the gateway (the host)."""
    return "set -e\n" + "\n".join([
        f"iptables -w -N {CHAIN_IN}", f"iptables -w -A {CHAIN_IN} -i lo -j RETURN",
        f"iptables -w -A {CHAIN_IN} -s {gateway}/32 -j RETURN", f"iptables -w -A {CHAIN_IN} -j DROP",
        f"iptables -w -N {CHAIN_OUT}", f"iptables -w -A {CHAIN_OUT} -o lo -j RETURN",
        f"iptables -w -A {CHAIN_OUT} -d {gateway}/32 -j RETURN", f"iptables -w -A {CHAIN_OUT} -j DROP",
        f"iptables -w -I INPUT 1 -j {CHAIN_IN}", f"iptables -w -I OUTPUT 1 -j {CHAIN_OUT}",
    ])


def heal_script() -> str:
    """Undo :func:`partition_script` (each step tolerates a half-applied partition)."""
    return "\n".join([
        f"iptables -w -D INPUT -j {CHAIN_IN} 2>/dev/null", f"iptables -w -D OUTPUT -j {CHAIN_OUT} 2>/dev/null",
        f"iptables -w -F {CHAIN_IN} 2>/dev/null", f"iptables -w -X {CHAIN_IN} 2>/dev/null",
        f"iptables -w -F {CHAIN_OUT} 2>/dev/null", f"iptables -w -X {CHAIN_OUT} 2>/dev/null",
        "iptables -w -S",
    ])


def leftover_rules(rules: str, node: str) -> list[str]:
    """Verdict on ``iptables -S`` after a heal: any rule of the drill's chains left means the node is still cut
    off (or delayed), and the next round would start from a broken cluster."""
    left = [line for line in rules.splitlines() if any(c in line for c in (CHAIN_IN, CHAIN_OUT, CHAIN_DELAY))]
    return [f"{node}: the fault was not undone, still installed: {line}" for line in left]


@contextlib.contextmanager
def partitioned(helper: NetHelper, route: Route) -> Iterator[list[str]]:
    """Cut the node off for the block; the heal runs in ``finally`` and its leftovers (none, when healed) are
    put in the yielded list."""
    leftovers: list[str] = []
    try:
        helper.run(partition_script(route.gateway), "installing the partition")
        yield leftovers
    finally:
        leftovers.extend(leftover_rules(helper.run(heal_script(), "healing the partition"), helper.node.alias))


# -------------------------------------------------------------------------------------------- delay


def netem_script(route: Route, delay_ms: int) -> str:
    """A prio qdisc whose 4th band delays; u32 filters send the peers' subnet there, the gateway to band 1."""
    dev = route.interface
    return "set -e\n" + "\n".join([
        f"tc qdisc add dev {dev} root handle 1: prio bands 4 priomap 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        f"tc qdisc add dev {dev} parent 1:4 handle 40: netem delay {delay_ms}ms",
        f"tc filter add dev {dev} parent 1:0 protocol ip prio 1 u32 match ip dst {route.gateway}/32 flowid 1:1",
        f"tc filter add dev {dev} parent 1:0 protocol ip prio 2 u32 match ip dst {route.subnet} flowid 1:4",
    ])


def nfqueue_rules(route: Route) -> str:
    return "set -e\n" + "\n".join([
        f"iptables -w -N {CHAIN_DELAY}", f"iptables -w -A {CHAIN_DELAY} -o lo -j RETURN",
        f"iptables -w -A {CHAIN_DELAY} -d {route.gateway}/32 -j RETURN",
        f"iptables -w -A {CHAIN_DELAY} -d {route.subnet} -j NFQUEUE --queue-num {NFQUEUE_NUM} --queue-bypass",
        f"iptables -w -I OUTPUT 1 -j {CHAIN_DELAY}",
    ])


def nfqueue_undo() -> str:
    return "\n".join([
        f"iptables -w -D OUTPUT -j {CHAIN_DELAY} 2>/dev/null", f"iptables -w -F {CHAIN_DELAY} 2>/dev/null",
        f"iptables -w -X {CHAIN_DELAY} 2>/dev/null",
        f"[ -f {NFQ_DIR}/pid ] && kill -TERM $(cat {NFQ_DIR}/pid) 2>/dev/null", "iptables -w -S",
    ])


@dataclass
class Delay:
    """An applied delay: the method used and why (netem refused, chosen), and its undo."""

    method: str
    note: str
    undo: Callable[[], list[str]]


def apply_delay(helper: NetHelper, route: Route, delay_ms: int, method: str) -> Delay:
    """Delay the node's packets to its peers; ``auto`` takes netem and falls back to the NFQUEUE delayer when
    the kernel refuses it (the refusal is kept in the note)."""
    if method not in DELAY_METHODS:
        raise ValueError(f"unknown delay method {method!r}; one of {', '.join(DELAY_METHODS)}")
    note = f"{method} chosen"
    if method in ("auto", "netem"):
        try:
            helper.run(netem_script(route, delay_ms), "adding a netem qdisc")
        except DrillError as exc:
            helper.run(f"tc qdisc del dev {route.interface} root 2>/dev/null; true", "removing a half-made qdisc")
            if method == "netem":
                raise
            note = f"netem refused, NFQUEUE delayer used: {str(exc).split('): ', 1)[-1]}"
        else:
            def undo_netem() -> list[str]:
                helper.run(f"tc qdisc del dev {route.interface} root", "removing the netem qdisc")
                shown = helper.run(f"tc qdisc show dev {route.interface}", "listing qdiscs")
                return [f"{helper.node.alias}: netem still installed: {shown.strip()}"] if "netem" in shown else []
            return Delay("netem", "auto: netem available" if method == "auto" else note, undo_netem)
    helper.put(NFQ_DIR, "nfq_delay.py", (Path(__file__).parent / "nfq_delay.py").read_bytes())
    helper.container.exec_run(["python3", f"{NFQ_DIR}/nfq_delay.py", str(NFQUEUE_NUM), str(delay_ms), NFQ_DIR],
                              detach=True)
    poll(lambda: helper.run(f"cat {NFQ_DIR}/ready 2>/dev/null || true", "reading the delayer's state"),
         what="the NFQUEUE delayer to bind its queue", timeout=10, interval=0.05, accept=bool,
         hint="the kernel may lack nfnetlink_queue; run harness/drills/nfq_delay.py by hand in the helper to see why")
    try:
        helper.run(nfqueue_rules(route), "queueing the node's packets to the delayer")
    except DrillError:
        helper.run(nfqueue_undo(), "removing half-made NFQUEUE rules")
        raise

    def undo_nfqueue() -> list[str]:
        problems = leftover_rules(helper.run(nfqueue_undo(), "removing the NFQUEUE rules"), helper.node.alias)
        poll(lambda: helper.run(f"cat {NFQ_DIR}/stats 2>/dev/null || true", "reading the delayer's stats"),
             what="the NFQUEUE delayer to release its packets and exit", timeout=10, interval=0.05, accept=bool,
             hint="the delayer ignores SIGTERM only if it hangs in a send; read the helper's processes")
        return problems
    return Delay("nfqueue", note, undo_nfqueue)


# ------------------------------------------------------------------------------------ preconditions


def replication_problems(info: Mapping[str, Any]) -> list[str]:
    """Verdict on a master's ``INFO replication``: it knows a replica, every replica is online and caught up
    with ``master_repl_offset`` (the state a failover measurement assumes)."""
    problems = []
    if info.get("role") != "master":
        problems.append(f"role is {info.get('role')}, not master")
    if int(info.get("connected_slaves", 0)) < 1:
        problems.append("the master knows no replica (connected_slaves 0)")
    offset = int(info.get("master_repl_offset", 0))
    for key in sorted(k for k in info if k.startswith("slave") and k[5:].isdigit()):
        replica = info[key]
        where = f"replica {replica.get('ip')}:{replica.get('port')}"
        if replica.get("state") != "online":
            problems.append(f"{where} is {replica.get('state')}, not online")
        elif int(replica.get("offset", -1)) < offset:
            problems.append(f"{where} is at offset {replica.get('offset')}, the master at {offset}")
    return problems


def wait_replicated(view: ClusterView, master: RedisNodeContainer, timeout: float) -> None:
    def check() -> list[str]:
        with view.client_for(master) as client:
            return replication_problems(client.info("replication"))

    poll(check, what=f"{master.alias} to know its replica and the replica to catch up with its offset",
         timeout=timeout, interval=0.1, accept=lambda problems: not problems, transient=(redis.RedisError, OSError),
         hint="replicas acknowledge their offset every second; a replica that never catches up: read its log")


def client_source_problem(addr: str, gateway: str) -> str | None:
    """Verdict on the ``addr`` of the harness's own connection (``CLIENT INFO``): it must come from the gateway,
    which the fault leaves open; otherwise the fault would cut the harness off too."""
    source = addr.rsplit(":", 1)[0]
    if source != gateway:
        return (f"the harness's connection reaches the node from {source or '?'}, not from the gateway {gateway}: "
                "a fault that keeps only the gateway open would cut the harness off too")
    return None


def set_min_replicas(view: ClusterView, count: int) -> None:
    for container in view.cluster.nodes:
        with view.client_for(container) as client:
            client.config_set("min-replicas-to-write", count)
            client.config_set("min-replicas-max-lag", MIN_REPLICAS_MAX_LAG_S)


# ------------------------------------------------------------------------------------------- writers


@dataclass
class NetAck:
    seq: int
    at: float
    replicated: bool
    node: str


def owner_by_epoch(raw_views: list[str], slot: int) -> str | None:
    """The node id that owns ``slot`` by the highest config epoch any view names (how Redis itself settles
    two masters claiming a slot); failing masters are ignored."""
    best: tuple[int, str] | None = None
    for raw in raw_views:
        epochs = {line.split()[0]: int(line.split()[6]) for line in raw.strip().splitlines() if len(line.split()) > 7}
        for node in parse_cluster_nodes(raw):
            if node.is_master and not node.failing and any(lo <= slot <= hi for lo, hi in node.slots):
                candidate = (epochs.get(node.id, 0), node.id)
                if best is None or candidate[0] > best[0]:
                    best = candidate
    return None if best is None else best[1]


class NetWriter(threading.Thread):
    """Sequence-numbered ``SET`` + ``WAIT 1 100`` to keys of one slot, recording which node acknowledged each;
    bounded in count and time."""

    def __init__(self, view: ClusterView, tag: str, slot: int, deadline: float, max_writes: int = 50_000) -> None:
        super().__init__(daemon=True)
        self.view = view
        self.tag = tag
        self.slot = slot
        self.deadline = deadline
        self.max_writes = max_writes
        self.acks: list[NetAck] = []
        self.errors: dict[str, int] = {}
        self.stopping = threading.Event()

    def key(self, seq: int) -> str:
        return f"{self.tag}:{seq}"

    def owner(self) -> RedisNodeContainer:
        views = []
        for container in self.view.cluster.nodes:
            try:
                with self.view.client_for(container) as client:
                    views.append(str(client.execute_command("CLUSTER", "NODES")))
            except (redis.RedisError, OSError):
                continue
        owner = owner_by_epoch(views, self.slot)
        if owner is None:
            raise redis.ConnectionError(f"no reachable node names a live owner of slot {self.slot}")
        return self.view.container_of(owner)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        seq = 0
        client: redis.Redis | None = None
        node = ""
        while not self.stopping.is_set() and time.monotonic() < self.deadline and seq < self.max_writes:
            try:
                if client is None:
                    target = self.owner()
                    client, node = self.view.client_for(target), target.alias
                client.set(self.key(seq + 1), seq + 1)
                seq += 1
                replicas = int(client.execute_command("WAIT", 1, 100))  # type: ignore[no-untyped-call]
                self.acks.append(NetAck(seq, time.monotonic(), replicas >= 1, node))
            except (redis.RedisError, OSError, DrillError) as exc:
                first = str(exc).split(" ", 1)[0]
                kind = f"{type(exc).__name__} {first}" if first.isupper() else type(exc).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                if client is not None:
                    client.close()
                client = None
                self.stopping.wait(POLL_S)
                continue
            self.stopping.wait(0.005)
        if client is not None:
            client.close()


@contextlib.contextmanager
def running(*threads: NetWriter | LatencyWorker) -> Iterator[None]:
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for thread in threads:
            thread.stop()


def missing_seqs(view: ClusterView, writer: NetWriter) -> set[int]:
    """Acknowledged sequence numbers whose key does not hold its value on the slot's owner now."""
    with view.client_for(writer.owner()) as client:
        missing = set()
        seqs = [a.seq for a in writer.acks]
        for i in range(0, len(seqs), 500):
            chunk = seqs[i:i + 500]
            values = client.mget([writer.key(s) for s in chunk])
            missing |= {s for s, v in zip(chunk, values, strict=True) if v != str(s)}
        return missing


def delete_keys(view: ClusterView, writer: NetWriter) -> None:
    with contextlib.suppress(redis.RedisError, OSError, DrillError), view.client_for(writer.owner()) as client:
        keys = [writer.key(a.seq) for a in writer.acks]
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])


# ---------------------------------------------------------------------------------------- partition


@dataclass
class PartitionRound:
    round: int
    fault: str
    victim: str
    min_replicas_to_write: int
    detect_ms: float | None = None
    victim_down_ms: float | None = None
    promote_ms: float | None = None
    cluster_ok_ms: float | None = None
    last_victim_ack_ms: float | None = None
    rejoin_ms: float | None = None
    writes_acked: int = 0
    writes_replicated: int = 0
    split_brain_writes: int | None = None
    lost_writes: int | None = None
    lost_replicated: int | None = None
    writer_errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def partition_verdict(result: PartitionRound) -> list[str]:
    """The invariants of a partition round, as messages (empty when they hold)."""
    problems = []
    if result.lost_replicated:
        problems.append(f"{result.lost_replicated} write(s) confirmed by WAIT 1 were lost")
    if result.min_replicas_to_write >= 1:
        if result.split_brain_writes:
            problems.append(f"{result.split_brain_writes} write(s) acknowledged by the isolated {result.victim} "
                            f"after the promotion although min-replicas-to-write is {result.min_replicas_to_write}")
        if not any(kind.endswith(" NOREPLICAS") for kind in result.writer_errors):
            problems.append(f"the isolated {result.victim} never refused a write with NOREPLICAS although "
                            f"min-replicas-to-write is {result.min_replicas_to_write}; writer errors: "
                            f"{result.writer_errors or 'none'}")
    elif result.split_brain_writes == 0:
        problems.append(f"positive control failed: with min-replicas-to-write 0 the isolated {result.victim} "
                        "acknowledged no write after the promotion, so this round could not have seen a split brain")
    if result.promote_ms is None:
        problems.append(f"the replica of {result.victim} was not promoted")
    if result.split_brain_writes is None or result.lost_writes is None:
        problems.append("the writes were not counted (no promotion, or the cluster did not heal)")
    return problems


def set_node_timeouts(view: ClusterView, timeouts: Mapping[str, int]) -> None:
    """``cluster-node-timeout`` per node alias (``CONFIG SET``: taken at once, no restart)."""
    for container in view.cluster.nodes:
        with view.client_for(container) as client:
            client.config_set("cluster-node-timeout", timeouts[container.alias])


def partition_round(cluster: RedisCluster, number: int, min_replicas: int, timeout: float, image: str,
                    peer_timeout_ms: int, victim_timeout_ms: int) -> PartitionRound:
    """One partition round; the cluster is whole again (min-replicas-to-write back to 0, every node's
    ``cluster-node-timeout`` back to the cluster's) when it returns."""
    view = ClusterView(cluster)
    view.wait_healthy(timeout, f"the cluster to be whole before the round ({cluster.masters} masters, "
                      f"{cluster.replicas} replica(s) each)")
    for container in cluster.nodes:
        view.container_of(view.myself(container).id)
    masters = sorted((c for c in cluster.nodes if view.myself(c).is_master), key=lambda c: c.alias)
    victim = masters[number % len(masters)]
    survivor = next(c for c in masters if c is not victim)
    me = view.myself(victim)
    replica_id = next(n.id for n in view.nodes(survivor) if n.master_id == me.id)
    slot = me.slots[0][0]
    result = PartitionRound(round=number, fault=f"iptables, min-replicas-to-write {min_replicas}",
                            victim=victim.alias, min_replicas_to_write=min_replicas)
    writer = NetWriter(view, key_for_slot(slot, prefix=f"part-{secrets.token_hex(2)}-"), slot,
                       deadline=time.monotonic() + 2 * timeout)
    try:
        set_min_replicas(view, min_replicas)
        set_node_timeouts(view, {c.alias: victim_timeout_ms if c is victim else peer_timeout_ms
                                 for c in cluster.nodes})
        wait_replicated(view, victim, timeout)
        with NetHelper(victim, image) as helper:
            route = helper.route()
            with view.client_for(victim) as client:
                problem = client_source_problem(str(client.client_info().get("addr", "")), route.gateway)
            if problem:
                raise DrillError(problem)
            with running(writer):
                poll(lambda: len(writer.acks), what="the writer to get 50 acknowledged writes before the fault",
                     timeout=10, accept=lambda n: n >= 50, hint="the cluster answers too slowly; read the logs")
                t0 = time.monotonic()
                with partitioned(helper, route) as leftovers:
                    seen = _observe_partition(view, victim, survivor, me.id, replica_id, slot, timeout)
                    writer.stop()
                    t1 = time.monotonic()
                result.problems += leftovers
        if leftovers:
            raise DrillError("; ".join(leftovers))
        _fill_partition(result, seen, writer, t0)
        view.wait_healthy(timeout, f"{victim.alias} to rejoin after the partition and the cluster to be whole again")
        if view.myself(victim).is_master:
            result.problems.append(f"{victim.alias} came back as a master, expected a replica")
        result.rejoin_ms = _ms(t1, time.monotonic())
        if "promoted" in seen:
            missing = missing_seqs(view, writer)
            promoted = seen["promoted"]
            result.lost_writes = len(missing)
            result.lost_replicated = sum(1 for a in writer.acks if a.replicated and a.seq in missing)
            result.split_brain_writes = sum(1 for a in writer.acks if a.node == victim.alias and a.at > promoted)
        result.problems += partition_verdict(result)
    finally:
        writer.stop()
        with contextlib.suppress(redis.RedisError, OSError):
            set_min_replicas(view, 0)
        with contextlib.suppress(redis.RedisError, OSError):
            set_node_timeouts(view, {c.alias: cluster.node_timeout_ms for c in cluster.nodes})
        delete_keys(view, writer)
    return result


def _observe_partition(view: ClusterView, victim: RedisNodeContainer, survivor: RedisNodeContainer, victim_id: str,
                       replica_id: str, slot: int, timeout: float) -> dict[str, float]:
    """Poll until the survivors detected, promoted and are ok again and the isolated victim went down."""
    seen: dict[str, float] = {}

    def observe() -> dict[str, float]:
        with contextlib.suppress(redis.RedisError, OSError):  # the victim answers through the gateway
            if view.info(victim).get("cluster_state") == "fail":
                seen.setdefault("victim_down", time.monotonic())
        nodes = {n.id: n for n in view.nodes(survivor)}
        info = view.info(survivor)
        now = time.monotonic()
        victim_node = nodes.get(victim_id)
        if victim_node is not None and "fail" in victim_node.flags:
            seen.setdefault("detected", now)
        replica = nodes.get(replica_id)
        if replica is not None and replica.is_master and any(lo <= slot <= hi for lo, hi in replica.slots):
            seen.setdefault("promoted", now)
        if "promoted" in seen and info.get("cluster_state") == "ok" and \
                info.get("cluster_slots_ok") == str(CLUSTER_SLOTS):
            seen.setdefault("ok", now)
        return seen

    with contextlib.suppress(ReadinessTimeout):  # a stage never seen is reported, not raised
        poll(observe, what="the survivors to detect, promote and be ok, and the isolated master to go down",
             timeout=timeout, interval=POLL_S, accept=lambda stages: len(stages) == 4,
             transient=(redis.RedisError, OSError), hint="see the round's problems")
    return seen


def _fill_partition(result: PartitionRound, seen: dict[str, float], writer: NetWriter, t0: float) -> None:
    result.detect_ms = _ms(t0, seen.get("detected"))
    result.victim_down_ms = _ms(t0, seen.get("victim_down"))
    result.promote_ms = _ms(t0, seen.get("promoted"))
    result.cluster_ok_ms = _ms(t0, seen.get("ok"))
    victim_acks = [a.at for a in writer.acks if a.node == result.victim and a.at > t0]
    result.last_victim_ack_ms = _ms(t0, max(victim_acks)) if victim_acks else None  # none: not measured
    result.writes_acked = len(writer.acks)
    result.writes_replicated = sum(a.replicated for a in writer.acks)
    result.writer_errors = dict(writer.errors)
    for stage, text in (("detected", "no survivor flagged the victim fail"),
                        ("victim_down", "the isolated victim never reported cluster_state fail"),
                        ("ok", "the survivors did not report cluster_state ok with every slot")):
        if stage not in seen:
            result.problems.append(text)


# ------------------------------------------------------------------------------------------- latency


class LatencyWorker(threading.Thread):
    """``SET`` + ``WAIT 1`` on one node at a steady pace; records (time, milliseconds) per completed operation."""

    def __init__(self, view: ClusterView, node: RedisNodeContainer, key: str, wait_ms: int, deadline: float,
                 max_ops: int = 100_000) -> None:
        super().__init__(daemon=True)
        self.view = view
        self.node = node
        self.key = key
        self.wait_ms = wait_ms
        self.deadline = deadline
        self.max_ops = max_ops
        self.samples: list[tuple[float, float]] = []
        self.unreplicated = 0
        self.errors: dict[str, int] = {}
        self.stopping = threading.Event()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.node.host_port(REDIS_PORT),
                             password=self.view.cluster.password, decode_responses=True,
                             socket_timeout=(self.wait_ms + 2000) / 1000, socket_connect_timeout=2)
        ops = 0
        next_at = time.monotonic()
        try:
            while not self.stopping.is_set() and time.monotonic() < self.deadline and ops < self.max_ops:
                # Steady: one operation per PACE_S per worker, or back to back when an operation takes longer.
                self.stopping.wait(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at + PACE_S, time.monotonic())
                ops += 1
                start = time.perf_counter()
                try:
                    client.set(self.key, ops)
                    replicas = int(client.execute_command("WAIT", 1, self.wait_ms))  # type: ignore[no-untyped-call]
                except (redis.RedisError, OSError) as exc:
                    self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                    self.stopping.wait(POLL_S)
                    continue
                self.samples.append((time.monotonic(), (time.perf_counter() - start) * 1000))
                self.unreplicated += replicas < 1
        finally:
            client.close()


@dataclass
class LatencyRound:
    round: int
    fault: str
    victim: str
    delay_ms: int
    node_timeout_ms: int
    method: str = ""
    method_note: str = ""
    before_p50_ms: float | None = None
    before_p99_ms: float | None = None
    during_p50_ms: float | None = None
    during_p99_ms: float | None = None
    added_p50_ms: float | None = None
    ops_before: int = 0
    ops_during: int = 0
    unreplicated: int = 0
    pfail_flags: int | None = None  # None: not watched
    failovers: int | None = None
    failover_detail: str = ""
    recover_ms: float | None = None
    worker_errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def latency_verdict(result: LatencyRound) -> list[str]:
    """The invariants of a latency round: no failover below the node timeout, and the delay took effect."""
    problems = []
    if result.failovers:
        problems.append(f"a failover was triggered by a {result.delay_ms} ms delay, below cluster-node-timeout "
                        f"{result.node_timeout_ms} ms: {result.failover_detail}")
    if result.added_p50_ms is None:
        problems.append("no client latency was measured before and during the delay")
    elif result.added_p50_ms < result.delay_ms / 2:
        problems.append(f"the delay did not take effect: the client p50 rose by {result.added_p50_ms:g} ms "
                        f"({result.before_p50_ms:g} -> {result.during_p50_ms:g}), expected at least "
                        f"{result.delay_ms / 2:g} ms of the {result.delay_ms} ms delay")
    return problems


def failover_signs(views: Mapping[str, str], victim_id: str, replica_id: str, epoch0: int,
                   epochs: Mapping[str, int]) -> tuple[int, str]:
    """From every node's ``CLUSTER NODES`` (alias -> raw) and current epoch: (number of pfail/fail flags seen,
    failover description or "")."""
    flags = 0
    detail = []
    for alias, raw in views.items():
        for node in parse_cluster_nodes(raw):
            if node.failing:
                flags += 1
            if node.id == victim_id and not node.is_master:
                detail.append(f"{alias} sees the delayed master {victim_id[:8]} as {'/'.join(sorted(node.flags))}")
            if node.id == replica_id and node.is_master:
                detail.append(f"{alias} sees its replica {replica_id[:8]} as a master")
    bumped = {alias: e for alias, e in epochs.items() if e > epoch0}
    if bumped:
        detail.append(f"the current epoch rose from {epoch0} ({', '.join(f'{a}: {e}' for a, e in bumped.items())})")
    return flags, "; ".join(detail)


def latency_round(cluster: RedisCluster, number: int, delay_ms: int, method: str, timeout: float,
                  image: str) -> LatencyRound:
    """One latency round: measure, delay one master towards its peers, measure and watch, undo."""
    node_timeout = cluster.node_timeout_ms
    if not 0 < delay_ms < node_timeout:
        raise DrillError(f"the latency drill needs a delay below cluster-node-timeout ({node_timeout} ms), "
                         f"not {delay_ms} ms")
    view = ClusterView(cluster)
    view.wait_healthy(timeout, "the cluster to be whole before the round")
    for container in cluster.nodes:
        view.container_of(view.myself(container).id)
    masters = sorted((c for c in cluster.nodes if view.myself(c).is_master), key=lambda c: c.alias)
    victim = masters[number % len(masters)]
    survivor = next(c for c in masters if c is not victim)
    me = view.myself(victim)
    replica_id = next(n.id for n in view.nodes(survivor) if n.master_id == me.id)
    result = LatencyRound(round=number, fault=f"{method} {delay_ms}ms", victim=victim.alias, delay_ms=delay_ms,
                          node_timeout_ms=node_timeout)
    wait_replicated(view, victim, timeout)
    epoch0 = max(int(view.info(c).get("cluster_current_epoch", 0)) for c in cluster.nodes)
    during_s = max(5.0, 5 * node_timeout / 1000)
    tag = key_for_slot(me.slots[0][0], prefix=f"lat-{secrets.token_hex(2)}-")
    workers = [LatencyWorker(view, victim, f"{tag}:{i}", wait_ms=max(1000, 4 * delay_ms),
                             deadline=time.monotonic() + BEFORE_S + during_s + timeout)
               for i in range(LATENCY_WORKERS)]
    flags: list[int] = []  # pfail/fail flags seen per look
    details: list[str] = []  # failover signs, first one first

    def watch(seconds: float) -> None:
        """Observe every node's view for ``seconds``: a pfail/fail flag or a failover is recorded."""
        def look() -> bool:
            views, epochs = {}, {}
            for c in cluster.nodes:
                with contextlib.suppress(redis.RedisError, OSError):
                    with view.client_for(c) as client:
                        views[c.alias] = str(client.execute_command("CLUSTER", "NODES"))
                    epochs[c.alias] = int(view.info(c).get("cluster_current_epoch", 0))
            seen, detail = failover_signs(views, me.id, replica_id, epoch0, epochs)
            flags.append(seen)
            if detail:
                details.append(detail)
            return time.monotonic() >= end

        end = time.monotonic() + seconds
        poll(look, what=f"{seconds:g} s of watching the cluster", timeout=seconds + 30, interval=0.1, accept=bool,
             hint="reading CLUSTER NODES from every node should take milliseconds")

    try:
        with NetHelper(victim, image) as helper, running(*workers):
            route = helper.route()
            b0 = time.monotonic()
            watch(BEFORE_S)
            b1 = time.monotonic()
            delay = apply_delay(helper, route, delay_ms, method)
            result.method, result.method_note = delay.method, delay.note
            result.fault = f"{delay.method} {delay_ms}ms"
            try:
                d0 = time.monotonic()
                watch(during_s)
                d1 = time.monotonic()
            finally:
                for w in workers:
                    w.stop()
                t1 = time.monotonic()
                result.problems += delay.undo()
        if any("not undone" in p or "still installed" in p for p in result.problems):
            raise DrillError("; ".join(result.problems))
        view.wait_healthy(timeout, f"the cluster to be whole after the delay on {victim.alias} was removed")
        result.recover_ms = _ms(t1, time.monotonic())
        if not view.myself(victim).is_master:
            details.append(f"{victim.alias} is a replica after the round")
    finally:
        for w in workers:
            w.stop()
    samples = [s for w in workers for s in w.samples]
    before = [ms for at, ms in samples if b0 <= at <= b1]
    during = [ms for at, ms in samples if d0 + 2 * delay_ms / 1000 <= at <= d1]  # requests begun after the delay
    result.ops_before, result.ops_during = len(before), len(during)
    if before and during:
        result.before_p50_ms, result.before_p99_ms = _pct(before, 50), _pct(before, 99)
        result.during_p50_ms, result.during_p99_ms = _pct(during, 50), _pct(during, 99)
        result.added_p50_ms = round(result.during_p50_ms - result.before_p50_ms, 1)
    result.unreplicated = sum(w.unreplicated for w in workers)
    result.worker_errors = {k: sum(w.errors.get(k, 0) for w in workers) for w in workers for k in w.errors}
    result.pfail_flags = sum(flags)
    result.failover_detail = details[0] if details else ""
    result.failovers = 1 if details else 0
    result.problems += latency_verdict(result)
    return result


def _pct(values: list[float], pct: float) -> float:
    return round(statistics.median(values) if pct == 50 else percentile(values, pct), 1)


# -------------------------------------------------------------------------------------------- report


def net_report(kind: str, rounds: list[Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON drill report (same shape as :func:`harness.drills.redis.report`)."""
    metrics = PARTITION_METRICS if kind == "redis-partition" else LATENCY_METRICS
    return {"drill": kind, "settings": settings, "rounds": [asdict(r) for r in rounds],
            "summary": summarize(rounds, metrics), "failed_rounds": [r.round for r in rounds if r.problems]}


def nettools_image(settings: Settings) -> str:
    """The network helper's image under the settings' image set (``HARNESS_IMAGE_NETTOOLS`` overrides it)."""
    from harness.images import ImageResolver
    from harness.stacks.docker_env import docker_client

    resolved = ImageResolver(docker_client(), settings).resolve("nettools")
    if not resolved.available or resolved.ref is None:
        raise DrillError(f"the network drills need the nettools image: {resolved.reason}")
    return resolved.ref
