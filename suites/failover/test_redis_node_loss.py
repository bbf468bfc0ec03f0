"""Node-loss drill (masters without replicas, 3 by default): losing a master with and without full coverage,
and recovery from its AOF with every key written before the loss back."""

from __future__ import annotations

import pytest

from harness.drills import KEYS_PER_MASTER, node_loss_round, report

pytestmark = [pytest.mark.redis, pytest.mark.drill, pytest.mark.destructive, pytest.mark.own_stack]


@pytest.mark.parametrize("full_coverage", [False, True], ids=["full-coverage-no", "full-coverage-yes"])
def test_node_loss_round(node_loss_stack, drill_results, full_coverage):
    settings = node_loss_stack.settings
    cluster = node_loss_stack.require("redis")
    result = node_loss_round(cluster, int(full_coverage), full_coverage, timeout=settings.drill_round_timeout_s)
    drill_results.append(report("redis-node-loss", [result], {
        "full_coverage": full_coverage, "node_timeout_ms": settings.redis_node_timeout_ms,
        "topology": f"{cluster.masters}+0"}))
    assert not result.problems, result.problems
    if full_coverage:
        # The whole cluster refuses: even keys whose master is alive.
        assert result.surviving_slots_served is False
        assert result.lost_slots_error.startswith("CLUSTERDOWN"), result.lost_slots_error
    else:
        # Two thirds keep serving; the lost third is redirected to the stopped master.
        assert result.surviving_slots_served is True
        victim_ip = next(n for n in cluster.endpoint().nodes if n.alias == result.victim).internal_ip
        assert result.lost_slots_error.startswith("MOVED") and victim_ip in result.lost_slots_error, \
            result.lost_slots_error
    assert result.recovery_ms is not None
    assert result.keys_written == cluster.masters * KEYS_PER_MASTER
    assert result.keys_missing == 0, f"{result.keys_missing} of {result.keys_written} keys lost"


def test_node_loss_stack_topology(node_loss_stack):
    settings = node_loss_stack.settings  # the drill's settings: drill_settings(..., replicas=0)
    cluster = node_loss_stack.require("redis")
    assert (cluster.masters, cluster.replicas, len(cluster.nodes)) == (settings.redis_masters, 0,
                                                                       settings.redis_masters)
