"""Exact slot coverage of the session's cluster, the key-slot function, placement by slot, MOVED and ASK.

Every check reads what the cluster itself says (CLUSTER SHARDS / NODES / KEYSLOT / COUNTKEYSINSLOT on each
node), so a gap, an overlap, a node that disagrees, a failing flag or a client that did not follow a
redirection fails here."""

from __future__ import annotations

import secrets
from collections import Counter

import pytest
import redis

from harness.redis_slots import (
    CLUSTER_SLOTS,
    coverage_problems,
    health_problems,
    key_for_slot,
    key_slot,
    parse_cluster_nodes,
    shard_ranges,
)
from stack.redis_cluster import REDIS_PORT, REDIS_TLS_PORT

pytestmark = pytest.mark.redis


def _nodes(redis_service, node):
    with redis_service.node_client(node) as client:
        return parse_cluster_nodes(client.execute_command("CLUSTER", "NODES"))


def _masters(redis_service):
    """(cluster node, endpoint node) for every master, matched by container IP."""
    by_ip = {n.internal_ip: n for n in redis_service.nodes}
    return [(m, by_ip[m.ip]) for m in _nodes(redis_service, redis_service.nodes[0]) if m.is_master]


def test_every_slot_owned_exactly_once_and_every_node_agrees(redis_service):
    maps = {}
    for node in redis_service.nodes:
        with redis_service.node_client(node) as client:
            ranges = shard_ranges(client.execute_command("CLUSTER", "SHARDS"))
            info = client.execute_command("CLUSTER", "INFO")
        assert coverage_problems(ranges) == [], f"{node.alias}: {coverage_problems(ranges)}"
        assert f"cluster_slots_assigned:{CLUSTER_SLOTS}" in info and f"cluster_slots_ok:{CLUSTER_SLOTS}" in info
        maps[node.alias] = ranges
    first = next(iter(maps.values()))
    assert all(ranges == first for ranges in maps.values()), f"nodes disagree on the slot map: {maps}"
    assert len({owner for _, _, owner in first}) == redis_service.masters


def test_no_failing_node_all_links_connected(redis_service):
    for node in redis_service.nodes:
        problems = health_problems(_nodes(redis_service, node), redis_service.masters,
                                   redis_service.replicas_per_master)
        assert problems == [], f"as seen by {node.alias}: {problems}"


REFERENCE_VECTORS = {"123456789": 12739, "foo": 12182, "{user1}.a": key_slot(b"user1"), "foo{}{bar}": None,
                     "foo{{bar}}zap": key_slot(b"{bar"), "foo{bar}{zap}": key_slot(b"bar")}


def test_key_slot_function_agrees_with_the_server(redis_service):
    keys = list(REFERENCE_VECTORS) + [secrets.token_hex(8) for _ in range(2500)]
    keys += [f"{{{secrets.token_hex(3)}}}.{secrets.token_hex(4)}" for _ in range(500)]  # hash tags
    with redis_service.node_client(redis_service.nodes[0]) as client:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("CLUSTER", "KEYSLOT", key)
        server = pipe.execute()
    ours = [key_slot(k.encode()) for k in keys]
    assert ours == [int(s) for s in server]
    assert key_slot(b"123456789") == 12739  # the cluster spec's CRC16 check value
    assert key_slot(b"{user1}.a") == key_slot(b"{user1}.b")
    assert key_slot(b"foo{}{bar}") == key_slot(b"foo{}{bar}") != key_slot(b"bar")  # empty tag: whole key hashed


