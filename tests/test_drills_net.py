"""The network drills' verdicts refuse what they must: a lost acknowledged write, a split-brain write with
min-replicas-to-write 1, a wrongly triggered failover, a delay that never took effect, an unhealed partition, a
replica that has not caught up, a harness connection that would be cut off. Fakes stand in for the cluster, the
helper container and the writer (no Docker); the NFQUEUE delayer's wire format is checked byte by byte."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from cli_inprocess import run_cli

from harness.drills import net, nfq_delay
from harness.drills.net import (
    LatencyRound,
    NetAck,
    PartitionRound,
    Route,
    failover_signs,
    latency_verdict,
    leftover_rules,
    net_report,
    owner_by_epoch,
    parse_route,
    partition_script,
    partition_verdict,
    replication_problems,
)
from harness.drills.redis import DrillError, drill_lines
from harness.drills.redis_slots import ClusterNode
from harness.settings import Settings
from stack.errors import ConfigError

GATEWAY = "172.18.0.1"
ROUTE = Route("eth0", "172.18.0.2", "172.18.0.0/16", GATEWAY)


def _line(node_id: str, flags: str, master: str = "-", epoch: int = 1, slots: str = "") -> str:
    return f"{node_id} 172.18.0.9:6379@16379 {flags} {master} 0 0 {epoch} connected {slots}".strip()


# ------------------------------------------------------------------------------- verdicts, one by one


def test_partition_verdict_refuses_a_lost_wait_confirmed_write():
    result = PartitionRound(0, "iptables", "redis-1", 0, promote_ms=2500.0, split_brain_writes=2, lost_writes=3,
                            lost_replicated=1)
    assert partition_verdict(result) == ["1 write(s) confirmed by WAIT 1 were lost"]


NOREPLICAS = {"ResponseError NOREPLICAS": 14}


def test_partition_verdict_refuses_split_brain_writes_with_min_replicas():
    result = PartitionRound(0, "iptables", "redis-2", 1, promote_ms=2500.0, split_brain_writes=2, lost_writes=2,
                            lost_replicated=0, writer_errors=NOREPLICAS)
    assert partition_verdict(result) == [
        "2 write(s) acknowledged by the isolated redis-2 after the promotion although min-replicas-to-write is 1"]


def test_partition_verdict_with_min_replicas_needs_the_servers_noreplicas_refusal():
    # Refused by the cluster state (CLUSTERDOWN), not by min-replicas-to-write: the rule under test never acted.
    result = PartitionRound(0, "iptables", "redis-2", 1, promote_ms=2500.0, split_brain_writes=0, lost_writes=0,
                            lost_replicated=0, writer_errors={"ClusterDownError": 9})
    assert partition_verdict(result) == [
        "the isolated redis-2 never refused a write with NOREPLICAS although min-replicas-to-write is 1; writer "
        "errors: {'ClusterDownError': 9}"]
    refused = PartitionRound(0, "iptables", "redis-2", 1, promote_ms=2500.0, split_brain_writes=0, lost_writes=0,
                             lost_replicated=0, writer_errors=NOREPLICAS)
    assert partition_verdict(refused) == []


def test_partition_verdict_accepts_split_brain_writes_without_min_replicas():
    result = PartitionRound(0, "iptables", "redis-2", 0, promote_ms=2500.0, split_brain_writes=2, lost_writes=2,
                            lost_replicated=0)
    assert partition_verdict(result) == []


def test_partition_verdict_without_min_replicas_requires_the_positive_control():
    # The isolated master stopped acknowledging before the promotion: 0 split-brain writes proves nothing.
    result = PartitionRound(0, "iptables", "redis-2", 0, promote_ms=2500.0, split_brain_writes=0, lost_writes=0,
                            lost_replicated=0)
    assert partition_verdict(result) == [
        "positive control failed: with min-replicas-to-write 0 the isolated redis-2 acknowledged no write after the "
        "promotion, so this round could not have seen a split brain"]


def test_partition_refuses_timeouts_without_a_split_brain_window():
    with pytest.raises(ConfigError) as exc:
        Settings(drill_partition_peer_timeout_ms=4000, drill_partition_victim_timeout_ms=5000)
    assert str(exc.value) == (
        "drill_partition_peer_timeout_ms must be at least 3000 (the partitioned master must refuse writes, about "
        "1-3 s after the cut, before the promotion) and at least 4000 below drill_partition_victim_timeout_ms (the "
        "split-brain window), not 4000 and 5000")


def test_unhealed_partition_is_named():
    rules = "-P INPUT ACCEPT\n-N DSH-PART-IN\n-A INPUT -j DSH-PART-IN\n-A DSH-PART-IN -j DROP\n"
    assert leftover_rules(rules, "redis-3") == [
        "redis-3: the fault was not undone, still installed: -N DSH-PART-IN",
        "redis-3: the fault was not undone, still installed: -A INPUT -j DSH-PART-IN",
        "redis-3: the fault was not undone, still installed: -A DSH-PART-IN -j DROP"]
    assert leftover_rules("-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n", "redis-3") == []


def test_partition_keeps_loopback_and_the_gateway_open():
    script = partition_script(GATEWAY)
    assert f"-A DSH-PART-IN -s {GATEWAY}/32 -j RETURN" in script
    assert f"-A DSH-PART-OUT -d {GATEWAY}/32 -j RETURN" in script
    assert script.index("-i lo -j RETURN") < script.index("-A DSH-PART-IN -j DROP")
    assert script.index(f"-d {GATEWAY}/32 -j RETURN") < script.index("-A DSH-PART-OUT -j DROP")


def test_latency_verdict_refuses_a_wrongly_triggered_failover():
    raw = "\n".join([_line("aaa", "master,fail?", slots="0-5460"), _line("bbb", "myself,master", epoch=7,
                                                                         slots="0-5460")])
    flags, detail = failover_signs({"redis-5": raw}, victim_id="aaa", replica_id="bbb", epoch0=6,
                                   epochs={"redis-5": 7, "redis-2": 6})
    assert flags == 1
    assert detail == "redis-5 sees its replica bbb as a master; the current epoch rose from 6 (redis-5: 7)"
    result = LatencyRound(0, "nfqueue 250ms", "redis-1", 250, 1000, before_p50_ms=1.0, during_p50_ms=260.0,
                          added_p50_ms=259.0, failovers=1, failover_detail=detail)
    assert latency_verdict(result) == [
        "a failover was triggered by a 250 ms delay, below cluster-node-timeout 1000 ms: redis-5 sees its replica "
        "bbb as a master; the current epoch rose from 6 (redis-5: 7)"]


def test_failover_signs_are_empty_for_a_quiet_cluster():
    raw = "\n".join([_line("aaa", "myself,master", slots="0-5460"), _line("bbb", "slave", master="aaa")])
    assert failover_signs({"redis-1": raw}, "aaa", "bbb", 6, {"redis-1": 6}) == (0, "")


def test_latency_verdict_refuses_a_delay_that_did_not_take_effect():
    result = LatencyRound(0, "netem 250ms", "redis-1", 250, 1000, before_p50_ms=1.5, during_p50_ms=3.0,
                          added_p50_ms=1.5)
    assert latency_verdict(result) == [
        "the delay did not take effect: the client p50 rose by 1.5 ms (1.5 -> 3), expected at least 125 ms of the "
        "250 ms delay"]
    assert latency_verdict(LatencyRound(0, "netem 250ms", "redis-1", 250, 1000)) == [
        "no client latency was measured before and during the delay"]


def test_replication_precondition_refuses_a_lagging_or_missing_replica():
    lagging = {"role": "master", "connected_slaves": 1, "master_repl_offset": 5000,
               "slave0": {"ip": "172.18.0.5", "port": 6379, "state": "online", "offset": 4200, "lag": 0}}
    assert replication_problems(lagging) == ["replica 172.18.0.5:6379 is at offset 4200, the master at 5000"]
    syncing = {"role": "master", "connected_slaves": 1, "master_repl_offset": 5000,
               "slave0": {"ip": "172.18.0.5", "port": 6379, "state": "wait_bgsave", "offset": 0, "lag": 0}}
    assert replication_problems(syncing) == ["replica 172.18.0.5:6379 is wait_bgsave, not online"]
    assert replication_problems({"role": "master", "connected_slaves": 0, "master_repl_offset": 10}) == [
        "the master knows no replica (connected_slaves 0)"]
    caught_up = {**lagging, "slave0": {**lagging["slave0"], "offset": 5000}}
    assert replication_problems(caught_up) == []


def test_harness_connection_must_come_from_the_gateway():
    assert net.client_source_problem(f"{GATEWAY}:51234", GATEWAY) is None
    assert net.client_source_problem("172.18.0.4:51234", GATEWAY) == (
        "the harness's connection reaches the node from 172.18.0.4, not from the gateway 172.18.0.1: a fault that "
        "keeps only the gateway open would cut the harness off too")


def test_owner_is_the_master_with_the_highest_epoch():
    isolated = "\n".join([_line("old", "myself,master", epoch=3, slots="0-5460")])
    majority = "\n".join([_line("old", "master,fail", epoch=3, slots=""), _line("new", "master", epoch=9,
                                                                               slots="0-5460")])
    assert owner_by_epoch([isolated, majority], 100) == "new"
    assert owner_by_epoch([isolated], 100) == "old"
    assert owner_by_epoch([isolated], 9000) is None


def test_route_from_the_namespace():
    route = parse_route("default via 172.18.0.1 dev eth0 \n",
                        "12: eth0    inet 172.18.0.7/16 brd 172.18.255.255 scope global eth0\\       valid_lft forever")
    assert route == Route("eth0", "172.18.0.7", "172.18.0.0/16", "172.18.0.1")
    with pytest.raises(DrillError, match="no default route in the node's namespace: ''"):
        parse_route("", "")


def test_reports_render_with_their_own_metrics():
    result = LatencyRound(0, "nfqueue 250ms", "redis-1", 250, 1000, before_p50_ms=1.0, before_p99_ms=5.0,
                          during_p50_ms=300.0, during_p99_ms=500.0, added_p50_ms=299.0, recover_ms=400.0,
                          pfail_flags=0, failovers=0)
    lines = drill_lines(net_report("latency", [result], {"delay_ms": 250}))
    assert lines[0] == "latency (delay_ms=250)"
    assert lines[1].split() == ["round", "fault", "victim", "before_p50_ms", "before_p99_ms", "during_p50_ms",
                                "during_p99_ms", "added_p50_ms", "pfail_flags", "failovers", "recover_ms"]
    assert lines[2].split() == ["0", "nfqueue", "250ms", "redis-1", "1", "5", "300", "500", "299", "0", "0", "400"]


# ------------------------------------------------------------------- a whole partition round, faked


@dataclass(eq=False)
class FakeContainer:
    alias: str


@dataclass
class FakeCluster:
    masters: int = 3
    replicas: int = 1
    password: str = "pw"
    node_timeout_ms: int = 1000
    nodes: list[FakeContainer] = field(default_factory=lambda: [FakeContainer(f"redis-{i + 1}") for i in range(6)])


@dataclass
class World:
    """What the fakes share: whether the partition is in, whether the heal works, what was lost."""

    partitioned: bool = False
    healed: bool = False
    heal_leaves: str = ""  # iptables -S lines the heal leaves behind
    missing: set[int] = field(default_factory=set)
    min_replicas: list[int] = field(default_factory=list)
    acks_after_promotion: list[NetAck] = field(default_factory=list)
    writer_errors: dict[str, int] = field(default_factory=lambda: dict(NOREPLICAS))
    node_timeouts: list[dict[str, int]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


class FakeClient:
    def __init__(self, addr: str) -> None:
        self.addr = addr

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def client_info(self) -> dict[str, str]:
        return {"addr": self.addr}


def _fake_view(world: World) -> Any:
    class FakeView:
        def __init__(self, cluster: FakeCluster) -> None:
            self.cluster = cluster

        def wait_healthy(self, timeout: float, what: str) -> None:
            world.log.append("wait_healthy")

        def myself(self, container: FakeContainer) -> ClusterNode:
            index = int(container.alias.split("-")[1]) - 1
            if index < 3 and not (index == 0 and world.healed):
                return ClusterNode(f"m{index}", "ip", 6379, frozenset({"myself", "master"}), None, "connected",
                                   ((index * 5461, index * 5461 + 5460),))
            master = "r0" if index == 0 else f"m{(index - 3) % 3}"
            return ClusterNode(f"r{index - 3}" if index >= 3 else "m0", "ip", 6379, frozenset({"myself", "slave"}),
                               master, "connected", ())

        def nodes(self, container: FakeContainer) -> list[ClusterNode]:
            return [self.myself(c) for c in self.cluster.nodes]

        def container_of(self, node_id: str) -> FakeContainer:
            return self.cluster.nodes[int(node_id[1:]) + (3 if node_id.startswith("r") else 0)]

        def client_for(self, container: FakeContainer) -> FakeClient:
            return FakeClient(f"{GATEWAY}:40000")

    return FakeView


def _fake_helper(world: World) -> Any:
    class FakeHelper:
        def __init__(self, node: FakeContainer, image: str) -> None:
            self.node = node

        def __enter__(self) -> FakeHelper:
            return self

        def __exit__(self, *exc: object) -> None:
            world.log.append("helper removed")

        def route(self) -> Route:
            return ROUTE

        def run(self, script: str, what: str) -> str:
            world.log.append(what)
            if what == "installing the partition":
                world.partitioned = True
            if what == "healing the partition":
                world.partitioned = False
                world.healed = not world.heal_leaves
                return "-P INPUT ACCEPT\n" + world.heal_leaves
            return ""

    return FakeHelper


def _fake_writer(world: World) -> Any:
    class FakeWriter:
        def __init__(self, view: Any, tag: str, slot: int, deadline: float) -> None:
            now = time.monotonic()
            self.acks = [NetAck(i + 1, now - 1, True, "redis-1") for i in range(50)]
            self.errors: dict[str, int] = world.writer_errors

        def start(self) -> None:
            pass

        def stop(self, timeout: float = 5.0) -> None:
            world.log.append("writer stopped")

    return FakeWriter


@pytest.fixture
def world(monkeypatch):
    world = World()
    writers: list[Any] = []
    writer_class = _fake_writer(world)

    def make_writer(*args: Any, **kwargs: Any) -> Any:
        writers.append(writer_class(*args, **kwargs))
        return writers[-1]

    def observe(view: Any, victim: Any, survivor: Any, victim_id: str, replica_id: str, slot: int,
                timeout: float) -> dict[str, float]:
        now = time.monotonic()
        acks = [NetAck(a.seq, now + 0.5, a.replicated, a.node) for a in world.acks_after_promotion]
        writers[-1].acks += acks
        return {"detected": now, "victim_down": now, "promoted": now + 0.1, "ok": now + 0.1}

    monkeypatch.setattr(net, "ClusterView", _fake_view(world))
    monkeypatch.setattr(net, "NetHelper", _fake_helper(world))
    monkeypatch.setattr(net, "NetWriter", make_writer)
    monkeypatch.setattr(net, "_observe_partition", observe)
    monkeypatch.setattr(net, "wait_replicated", lambda view, master, timeout: None)
    monkeypatch.setattr(net, "set_min_replicas", lambda view, count: world.min_replicas.append(count))
    monkeypatch.setattr(net, "set_node_timeouts", lambda view, timeouts: world.node_timeouts.append(timeouts))
    monkeypatch.setattr(net, "missing_seqs", lambda view, writer: world.missing)
    monkeypatch.setattr(net, "delete_keys", lambda view, writer: world.log.append("keys deleted"))
    monkeypatch.setattr(net, "poll", lambda probe, **kw: probe())
    return world


ROUND = {"image": "nettools", "peer_timeout_ms": 4000, "victim_timeout_ms": 12000}


def test_faked_partition_round_passes_when_nothing_is_lost(world):
    result = net.partition_round(FakeCluster(), 0, 1, timeout=5, **ROUND)  # type: ignore[arg-type]
    assert result.problems == []
    counted = (result.victim, result.lost_writes, result.lost_replicated, result.split_brain_writes)
    assert counted == ("redis-1", 0, 0, 0)
    assert world.min_replicas == [1, 0]
    # The victim notices its isolation later than its peers promote its replica; all put back afterwards.
    assert world.node_timeouts == [{"redis-1": 12000, **{f"redis-{i}": 4000 for i in range(2, 7)}},
                                   {f"redis-{i}": FakeCluster().node_timeout_ms for i in range(1, 7)}]


def test_faked_partition_round_without_min_replicas_fails_when_no_split_brain_write_is_seen(world):
    result = net.partition_round(FakeCluster(), 0, 0, timeout=5, **ROUND)  # type: ignore[arg-type]
    assert result.split_brain_writes == 0
    assert result.problems == [
        "positive control failed: with min-replicas-to-write 0 the isolated redis-1 acknowledged no write after the "
        "promotion, so this round could not have seen a split brain"]


def test_faked_partition_round_without_a_victim_ack_after_the_fault_leaves_last_victim_ack_unmeasured(world):
    """The victim acknowledged nothing after the fault (every ack is from before it): there is no "last victim
    ack" to report, and 0.0 would claim one at the very moment of the fault."""
    result = net.partition_round(FakeCluster(), 0, 1, timeout=5, **ROUND)  # type: ignore[arg-type]
    assert result.last_victim_ack_ms is None
    assert net_report("redis-partition", [result], {})["summary"]["last_victim_ack_ms"] == {
        "n": 0.0, "median": None, "p95": None, "max": None}


