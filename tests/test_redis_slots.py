"""Slot bookkeeping and drill statistics, without Docker."""

from __future__ import annotations

import pytest

from harness.drills.redis import FailoverRound, drill_lines, percentile, report, summarize
from harness.drills.redis_slots import (
    KEYSLOT_VECTORS,
    coverage_problems,
    health_problems,
    key_for_slot,
    key_slot,
    keys_for_slots,
    owner_of,
    parse_cluster_nodes,
    shard_ranges,
    slot_markers,
)

NODES = """\
a1 172.20.0.2:6379@16379 myself,master - 0 0 1 connected 0-5460
b2 172.20.0.3:6379@16379 master - 0 1700000000000 2 connected 5461-10922 [10923->-c3]
c3 172.20.0.4:6380@16380 master - 0 1700000000000 3 connected 10923-16383
d4 172.20.0.5:6379@16379 slave a1 0 1700000000000 1 connected
e5 172.20.0.6:6379@16379 slave,fail b2 0 1700000000000 2 disconnected
"""


def test_parse_cluster_nodes():
    nodes = {n.id: n for n in parse_cluster_nodes(NODES)}
    assert nodes["a1"].slots == ((0, 5460),) and nodes["a1"].is_master and nodes["a1"].ip == "172.20.0.2"
    assert nodes["b2"].slots == ((5461, 10922),)  # the migrating marker is not a slot range
    assert nodes["c3"].port == 6380
    assert nodes["d4"].master_id == "a1" and not nodes["d4"].is_master
    assert nodes["e5"].failing and nodes["e5"].link_state == "disconnected"
    assert owner_of(list(nodes.values()), 10923).id == "c3"


def test_coverage_problems_find_gaps_and_overlaps():
    assert coverage_problems([(0, 5460, "a"), (5461, 10922, "b"), (10923, 16383, "c")]) == []
    assert coverage_problems([(0, 5460, "a"), (5462, 16383, "b")]) == ["slots 5461-5461 have no owner"]
    assert coverage_problems([(0, 5460, "a"), (5000, 16383, "b")]) == ["slots 5000-5460 are owned twice (again by b)"]
    assert coverage_problems([(1, 16383, "a")]) == ["slots 0-0 have no owner"]
    assert coverage_problems([(0, 100, "a")]) == ["slots 101-16383 have no owner"]


def test_health_problems():
    problems = health_problems(parse_cluster_nodes(NODES), masters=3, replicas_per_master=1)
    assert any("flagged fail" in p for p in problems)
    assert any("link is disconnected" in p for p in problems)
    assert sum("connected replicas" in p for p in problems) == 2  # b2 (its replica failed) and c3
    healthy = "\n".join(line for line in NODES.splitlines() if not line.startswith("e5"))
    assert health_problems(parse_cluster_nodes(healthy), masters=3, replicas_per_master=0) == []


def test_shard_ranges_from_resp2_and_resp3():
    resp2 = [["slots", [0, 5460, 6000, 6001], "nodes", [["id", "a1", "role", "master"], ["id", "d4", "role",
                                                                                           "replica"]]]]
    resp3 = [{"slots": [5461, 5999], "nodes": [{"id": "b2", "role": "master"}]}]
    assert shard_ranges(resp2 + resp3) == [(0, 5460, "a1"), (5461, 5999, "b2"), (6000, 6001, "a1")]


def test_key_slot_reference_vectors():
    """Fixed answers of the server (KEYSLOT_VECTORS), not values computed with the function under test."""
    assert KEYSLOT_VECTORS["123456789"] == 12739 == 0x31C3  # the cluster specification's CRC16 check value
    assert {key: key_slot(key.encode()) for key in KEYSLOT_VECTORS} == KEYSLOT_VECTORS
    assert KEYSLOT_VECTORS["foo{}{bar}"] != KEYSLOT_VECTORS["bar"]  # an empty tag hashes the whole key
    assert KEYSLOT_VECTORS["{user1000}.following"] == KEYSLOT_VECTORS["user1000"]
    for slot in (0, 1, 8191, 16383):
        assert key_slot(key_for_slot(slot).encode()) == slot


def test_keys_for_slots_are_the_tags_key_for_slot_finds():
    slots = [0, 1, 5460, 5461, 8191, 16383, 100, 101]
    keys = keys_for_slots(slots, prefix="drill-ab12-")
    assert keys == {slot: key_for_slot(slot, prefix="drill-ab12-") for slot in slots}
    assert {slot: key_slot(key.encode()) for slot, key in keys.items()} == {slot: slot for slot in slots}


def test_slot_markers_find_open_slots():
    text = NODES + "f6 172.20.0.7:6379@16379 master - 0 0 4 connected 1-2 [7-<-a1] [70->-b2]\n"
    assert slot_markers(text, 10923) == ["[10923->-c3]"]
    assert slot_markers(text, 7) == ["[7-<-a1]"]
    assert slot_markers(text, 70) == ["[70->-b2]"]
    assert slot_markers(text, 1) == []


def test_percentile_and_summary():
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile([5, 1, 4, 2, 3], 95) == 5  # nearest rank: with 5 values p95 is the maximum
    rounds = [FailoverRound(round=i, fault="kill", victim="redis-1", detect_ms=float(100 * (i + 1)),
                            promote_ms=None if i == 2 else 500.0) for i in range(3)]
    summary = summarize(rounds, ("detect_ms", "promote_ms"))
    assert summary["detect_ms"] == {"n": 3.0, "median": 200.0, "p95": 300.0, "max": 300.0}
    assert summary["promote_ms"]["n"] == 2.0


def test_report_lines_show_every_round_and_problems():
    rounds = [FailoverRound(round=0, fault="pause", victim="redis-2", detect_ms=1500.0, problems=["no promotion"])]
    data = report("redis-failover", rounds, {"node_timeout_ms": 1000})
    text = "\n".join(drill_lines(data))
    assert "pause" in text and "1500" in text and "PROBLEM: no promotion" in text
    assert data["failed_rounds"] == [0]


@pytest.mark.parametrize("fault", ["explode"])
def test_unknown_fault_is_refused(fault):
    from harness.drills.redis import inject

    with pytest.raises(ValueError, match="unknown fault"):
        inject(type("C", (), {"get_wrapped_container": lambda self: object()})(), fault)  # type: ignore[arg-type]
