"""Drill rounds clean up after themselves: an exception mid-round still undoes the fault and stops the writer,
so the next round starts from a healthy cluster. Fakes stand in for the cluster, the writer and the fault
(no Docker)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from harness.drills import redis as redis_drills
from harness.drills.redis import _Ack
from harness.drills.redis_slots import ClusterNode
from stack.errors import ReadinessTimeout


class Boom(Exception):
    """The failure injected mid-round."""


@dataclass(eq=False)
class FakeContainer:
    alias: str


@dataclass
class FakeCluster:
    masters: int = 3
    replicas: int = 1
    password: str = "pw"
    nodes: list[FakeContainer] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = self.masters * (1 + self.replicas)
        self.nodes = [FakeContainer(f"redis-{i + 1}") for i in range(count)]


def _node(node_id: str, master_id: str | None, slots: tuple[tuple[int, int], ...]) -> ClusterNode:
    flags = frozenset({"master"} if master_id is None else {"slave"})
    return ClusterNode(id=node_id, ip="10.0.0.1", port=6379, flags=flags, master_id=master_id,
                       link_state="connected", slots=slots)


@dataclass
class Events:
    """What happened, in order, plus the switch that makes the cluster fail once the fault is in."""

    log: list[str] = field(default_factory=list)
    faulted: bool = False
    fail_when_faulted: str = ""  # "nodes" or "info": which view call raises while the fault is in


class FakeView:
    """A healthy 3+1 (or 3+0) cluster; while the fault is in, the chosen call raises :class:`Boom`."""

    events: Events

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        masters = cluster.nodes[:cluster.masters]
        width = 16384 // cluster.masters
        self._me: dict[int, ClusterNode] = {}
        for i, container in enumerate(masters):
            high = 16383 if i == cluster.masters - 1 else (i + 1) * width - 1
            self._me[id(container)] = _node(f"m{i}", None, ((i * width, high),))
        for i, container in enumerate(cluster.nodes[cluster.masters:]):
            self._me[id(container)] = _node(f"r{i}", f"m{i % cluster.masters}", ())

    def _check(self, call: str) -> None:
        if self.events.faulted and self.events.fail_when_faulted == call:
            self.events.log.append(f"{call} raised")
            raise Boom(f"{call} failed mid-round")

    def wait_healthy(self, timeout: float, what: str) -> None:
        self.events.log.append("wait_healthy")

    def myself(self, container: FakeContainer) -> ClusterNode:
        return self._me[id(container)]

    def container_of(self, node_id: str) -> FakeContainer:
        return next(c for c in self.cluster.nodes if self._me[id(c)].id == node_id)

    def nodes(self, container: FakeContainer) -> list[ClusterNode]:
        self._check("nodes")
        return list(self._me.values())

    def info(self, container: FakeContainer) -> dict[str, str]:
        self._check("info")
        return {"cluster_state": "ok", "cluster_slots_ok": "16384"}

    def client_for(self, container: FakeContainer) -> FakeClient:
        return FakeClient()


class FakeClient:
    """Accepts the node-loss round's setup writes."""

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def config_set(self, name: str, value: str) -> None:
        return None

    def set(self, key: str, value: str) -> None:
        return None


class FakeWriter:
    """Has its 50 acknowledged writes at once; records that it was started and stopped."""

    instances: list[FakeWriter] = []  # noqa: RUF012 - the test reads the one the round created

    def __init__(self, view: FakeView, tag: str, slot: int, deadline: float) -> None:
        self.view = view
        self.tag = tag
        self.stopping = threading.Event()
        self.acks = [_Ack(i + 1, time.monotonic(), True) for i in range(50)]
        self.errors: dict[str, int] = {}
        self.started = False
        FakeWriter.instances.append(self)

    def start(self) -> None:
        self.started = True
        self.view.events.log.append("writer started")

    def stop(self, timeout: float = 5.0) -> None:
        if not self.stopping.is_set():
            self.view.events.log.append("writer stopped")
        self.stopping.set()

    def is_alive(self) -> bool:
        return self.started and not self.stopping.is_set()

    def key(self, seq: int) -> str:
        return f"{self.tag}:{seq}"


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    happened = Events()

    def fake_inject(container: FakeContainer, fault: str):
        happened.log.append(f"inject {fault} {container.alias}")
        happened.faulted = True

        def undo() -> None:
            happened.log.append(f"undo {fault} {container.alias}")
            happened.faulted = False
        return undo

    FakeView.events = happened
    FakeWriter.instances = []
    monkeypatch.setattr(redis_drills, "ClusterView", FakeView)
    monkeypatch.setattr(redis_drills, "Writer", FakeWriter)
    monkeypatch.setattr(redis_drills, "inject", fake_inject)
    monkeypatch.setattr(redis_drills, "_delete", lambda view, writer: happened.log.append("keys deleted"))
    return happened