def test_faked_partition_round_counts_a_lost_acknowledged_write(world):
    world.acks_after_promotion = [NetAck(51, 0, False, "redis-1")]
    world.missing = {51}
    result = net.partition_round(FakeCluster(), 0, 1, timeout=5, **ROUND)  # type: ignore[arg-type]
    assert (result.lost_writes, result.lost_replicated, result.split_brain_writes) == (1, 0, 1)
    assert result.problems == [
        "1 write(s) acknowledged by the isolated redis-1 after the promotion although min-replicas-to-write is 1"]


def test_faked_partition_round_counts_a_lost_wait_confirmed_write(world):
    world.missing = {7, 51}  # 7: acknowledged before the fault, confirmed by WAIT, gone after the heal
    world.acks_after_promotion = [NetAck(51, 0, False, "redis-1")]  # the split-brain write, lost as expected
    result = net.partition_round(FakeCluster(), 0, 0, timeout=5, **ROUND)  # type: ignore[arg-type]
    assert (result.lost_writes, result.lost_replicated, result.split_brain_writes) == (2, 1, 1)
    assert result.problems == ["1 write(s) confirmed by WAIT 1 were lost"]


def test_faked_partition_round_stops_on_an_unhealed_partition(world):
    world.heal_leaves = "-A INPUT -j DSH-PART-IN\n"
    with pytest.raises(DrillError) as raised:
        net.partition_round(FakeCluster(), 0, 1, timeout=5, **ROUND)  # type: ignore[arg-type]
    assert str(raised.value) == "redis-1: the fault was not undone, still installed: -A INPUT -j DSH-PART-IN"
    assert world.min_replicas == [1, 0]  # min-replicas-to-write put back on the way out
    assert world.log.index("healing the partition") < world.log.index("helper removed")
    assert "writer stopped" in world.log and "keys deleted" in world.log


