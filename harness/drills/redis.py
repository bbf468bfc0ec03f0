"""Redis cluster drills that measure instead of print constants: failover (3 masters + 3 replicas) and node
loss (3 masters, no replicas).

Failover round: a background writer sends sequence-numbered ``SET``s, each followed by ``WAIT 1``, to keys in
the victim master's slots (one connection, 250 ms socket timeouts, no client retries: the writer finds the
slot's owner again itself after every error). A fault is injected at ``t0`` (``kill``, ``stop``, ``pause`` or
``disconnect`` from the network) and a surviving master is polled every 50 ms:

* ``detect_ms``: t0 -> the survivor flags the victim ``fail``;
* ``promote_ms``: t0 -> the victim's replica is a master owning the slot;
* ``cluster_ok_ms``: t0 -> ``cluster_state:ok`` with 16384 slots assigned and ok;
* ``client_outage_ms``: the longest gap between consecutive acknowledged writes, from the last one before t0
  to the end of the round (what a writing client feels);
* ``lost_writes``: acknowledged writes not readable afterwards; ``lost_replicated``: those that ``WAIT``
  confirmed on a replica (must be 0);
* ``rejoin_ms``: fault undone -> the old master is a healthy replica and the cluster is whole again.

Node-loss round: one master is stopped; with ``cluster-require-full-coverage no`` the rest keeps serving and
its slots answer ``MOVED`` to a dead address; with ``yes`` every key answers ``CLUSTERDOWN``. It is started
again from its AOF: ``recovery_ms`` and whether every key written before the loss is back.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.drills.redis_slots import (
    CLUSTER_SLOTS,
    ClusterNode,
    coverage_problems,
    health_problems,
    key_for_slot,
    key_slot,
    keys_for_slots,
    parse_cluster_nodes,
)
from harness.settings import Settings
from stack.errors import HarnessError, ReadinessTimeout
from stack.redis_cluster import REDIS_PORT, RedisCluster, RedisNodeContainer
from stack.waiting import poll

FAULTS = ("kill", "stop", "pause", "disconnect")
FAILOVER_METRICS = ("detect_ms", "promote_ms", "cluster_ok_ms", "client_outage_ms", "lost_writes",
                    "lost_replicated", "rejoin_ms")
NODE_LOSS_METRICS = ("detect_ms", "recovery_ms", "keys_missing")
POLL_S = 0.05
SOCKET_TIMEOUT_S = 0.25
KEYS_PER_MASTER = 100  # keys the node-loss round writes into each master's slots


class DrillError(HarnessError):
    """A drill could not be set up or its cluster could not be restored."""


# ------------------------------------------------------------------------------------------ cluster view


class ClusterView:
    """Live facts about a running cluster, read through the published ports."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self._ids: dict[str, RedisNodeContainer] = {}

    def client_for(self, container: RedisNodeContainer) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=container.host_port(REDIS_PORT), password=self.cluster.password,
                           decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
                           socket_connect_timeout=SOCKET_TIMEOUT_S, retry=Retry(NoBackoff(), 0))

    def nodes(self, container: RedisNodeContainer) -> list[ClusterNode]:
        with self.client_for(container) as client:
            return parse_cluster_nodes(client.execute_command("CLUSTER", "NODES"))

    def info(self, container: RedisNodeContainer) -> dict[str, str]:
        with self.client_for(container) as client:
            raw = client.execute_command("CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line)

    def myself(self, container: RedisNodeContainer) -> ClusterNode:
        return next(n for n in self.nodes(container) if "myself" in n.flags)

    def problems(self, container: RedisNodeContainer) -> list[str]:
        """Everything wrong with the cluster as ``container`` sees it (empty when whole and healthy)."""
        nodes = self.nodes(container)
        ranges = [(low, high, n.id) for n in nodes if n.is_master and not n.failing for low, high in n.slots]
        info = self.info(container)
        problems = health_problems(nodes, self.cluster.masters, self.cluster.replicas) + coverage_problems(ranges)
        if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(CLUSTER_SLOTS):
            problems.append(f"cluster_state {info.get('cluster_state')}, slots ok {info.get('cluster_slots_ok')}")
        return problems

    def wait_healthy(self, timeout: float, what: str) -> None:
        """Poll every node until none sees a problem."""
        def all_clean() -> list[str]:
            return [f"{c.alias}: {p}" for c in self.cluster.nodes for p in self.problems(c)]

        poll(all_clean, what=what, timeout=timeout, interval=0.1, accept=lambda found: not found,
             hint="a node that never rejoins: read its log; `cluster-node-timeout` bounds how fast gossip heals")

    def container_of(self, node_id: str) -> RedisNodeContainer:
        """The container running a node id (ids survive restarts: nodes.conf lives in /data)."""
        if node_id not in self._ids:
            for container in self.cluster.nodes:
                if container in self._ids.values():
                    continue
                try:
                    self._ids[self.myself(container).id] = container
                except (redis.RedisError, OSError):
                    continue
        if node_id not in self._ids:
            raise DrillError(f"no reachable container runs node {node_id}")
        return self._ids[node_id]


# ---------------------------------------------------------------------------------------------- faults


def inject(container: RedisNodeContainer, fault: str) -> Callable[[], None]:
    """Apply a fault to a node's container; returns the action that undoes it."""
    wrapped = container.get_wrapped_container()
    if fault == "kill":
        wrapped.kill(signal="SIGKILL")
        return lambda: wrapped.start()
    if fault == "stop":
        wrapped.stop(timeout=10)
        return lambda: wrapped.start()
    if fault == "pause":
        wrapped.pause()
        return lambda: wrapped.unpause()
    if fault == "disconnect":
        network = container.get_docker_client().client.networks.get(container.ctx.network.name)
        network.disconnect(wrapped, force=True)
        return lambda: network.connect(wrapped, aliases=[container.alias])
    raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")


class Fault:
    """An injected fault whose undo runs once: by the round when it measures the recovery, else on the way out."""

    def __init__(self, undo: Callable[[], None]) -> None:
        self._undo = undo
        self.undone = False

    def undo(self) -> None:
        if not self.undone:
            self.undone = True
            self._undo()


@contextlib.contextmanager
def injected(container: RedisNodeContainer, fault: str) -> Iterator[Fault]:
    """Inject ``fault``; whatever happens inside the block, the node is not left killed, stopped, paused or
    disconnected when it ends (an exception mid-round included)."""
    applied = Fault(inject(container, fault))
    try:
        yield applied
    finally:
        applied.undo()


# ---------------------------------------------------------------------------------------------- writer


@dataclass
class _Ack:
    seq: int
    at: float
    replicated: bool


class Writer(threading.Thread):
    """Sequence-numbered writes to keys of one slot, bounded in count and time."""

    def __init__(self, view: ClusterView, tag: str, slot: int, deadline: float, max_writes: int = 50_000) -> None:
        super().__init__(daemon=True)
        self.view = view
        self.tag = tag
        self.slot = slot
        self.deadline = deadline
        self.max_writes = max_writes
        self.acks: list[_Ack] = []
        self.errors: dict[str, int] = {}
        self.stopping = threading.Event()
        self._client: redis.Redis | None = None

    def key(self, seq: int) -> str:
        return f"{self.tag}:{seq}"

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the writer to stop and wait for it (each write is bounded by the socket timeouts)."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def _owner_client(self) -> redis.Redis:
        """Ask every reachable node who owns the slot; connect to that master's published port."""
        for container in self.view.cluster.nodes:
            try:
                nodes = self.view.nodes(container)
            except (redis.RedisError, OSError):
                continue
            for node in nodes:
                if node.is_master and not node.failing and any(lo <= self.slot <= hi for lo, hi in node.slots):
                    return self.view.client_for(self.view.container_of(node.id))
        raise redis.ConnectionError(f"no reachable node names a live owner of slot {self.slot}")

    def run(self) -> None:
        seq = 0
        while not self.stopping.is_set() and time.monotonic() < self.deadline and seq < self.max_writes:
            try:
                if self._client is None:
                    self._client = self._owner_client()
                client = self._client
                client.set(self.key(seq + 1), seq + 1)
                seq += 1
                replicas = int(client.execute_command("WAIT", 1, 100))  # type: ignore[no-untyped-call]
                self.acks.append(_Ack(seq, time.monotonic(), replicas >= 1))
            except (redis.RedisError, OSError, DrillError) as exc:
                kind = type(exc).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                if self._client is not None:
                    self._client.close()
                self._client = None
                self.stopping.wait(POLL_S)
                continue
            self.stopping.wait(0.005)  # pacing: about 100-150 writes/s
        if self._client is not None:
            self._client.close()


@contextlib.contextmanager
def writing(writer: Writer) -> Iterator[Writer]:
    """Run ``writer`` for the block; it is stopped on the way out, also when the block raises."""
    writer.start()
    try:
        yield writer
    finally:
        writer.stop()


# ------------------------------------------------------------------------------------------- failover


@dataclass
class FailoverRound:
    round: int
    fault: str
    victim: str
    detect_ms: float | None = None
    promote_ms: float | None = None
    cluster_ok_ms: float | None = None
    client_outage_ms: float | None = None
    rejoin_ms: float | None = None
    writes_acked: int = 0
    writes_replicated: int = 0
    lost_writes: int | None = None  # None: not counted (no promotion, so the writes were never read back)
    lost_replicated: int | None = None
    writer_errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _ms(start: float, end: float | None) -> float | None:
    return None if end is None else round((end - start) * 1000, 1)


def failover_round(cluster: RedisCluster, number: int, fault: str, timeout: float) -> FailoverRound:
    """One failover round; the cluster is whole again when it returns (or :class:`DrillError` says why not)."""
    view = ClusterView(cluster)
    view.wait_healthy(timeout, f"the cluster to be whole before the round ({cluster.masters} masters, "
                      f"{cluster.replicas} replica(s) each)")
    for container in cluster.nodes:
        view.container_of(view.myself(container).id)  # learn every node id while all are reachable
    masters = sorted((c for c in cluster.nodes if view.myself(c).is_master), key=lambda c: c.alias)
    victim = masters[number % len(masters)]
    survivor = next(c for c in masters if c is not victim)
    me = view.myself(victim)
    replica_id = next(n.id for n in view.nodes(survivor) if n.master_id == me.id)
    slot = me.slots[0][0]
    tag = key_for_slot(slot, prefix=f"drill-{secrets.token_hex(2)}-")
    result = FailoverRound(round=number, fault=fault, victim=victim.alias)

    writer = Writer(view, tag, slot, deadline=time.monotonic() + timeout)
    # The fault's undo and the writer's stop are in `finally` (the context managers): an exception anywhere
    # in the round never leaves a node killed, paused or disconnected, nor a writer running.
    with writing(writer):
        try:
            poll(lambda: len(writer.acks), what="the writer to get 50 acknowledged writes before the fault",
                 timeout=10, accept=lambda n: n >= 50, hint="the cluster answers too slowly; check the nodes' logs")
            t0 = time.monotonic()  # before the fault call: `stop` takes as long as the server's shutdown
            with injected(victim, fault) as applied:
                _observe_failover(view, survivor, me, replica_id, slot, writer, t0, timeout, result)
                t1 = time.monotonic()
                applied.undo()
            view.wait_healthy(timeout, f"{victim.alias} to rejoin after the {fault} and the cluster to be whole "
                              "again")
            rejoined = view.myself(victim)
            if rejoined.is_master:
                result.problems.append(f"{victim.alias} came back as a master, expected a replica")
            result.rejoin_ms = _ms(t1, time.monotonic())
        finally:
            writer.stop()
            with contextlib.suppress(redis.RedisError, OSError, DrillError):  # the drill's keys, its own cluster
                _delete(view, writer)
    return result


def _observe_failover(view: ClusterView, survivor: RedisNodeContainer, me: ClusterNode, replica_id: str, slot: int,
                      writer: Writer, t0: float, timeout: float, result: FailoverRound) -> None:
    """From the fault on: when the survivor sees detection, promotion and ``ok``; then stop the writer and
    count the outage and the lost writes into ``result``."""
    seen: dict[str, float] = {}
    end = t0 + timeout

    def observe() -> dict[str, float]:
        """Record when the survivor first shows each stage; unreachable moments are retried by poll."""
        nodes = {n.id: n for n in view.nodes(survivor)}
        info = view.info(survivor)
        now = time.monotonic()
        if "fail" in nodes.get(me.id, me).flags:
            seen.setdefault("detected", now)
        replica = nodes.get(replica_id)
        if replica is not None and replica.is_master and any(lo <= slot <= hi for lo, hi in replica.slots):
            seen.setdefault("promoted", now)
        if "promoted" in seen and info.get("cluster_state") == "ok" and \
                info.get("cluster_slots_ok") == str(CLUSTER_SLOTS):
            seen.setdefault("ok", now)
        return seen

    with contextlib.suppress(ReadinessTimeout):  # a stage never seen is reported below, not raised
        poll(observe, what="the survivors to detect the fault, promote the replica and be ok again",
             timeout=timeout, interval=POLL_S, accept=lambda stages: len(stages) == 3,
             transient=(redis.RedisError, OSError), hint="see the round's problems")
    detected, promoted, ok = seen.get("detected"), seen.get("promoted"), seen.get("ok")
    result.detect_ms, result.promote_ms, result.cluster_ok_ms = _ms(t0, detected), _ms(t0, promoted), _ms(t0, ok)
    if promoted is None:
        result.problems.append(f"replica {replica_id[:8]} did not take over within {timeout:.0f} s")
    else:
        # After the promotion, not merely after t0: the victim may still acknowledge a write in the
        # milliseconds after the fault call, and stopping the writer then would hide the outage.
        poll(lambda: [a for a in writer.acks if a.at > promoted], what="the writer's first acknowledged write "
             "after the promotion", timeout=max(1.0, end - time.monotonic()), accept=bool,
             hint="the writer could not find the new owner of the slot")
    writer.stop()

    # The outage is the longest silence between consecutive acknowledged writes from the last one before the
    # fault on (a write or two may still be acknowledged by the victim in the milliseconds after t0).
    times = [a.at for a in writer.acks]
    start = max((i for i, at in enumerate(times) if at <= t0), default=None)
    if start is not None and len(times) > start + 1 and times[-1] > t0:
        result.client_outage_ms = round(max(b - a for a, b in zip(times[start:], times[start + 1:],
                                                                      strict=False)) * 1000, 1)
    result.writes_acked = len(writer.acks)
    result.writes_replicated = sum(a.replicated for a in writer.acks)
    result.writer_errors = writer.errors
    if promoted is not None:
        missing = _missing(view, writer)
        result.lost_writes = len(missing)
        result.lost_replicated = sum(1 for a in writer.acks if a.replicated and a.seq in missing)


def _missing(view: ClusterView, writer: Writer) -> set[int]:
    client = writer._owner_client()
    try:
        missing = set()
        seqs = [a.seq for a in writer.acks]
        for i in range(0, len(seqs), 500):
            chunk = seqs[i:i + 500]
            values = client.mget([writer.key(s) for s in chunk])
            missing |= {s for s, v in zip(chunk, values, strict=True) if v != str(s)}
        return missing
    finally:
        client.close()


def _delete(view: ClusterView, writer: Writer) -> None:
    try:
        client = writer._owner_client()
    except redis.RedisError:
        return
    try:
        keys = [writer.key(a.seq) for a in writer.acks]
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
    finally:
        client.close()


# ------------------------------------------------------------------------------------------ node loss


@dataclass
class NodeLossRound:
    round: int
    full_coverage: bool
    victim: str
    detect_ms: float | None = None
    recovery_ms: float | None = None
    keys_written: int = 0
    keys_missing: int | None = None  # None: not counted
    surviving_slots_served: bool | None = None
    lost_slots_error: str = ""
    victim_ip: str = ""  # the stopped master's address as the cluster names it (where MOVED must point)
    problems: list[str] = field(default_factory=list)


def node_loss_round(cluster: RedisCluster, number: int, full_coverage: bool, timeout: float) -> NodeLossRound:
    """Stop one master of a cluster without replicas, observe what still works, start it from its AOF."""
    if cluster.replicas:
        raise DrillError("the node-loss drill needs a cluster without replicas")
    view = ClusterView(cluster)
    view.wait_healthy(timeout, "the cluster to be whole before the round")
    for container in cluster.nodes:
        view.container_of(view.myself(container).id)
    for container in cluster.nodes:
        with view.client_for(container) as client:
            client.config_set("cluster-require-full-coverage", "yes" if full_coverage else "no")
    victim = sorted(cluster.nodes, key=lambda c: c.alias)[number % len(cluster.nodes)]
    survivor = next(c for c in cluster.nodes if c is not victim)
    me = view.myself(victim)
    result = NodeLossRound(round=number, full_coverage=full_coverage, victim=victim.alias, victim_ip=me.ip)

    keys = _keys_on_every_master(view, prefix=f"loss-{secrets.token_hex(2)}-")
    result.keys_written = sum(len(v) for v in keys.values())
    lost_key = keys[me.id][0]
    kept_key = next(k for node_id, ks in keys.items() if node_id != me.id for k in ks)

    t0 = time.monotonic()
    # graceful: the AOF is flushed, so every acknowledged key must come back. The undo (start) is also run
    # on the way out when anything below raises, so the next round finds every node running.
    with injected(victim, "stop") as applied:
        poll(lambda: "fail" in next(n for n in view.nodes(survivor) if n.id == me.id).flags,
             what=f"the survivors to flag {victim.alias} as failed", timeout=timeout, accept=bool,
             hint="failure detection needs about 2 x cluster-node-timeout")
        result.detect_ms = _ms(t0, time.monotonic())
        if not full_coverage:
            poll(lambda: view.info(survivor).get("cluster_state"), what="the survivors to stay in cluster_state ok",
                 timeout=timeout, accept=lambda s: s == "ok", hint="full coverage is off, so the state stays ok")
        else:
            poll(lambda: view.info(survivor).get("cluster_state"), what="the survivors to report cluster_state "
                 "fail", timeout=timeout, accept=lambda s: s == "fail",
                 hint="full coverage is on, so the cluster goes down")
        result.surviving_slots_served, result.lost_slots_error = _probe_loss(view, survivor, kept_key, lost_key)
        t1 = time.monotonic()
        applied.undo()
    view.wait_healthy(timeout, f"{victim.alias} to be back from its AOF and the cluster whole again")
    result.recovery_ms = _ms(t1, time.monotonic())
    result.keys_missing = _count_missing(view, keys)
    _delete_keys(view, keys)
    return result


def _keys_on_every_master(view: ClusterView, prefix: str, per_master: int = KEYS_PER_MASTER) -> dict[str, list[str]]:
    """Write ``per_master`` keys into the slots of every master (directly on that master)."""
    written: dict[str, list[str]] = {}
    for container in view.cluster.nodes:
        me = view.myself(container)
        if not me.is_master:
            continue
        low, high = me.slots[0]
        slots = [low + i % (high - low + 1) for i in range(per_master)]
        tags = keys_for_slots(slots, prefix)
        names = [f"{tags[slot]}:{i}" for i, slot in enumerate(slots)]
        with view.client_for(container) as client:
            for name in names:
                client.set(name, name)
        written[me.id] = names
    return written


def _probe_loss(view: ClusterView, survivor: RedisNodeContainer, kept_key: str, lost_key: str) -> tuple[bool, str]:
    """Ask the survivor that owns ``kept_key`` for it, and a survivor for ``lost_key``: what answers?"""
    owner = view.container_of(next(n.id for n in view.nodes(survivor) if n.is_master and not n.failing and any(
        lo <= key_slot(kept_key.encode()) <= hi for lo, hi in n.slots)))
    with view.client_for(owner) as client:
        try:
            served = client.get(kept_key) == kept_key
        except redis.exceptions.ClusterDownError:
            served = False
    with view.client_for(survivor) as client:
        try:
            client.get(lost_key)
            answer = "served (unexpected)"
        except redis.exceptions.MovedError as exc:
            answer = f"MOVED {exc}"
        except redis.exceptions.ClusterDownError as exc:
            answer = f"CLUSTERDOWN {exc}"
        except redis.RedisError as exc:
            answer = f"{type(exc).__name__}: {exc}"
    return served, answer


def _count_missing(view: ClusterView, keys: dict[str, list[str]]) -> int:
    missing = 0
    for node_id, names in keys.items():
        with view.client_for(view.container_of(node_id)) as client:
            missing += sum(1 for name in names if client.get(name) != name)
    return missing


def _delete_keys(view: ClusterView, keys: dict[str, list[str]]) -> None:
    for node_id, names in keys.items():
        with view.client_for(view.container_of(node_id)) as client:
            pipe = client.pipeline(transaction=False)  # the keys span many slots of this master
            for name in names:
                pipe.delete(name)
            pipe.execute()


# -------------------------------------------------------------------------------------------- summary


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (with 5 rounds, p95 is the maximum)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def summarize(rounds: list[Any], metrics: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """median / p95 / max of every metric over the rounds that measured it."""
    table: dict[str, dict[str, float | None]] = {}
    for metric in metrics:
        values = [float(v) for r in rounds if (v := getattr(r, metric)) is not None]
        table[metric] = {"n": float(len(values)),
                         "median": round(statistics.median(values), 1) if values else None,
                         "p95": round(percentile(values, 95), 1) if values else None,
                         "max": round(max(values), 1) if values else None}
    return table


def report(kind: str, rounds: list[Any], settings: dict[str, Any],
           metrics: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A drill's JSON: settings, every round, median/p95/max of ``metrics`` (default: the Redis drill's own)."""
    if metrics is None:
        metrics = FAILOVER_METRICS if kind == "redis-failover" else NODE_LOSS_METRICS
    return {"drill": kind, "settings": settings, "rounds": [asdict(r) for r in rounds],
            "summary": summarize(rounds, metrics),
            "failed_rounds": [r.round for r in rounds if r.problems]}


def drill_lines(data: dict[str, Any]) -> list[str]:
    """A drill report as plain text lines: every round's figures, then median/p95/max."""
    metrics = tuple(data["summary"])  # every kind's metrics, in its order (harness.drills.net's drills too)
    lines = [f"{data['drill']} ({', '.join(f'{k}={v}' for k, v in data['settings'].items())})"]
    head = ["round", "full_coverage" if data["drill"] == "redis-node-loss" else "fault", "victim", *metrics]
    rows = [[str(r["round"]), str(r.get("fault", r.get("full_coverage"))), r["victim"],
             *(_cell(r.get(m)) for m in metrics)] for r in data["rounds"]]
    rows += [[stat, "", "", *(_cell(data["summary"][m][stat]) for m in metrics)] for stat in ("median", "p95", "max")]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    for r in data["rounds"]:
        if "lost_slots_error" in r:
            served = {True: "yes", False: "no", None: "-"}[r["surviving_slots_served"]]
            lines.append(f"round {r['round']}: surviving masters served their keys: {served}; "
                         f"a key of the lost master: {r['lost_slots_error']}")
        lines += [f"round {r['round']}: PROBLEM: {p}" for p in r["problems"]]
    return lines


def _cell(value: Any) -> str:
    return "-" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def drill_settings(settings: Settings, replicas: int) -> Settings:
    """The settings of a drill cluster: ``replicas`` per master and the drill's node timeout."""
    return settings.with_overrides(redis_replicas=replicas, redis_node_timeout_ms=settings.drill_node_timeout_ms)