@pytest.mark.parametrize("fault", redis_drills.FAULTS)
def test_failover_round_undoes_the_fault_and_stops_the_writer_when_it_raises_mid_round(events, fault):
    events.fail_when_faulted = "info"  # the survivor's CLUSTER INFO fails with something poll does not retry
    with pytest.raises(Boom, match="info failed mid-round"):
        redis_drills.failover_round(FakeCluster(), 0, fault, timeout=2)  # type: ignore[arg-type]
    assert events.log.count(f"undo {fault} redis-1") == 1, events.log
    assert events.log.index("info raised") < events.log.index(f"undo {fault} redis-1")
    assert not events.faulted, "the node was left faulted"
    (writer,) = FakeWriter.instances
    assert writer.stopping.is_set() and "writer stopped" in events.log, events.log
    assert "keys deleted" in events.log


def test_failover_round_undoes_once_when_it_finishes(events):
    drills_round = redis_drills.failover_round(FakeCluster(), 1, "pause", timeout=0.3)  # type: ignore[arg-type]
    assert events.log.count("undo pause redis-2") == 1, events.log
    assert drills_round.rejoin_ms is not None
    assert events.log.index("undo pause redis-2") < events.log.index("wait_healthy", 1)  # rejoin measured after
    assert FakeWriter.instances[0].stopping.is_set()


def test_failover_round_without_a_promotion_counts_no_lost_writes(events):
    """No replica took over (the fake never promotes), so the writes were never read back: lost_writes and
    lost_replicated were not measured, and a 0 would report "nothing lost" for a count never made."""
    result = redis_drills.failover_round(FakeCluster(), 0, "kill", timeout=0.3)  # type: ignore[arg-type]
    assert result.problems[0] == "replica r0 did not take over within 0 s"
    assert (result.lost_writes, result.lost_replicated) == (None, None)
    summary = redis_drills.report("redis-failover", [result], {})["summary"]
    assert summary["lost_replicated"] == {"n": 0.0, "median": None, "p95": None, "max": None}


def test_next_round_starts_from_a_healthy_cluster_after_a_failed_one(events):
    events.fail_when_faulted = "info"
    with pytest.raises(Boom):
        redis_drills.failover_round(FakeCluster(), 0, "kill", timeout=2)  # type: ignore[arg-type]
    events.fail_when_faulted = ""
    before = len(events.log)
    redis_drills.failover_round(FakeCluster(), 1, "kill", timeout=0.3)  # type: ignore[arg-type]
    assert events.log[before] == "wait_healthy", "a round must first wait until the cluster is whole"
    assert not events.faulted


def test_node_loss_round_restarts_the_node_when_it_raises_mid_round(events):
    # The survivors never flag the stopped node: the detection wait times out, mid-round.
    with pytest.raises(ReadinessTimeout, match="the survivors to flag redis-3 as failed"):
        redis_drills.node_loss_round(FakeCluster(replicas=0), 2, True, timeout=0.3)  # type: ignore[arg-type]
    assert events.log.count("undo stop redis-3") == 1, events.log
    assert not events.faulted, "the node was left stopped"


def test_fault_undo_runs_once():
    calls: list[int] = []
    fault = redis_drills.Fault(lambda: calls.append(1))
    fault.undo()
    fault.undo()
    assert calls == [1] and fault.undone