def test_faked_partition_round_refuses_a_harness_connection_not_from_the_gateway(world, monkeypatch):
    monkeypatch.setattr(FakeClient, "client_info", lambda self: {"addr": "172.18.0.4:1"})
    with pytest.raises(DrillError) as raised:
        net.partition_round(FakeCluster(), 0, 0, timeout=5, **ROUND)  # type: ignore[arg-type]
    assert str(raised.value).startswith("the harness's connection reaches the node from 172.18.0.4, not from the "
                                        "gateway 172.18.0.1")
    assert "installing the partition" not in world.log and world.min_replicas == [0, 0]


# ------------------------------------------------------------------------- delay method and the delayer


class FakeDelayHelper:
    """netem refused like on a kernel without sch_netem; the delayer 'binds' at once."""

    def __init__(self, netem_error: str | None) -> None:
        self.netem_error = netem_error
        self.scripts: list[str] = []
        self.node = FakeContainer("redis-1")
        self.container = self

    def exec_run(self, cmd: list[str], detach: bool = False) -> None:
        self.scripts.append(" ".join(cmd))

    def put(self, directory: str, name: str, data: bytes) -> None:
        self.scripts.append(f"put {directory}/{name}")

    def run(self, script: str, what: str) -> str:
        self.scripts.append(script)
        if "netem delay" in script and self.netem_error:
            raise DrillError(f"{what} in redis-1's network namespace failed (exit 2): {self.netem_error}")
        if "/ready" in script or "/stats" in script:
            return "ok\n"
        return ""


