"""Partition drill (3 masters + 1 replica each): one master is cut off from its peers by iptables in its own
network namespace while the harness still reaches it through the gateway; once with ``min-replicas-to-write``
0, once with 1.

Invariants: no write that ``WAIT 1`` confirmed is lost; with ``min-replicas-to-write 0`` the isolated master
acknowledges writes after the promotion (the positive control: the window exists and is counted), with 1 it refuses
them with ``NOREPLICAS`` (split-brain writes 0); the partition is healed (no rule left) and the
old master is back as a replica of a whole cluster. Durations are printed (and compared by ``report
summarize``), not asserted; the round is bounded by ``drill_round_timeout_s``."""

from __future__ import annotations

import pytest

from harness.drills import ClusterView
from harness.drills_net import net_report, nettools_image, partition_round

pytestmark = [pytest.mark.redis, pytest.mark.drill, pytest.mark.destructive, pytest.mark.own_stack]


@pytest.mark.parametrize("min_replicas", [0, 1], ids=["min-replicas-0", "min-replicas-1"])
def test_partition_round(failover_stack, drill_results, min_replicas):
    settings = failover_stack.settings
    cluster = failover_stack.require("redis")
    result = partition_round(cluster, min_replicas, min_replicas, timeout=settings.drill_round_timeout_s,
                             image=nettools_image(settings),
                             peer_timeout_ms=settings.drill_partition_peer_timeout_ms,
                             victim_timeout_ms=settings.drill_partition_victim_timeout_ms)
    drill_results.append(net_report("redis-partition", [result], {
        "min_replicas_to_write": min_replicas, "node_timeout_ms": cluster.node_timeout_ms,
        "peer_timeout_ms": settings.drill_partition_peer_timeout_ms,
        "victim_timeout_ms": settings.drill_partition_victim_timeout_ms,
        "topology": f"{cluster.masters}+{cluster.masters * cluster.replicas}"}))
    print(f"partition ({result.fault}): detect {result.detect_ms} ms, victim down {result.victim_down_ms} ms, "
          f"promote {result.promote_ms} ms, last victim ack {result.last_victim_ack_ms} ms, rejoin "
          f"{result.rejoin_ms} ms; {result.writes_acked} acked, {result.lost_writes} lost, split-brain "
          f"{result.split_brain_writes}; writer errors {result.writer_errors}")
    assert not result.problems, result.problems
    assert result.writes_replicated > 0 and result.lost_writes is not None
    assert result.lost_replicated == 0, f"{result.lost_replicated} writes confirmed by WAIT 1 were lost"
    if min_replicas:  # refused by the replica rule, not by the cluster state: NOREPLICAS
        assert result.split_brain_writes == 0, (
            f"{result.split_brain_writes} writes acknowledged by the isolated master after the promotion")
        assert any(kind.endswith(" NOREPLICAS") for kind in result.writer_errors), result.writer_errors
    else:  # the positive control: the window exists, and the count sees writes in it
        assert result.split_brain_writes and result.split_brain_writes > 0
    assert result.promote_ms is not None and result.detect_ms is not None and result.rejoin_ms is not None
    view = ClusterView(cluster)
    victim = next(c for c in cluster.nodes if c.alias == result.victim)
    assert not view.myself(victim).is_master, f"{result.victim} should be back as a replica"
    assert view.problems(cluster.nodes[0]) == []
    with view.client_for(victim) as client:  # the round put min-replicas-to-write back
        assert client.config_get("min-replicas-to-write") == {"min-replicas-to-write": "0"}