def test_keys_placed_on_every_master_by_slot(redis_service):
    cluster = redis_service.client()
    try:
        for master, endpoint_node in _masters(redis_service):
            low, high = master.slots[0]
            for slot in (low, (low + high) // 2, high):
                key = f"{key_for_slot(slot, 'place-')}:{secrets.token_hex(3)}"
                cluster.set(key, slot, ex=300)
                assert cluster.get(key) == str(slot)
                assert cluster.get_node_from_key(key).port == endpoint_node.port  # the client went to the owner
                with redis_service.node_client(endpoint_node) as direct:
                    assert direct.exists(key) == 1, f"{key} is not on {endpoint_node.alias}, the owner of {slot}"
    finally:
        cluster.close()


def test_random_keys_spread_over_all_masters(redis_service):
    prefix = f"spread-{secrets.token_hex(3)}"
    count = 3000
    cluster = redis_service.client()
    try:
        pipe = cluster.pipeline()
        for i in range(count):
            pipe.set(f"{prefix}:{i}:{secrets.token_hex(4)}", i, ex=300)
        pipe.execute()
    finally:
        cluster.close()
    held = Counter()
    for master, endpoint_node in _masters(redis_service):
        with redis_service.node_client(endpoint_node) as client:
            held[master.id] = sum(1 for _ in client.scan_iter(match=f"{prefix}:*", count=1000))
        share = sum(high - low + 1 for low, high in master.slots) / CLUSTER_SLOTS
        expected = share * count
        assert abs(held[master.id] - expected) <= 0.05 * count, (
            f"{endpoint_node.alias} holds {held[master.id]} of {count} keys, expected about {expected:.0f}")
    assert sum(held.values()) == count


def _setslot(client: redis.Redis, *args) -> None:
    client.execute_command("CLUSTER", "SETSLOT", *args)


def _move_slot(redis_service, slot, source, target, keys, on_migrating=None) -> None:
    """The documented resharding sequence for one slot: IMPORTING on the target, MIGRATING on the source,
    MIGRATE the keys, then SETSLOT NODE everywhere. ``on_migrating`` runs while the slot is half-moved."""
    (src_node, src_ep), (dst_node, dst_ep) = source, target
    # With tls-cluster the nodes reach each other (MIGRATE included) over their TLS ports.
    port = REDIS_TLS_PORT if redis_service.tls is not None else REDIS_PORT
    with redis_service.node_client(src_ep) as src, redis_service.node_client(dst_ep) as dst:
        _setslot(dst, slot, "IMPORTING", src_node.id)
        _setslot(src, slot, "MIGRATING", dst_node.id)
        if on_migrating:
            on_migrating("before-migrate")
        if keys:
            src.execute_command("MIGRATE", dst_node.ip, port, "", 0, 5000, "AUTH", redis_service.password,
                                "KEYS", *keys)
        if on_migrating:
            on_migrating("after-migrate")
        _setslot(dst, slot, "NODE", dst_node.id)
        _setslot(src, slot, "NODE", dst_node.id)
    for _, other in _masters(redis_service):
        with redis_service.node_client(other) as client:
            _setslot(client, slot, "NODE", dst_node.id)


def _read_following_ask(redis_service, source_ep, key):
    """GET on the slot's (cached) owner, following an ASK redirection by hand: ASKING, then the command on
    the node the redirection names. redis-py's cluster client cannot do this behind address_remap: it looks
    the ASK target up by the announced container address, which is not in its remapped node table (the
    same gap as redis/redis-py#3382 for MOVED)."""
    with redis_service.node_client(source_ep) as src:
        try:
            return src.get(key), None
        except redis.exceptions.AskError as ask:
            target = next(n for n in redis_service.nodes if n.internal_ip == ask.host)
            with redis_service.node_client(target) as dst:
                pipe = dst.pipeline(transaction=False)
                pipe.execute_command("ASKING")
                pipe.get(key)
                return pipe.execute()[1], f"{ask.host}:{ask.port}"


def test_ask_and_moved_while_a_slot_migrates(redis_service):
    masters = _masters(redis_service)
    source, target = masters[0], masters[1]
    slot = source[0].slots[0][0] + 7
    tag = key_for_slot(slot, "ask-")
    old_key, new_key = f"{tag}:old", f"{tag}:new"
    cluster = redis_service.client()  # its slot map says: slot -> source, and is never told otherwise
    try:
        cluster.set(old_key, "v1")
        seen = {}

        def during(step: str) -> None:
            # Readable throughout: before MIGRATE the source still serves it; after, the source answers ASK.
            seen[step] = _read_following_ask(redis_service, source[1], old_key)
            if step == "before-migrate":
                with redis_service.node_client(source[1]) as src, pytest.raises(redis.exceptions.AskError) as ask:
                    src.set(new_key, "v2")  # a new key in a MIGRATING slot belongs to the target
                assert ask.value.host == target[0].ip
                with redis_service.node_client(target[1]) as dst:
                    pipe = dst.pipeline(transaction=False)
                    pipe.execute_command("ASKING")
                    pipe.set(new_key, "v2")
                    pipe.execute()

        _move_slot(redis_service, slot, source, target, [old_key], on_migrating=during)
        assert seen["before-migrate"] == ("v1", None)
        assert seen["after-migrate"][0] == "v1" and seen["after-migrate"][1].startswith(target[0].ip)
        with redis_service.node_client(target[1]) as dst:
            assert dst.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 2  # both keys are on the target
        with redis_service.node_client(source[1]) as src, pytest.raises(redis.exceptions.MovedError):
            src.get(old_key)
        moved_before = cluster.reinitialize_counter
        assert cluster.get(old_key) == "v1" and cluster.get(new_key) == "v2"  # the stale client gets MOVED
        assert cluster.reinitialize_counter > moved_before, "the client never saw MOVED"
        used = cluster.get_node_from_key(old_key)
        # redis-py follows MOVED to the announced address without address_remap (reachable from a Linux host).
        assert (used.host, used.port) in {(target[0].ip, target[0].port), ("127.0.0.1", target[1].port)}
    finally:
        cluster.close()
        _move_slot(redis_service, slot, target, source, [old_key, new_key])
        with redis_service.node_client(source[1]) as src:
            src.delete(old_key, new_key)
    test_every_slot_owned_exactly_once_and_every_node_agrees(redis_service)