def test_auto_falls_back_to_the_nfqueue_delayer_and_says_why():
    helper = FakeDelayHelper("Error: Specified qdisc kind is unknown.")
    delay = net.apply_delay(helper, ROUTE, 250, "auto")  # type: ignore[arg-type]
    assert (delay.method, delay.note) == ("nfqueue", "netem refused, NFQUEUE delayer used: Error: Specified qdisc "
                                                     "kind is unknown.")
    rules = next(s for s in helper.scripts if "NFQUEUE" in s)
    assert f"-A DSH-DELAY -d {GATEWAY}/32 -j RETURN" in rules
    assert "-A DSH-DELAY -d 172.18.0.0/16 -j NFQUEUE --queue-num 7 --queue-bypass" in rules
    assert delay.undo() == []


def test_netem_forced_does_not_fall_back():
    helper = FakeDelayHelper("Error: Specified qdisc kind is unknown.")
    with pytest.raises(DrillError, match="Specified qdisc kind is unknown"):
        net.apply_delay(helper, ROUTE, 250, "netem")  # type: ignore[arg-type]


def test_netem_delays_the_subnet_but_not_the_gateway():
    helper = FakeDelayHelper(None)
    delay = net.apply_delay(helper, ROUTE, 250, "auto")  # type: ignore[arg-type]
    assert (delay.method, delay.note) == ("netem", "auto: netem available")
    script = helper.scripts[0]
    assert "netem delay 250ms" in script
    assert f"match ip dst {GATEWAY}/32 flowid 1:1" in script and "match ip dst 172.18.0.0/16 flowid 1:4" in script


