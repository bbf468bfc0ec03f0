"""Node-loss drill (masters without replicas, 3 by default): losing a master with and without full coverage,
and recovery from its AOF with every key written before the loss back. Judged by :func:`harness.drills.verdict.judge`,
as ``python -m harness drill`` judges it."""

from __future__ import annotations

import pytest

from harness.drills.redis import node_loss_round, report
from harness.drills.verdict import judge

pytestmark = [pytest.mark.redis, pytest.mark.drill, pytest.mark.destructive, pytest.mark.own_stack]


@pytest.mark.parametrize("full_coverage", [False, True], ids=["full-coverage-no", "full-coverage-yes"])
def test_node_loss_round(node_loss_stack, drill_results, full_coverage):
    settings = node_loss_stack.settings
    cluster = node_loss_stack.require("redis")
    result = judge("redis-node-loss", node_loss_round(cluster, int(full_coverage), full_coverage,
                                                      timeout=settings.drill_round_timeout_s), settings)
    drill_results.append(report("redis-node-loss", [result], {
        "full_coverage": full_coverage, "node_timeout_ms": settings.redis_node_timeout_ms,
        "topology": f"{cluster.masters}+0"}))
    assert not result.problems, result.problems
    # The address the verdict expects MOVED to name (the cluster's own view) is the stopped container's.
    assert result.victim_ip == next(n for n in cluster.endpoint().nodes if n.alias == result.victim).internal_ip


def test_node_loss_stack_topology(node_loss_stack):
    settings = node_loss_stack.settings  # the drill's settings: drill_settings(..., replicas=0)
    cluster = node_loss_stack.require("redis")
    assert (cluster.masters, cluster.replicas, len(cluster.nodes)) == (settings.redis_masters, 0,
                                                                       settings.redis_masters)
