"""Partition drill (3 masters + 1 replica each): one master is cut off from its peers by iptables in its own
network namespace while the harness still reaches it through the gateway; once with ``min-replicas-to-write``
0, once with 1.

Invariants: no write that ``WAIT 1`` confirmed is lost; with ``min-replicas-to-write 0`` the isolated master
acknowledges writes after the promotion (the positive control: the window exists and is counted), with 1 it refuses
them with ``NOREPLICAS`` (split-brain writes 0); the partition is healed (no rule left) and the
old master is back as a replica of a whole cluster. Durations are printed (and compared by ``report
summarize``), not asserted; the round is bounded by ``drill_round_timeout_s``. Judged by
:func:`harness.drills.verdict.judge`, as ``python -m harness drill redis-partition`` judges it."""

from __future__ import annotations

import pytest

from harness.drills.net import net_report, nettools_image, partition_round
from harness.drills.redis import ClusterView
from harness.drills.verdict import judge

pytestmark = [pytest.mark.redis, pytest.mark.drill, pytest.mark.destructive, pytest.mark.own_stack]


@pytest.mark.parametrize("min_replicas", [0, 1], ids=["min-replicas-0", "min-replicas-1"])
def test_partition_round(failover_stack, drill_results, min_replicas):
    settings = failover_stack.settings
    cluster = failover_stack.require("redis")
    result = judge("redis-partition", partition_round(
        cluster, min_replicas, min_replicas, timeout=settings.drill_round_timeout_s, image=nettools_image(settings),
        peer_timeout_ms=settings.drill_partition_peer_timeout_ms,
        victim_timeout_ms=settings.drill_partition_victim_timeout_ms), settings)
    drill_results.append(net_report("redis-partition", [result], {
        "min_replicas_to_write": min_replicas, "node_timeout_ms": cluster.node_timeout_ms,
        "peer_timeout_ms": settings.drill_partition_peer_timeout_ms,
        "victim_timeout_ms": settings.drill_partition_victim_timeout_ms,
        "topology": f"{cluster.masters}+{cluster.masters * cluster.replicas}"}))
    print(f"partition ({result.fault}): detect {result.detect_ms} ms, victim down {result.victim_down_ms} ms, "
          f"promote {result.promote_ms} ms, last victim ack {result.last_victim_ack_ms} ms, rejoin "
          f"{result.rejoin_ms} ms; {result.writes_acked} acked, {result.lost_writes} lost, split-brain "
          f"{result.split_brain_writes}; writer errors {result.writer_errors}")
    # partition_verdict: no WAIT-confirmed write lost; min-replicas 1: no split-brain write and NOREPLICAS seen;
    # min-replicas 0: split-brain writes seen (the positive control). drills.verdict: figures measured, writes
    # confirmed on a replica.
    assert not result.problems, result.problems
    view = ClusterView(cluster)
    victim = next(c for c in cluster.nodes if c.alias == result.victim)
    assert not view.myself(victim).is_master, f"{result.victim} should be back as a replica"
    assert view.problems(cluster.nodes[0]) == []
    with view.client_for(victim) as client:  # the round put min-replicas-to-write back
        assert client.config_get("min-replicas-to-write") == {"min-replicas-to-write": "0"}