def test_nfq_wire_format():
    verdict = nfq_delay.verdict(7, 0x01020304)
    length, kind, flags = struct.unpack_from("=IHH", verdict)
    assert (length, kind, flags) == (len(verdict), (3 << 8) | 1, 1)
    assert verdict[16:20] == struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(7))
    assert verdict[20:] == struct.pack("=HH", 12, 2) + struct.pack(">II", 1, 0x01020304)
    packet = nfq_delay.message(0, 7, struct.pack("=HH", 11, 1) + struct.pack(">IHB", 42, 0x0800, 3) + b"\0")
    other = nfq_delay.message(1, 7, b"")
    assert nfq_delay.packet_ids(packet + other + packet) == [42, 42]
    assert nfq_delay.packet_ids(b"\x00" * 8) == []


# ---------------------------------------------------------------------------------- image and setting


def test_nettools_is_a_pinned_buildable_tool_image():
    from harness.images import debian_specs
    from stack.images import TOOL_IMAGES
    from stack.registry import CATALOGUE

    spec = TOOL_IMAGES["nettools"]
    assert "nettools" not in CATALOGUE  # a tool, not a service: nothing starts it as one
    assert spec in debian_specs(Settings(), None) and debian_specs(Settings(), ["nettools"]) == [spec]
    name, _, tag = spec.official.rpartition(":")
    assert name == "nicolaka/netshoot" and tag.startswith("v") and tag != "latest"
    assert spec.context_dir is not None and (spec.context_dir / "Dockerfile").is_file()


def test_latency_setting_must_stay_below_the_node_timeout():
    from harness.settings import Settings
    from stack.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        Settings(drill_latency_ms=1000, drill_node_timeout_ms=1000)
    assert str(raised.value) == ("drill_latency_ms must be above 0 and below drill_node_timeout_ms (1000), not 1000: "
                                 "the latency drill checks that a delay below the node timeout triggers no failover")


# -------------------------------------------------------------------------------------------- the CLI


def test_cli_refuses_a_fault_the_network_drill_does_not_have(capsys, monkeypatch):
    code, out, err = run_cli(capsys, monkeypatch, "drill", "redis-partition", "--fault", "kill")
    assert code == 2, out + err
    assert ("redis-partition has one fault (iptables in the node's namespace); --fault does not apply"
            in " ".join(err.split()))
    code, out, err = run_cli(capsys, monkeypatch, "drill", "latency", "--fault", "pause")
    assert code == 2
    assert "latency: --fault is how to delay: auto, netem or nfqueue" in " ".join(err.split())
