"""Latency drill (3 masters + 1 replica each): one master's packets towards its peers are delayed by
``drill_latency_ms`` (tc netem, or the NFQUEUE delayer where the kernel has no netem), below the
``cluster-node-timeout`` the cluster was started with.

Invariants: no failover (no replica promoted, no epoch bump) and the delay really took effect (the client p50 of
``SET`` + ``WAIT 1`` rose by at least half the delay: without it the first invariant proves nothing). The p50/p99
before and during are printed and compared by ``report summarize``, not asserted. Judged by
:func:`harness.drills.verdict.judge`, as ``python -m harness drill latency`` judges it."""

from __future__ import annotations

import pytest

from harness.drills.net import latency_round, net_report, nettools_image
from harness.drills.redis import ClusterView
from harness.drills.verdict import judge

pytestmark = [pytest.mark.redis, pytest.mark.drill, pytest.mark.destructive, pytest.mark.own_stack]


def test_latency_below_node_timeout(failover_stack, drill_results):
    settings = failover_stack.settings
    cluster = failover_stack.require("redis")
    delay = settings.drill_latency_ms
    assert 0 < delay < cluster.node_timeout_ms, "the drill is about a delay below the cluster's node timeout"
    result = judge("latency", latency_round(cluster, 0, delay, "auto", timeout=settings.drill_round_timeout_s,
                                            image=nettools_image(settings)), settings)
    drill_results.append(net_report("latency", [result], {
        "delay_ms": delay, "node_timeout_ms": cluster.node_timeout_ms,
        "topology": f"{cluster.masters}+{cluster.masters * cluster.replicas}"}))
    print(f"latency ({result.method}: {result.method_note}): p50 {result.before_p50_ms} -> {result.during_p50_ms} "
          f"ms, p99 {result.before_p99_ms} -> {result.during_p99_ms} ms ({result.ops_before}/{result.ops_during} "
          f"operations); pfail flags {result.pfail_flags}")
    assert not result.problems, result.problems
    view = ClusterView(cluster)
    victim = next(c for c in cluster.nodes if c.alias == result.victim)
    assert view.myself(victim).is_master, f"{result.victim} lost its master role"
    assert view.problems(cluster.nodes[0]) == []
