"""Failover drill (masters with 1 replica each, 3+3 by default): one round per fault kind, figures always
reported.

Judged by :func:`harness.drills.verdict.judge`, as ``python -m harness drill`` judges it: the promotion within
``drill_promote_max_ms`` (default 5000 with ``drill_node_timeout_ms`` 1000), the stages in order, every figure
measured, writes confirmed on a replica and none of them lost; the old master back as a replica and the cluster
whole again."""

from __future__ import annotations

import pytest

from harness.drills.redis import FAULTS, ClusterView, failover_round, report
from harness.drills.verdict import judge

pytestmark = [pytest.mark.redis, pytest.mark.drill, pytest.mark.destructive, pytest.mark.own_stack]


@pytest.mark.parametrize("fault", FAULTS)
def test_failover_round(failover_stack, drill_results, fault):
    settings = failover_stack.settings
    cluster = failover_stack.require("redis")
    number = FAULTS.index(fault)
    result = judge("redis-failover", failover_round(cluster, number, fault, timeout=settings.drill_round_timeout_s),
                   settings)
    drill_results.append(report("redis-failover", [result], {
        "fault": fault, "node_timeout_ms": settings.redis_node_timeout_ms,
        "topology": f"{cluster.masters}+{cluster.masters * cluster.replicas}"}))
    assert not result.problems, result.problems
    assert not ClusterView(cluster).problems(cluster.nodes[0])  # the live cluster, after the round


def test_failover_stack_topology(failover_stack):
    settings = failover_stack.settings  # the drill's settings: drill_settings(..., replicas=1)
    cluster = failover_stack.require("redis")
    assert settings.redis_replicas >= 1, "a failover drill needs a replica per master"
    assert (cluster.masters, cluster.replicas, len(cluster.nodes)) == (
        settings.redis_masters, settings.redis_replicas, settings.redis_masters * (1 + settings.redis_replicas))
    assert cluster.node_timeout_ms == failover_stack.settings.drill_node_timeout_ms
    view = ClusterView(cluster)
    for node in cluster.nodes:  # every master has a connected replica, as every node sees it
        assert view.problems(node) == [], node.alias
