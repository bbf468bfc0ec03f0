"""Exact slot coverage of the session's cluster, the key-slot function, placement by slot, MOVED and ASK.

Every check reads what the cluster itself says (CLUSTER SHARDS / NODES / KEYSLOT / COUNTKEYSINSLOT on each
node), so a gap, an overlap, a node that disagrees, a failing flag or a client that did not follow a
redirection fails here. The slot migrations change the shared cluster: they are ``destructive`` (attach mode
skips them unless allowed) and a fixture puts every slot they touch back on its owner, with its keys, and
fails unless every node reports the map the test started from, also when the test failed midway."""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field

import pytest
import redis

from harness.drills.redis_slots import (
    CLUSTER_SLOTS,
    KEYSLOT_VECTORS,
    coverage_problems,
    health_problems,
    key_for_slot,
    key_slot,
    parse_cluster_nodes,
    restore_slot,
    shard_ranges,
    slot_markers,
)
from stack.redis_cluster import REDIS_PORT, REDIS_TLS_PORT
from stack.waiting import poll

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


def test_key_slot_function_agrees_with_the_server(redis_service):
    """Both sides against fixed vectors first (neither can agree with itself), then redis-py against the server
    on 3000 random keys, hash tags included."""
    vectors = list(KEYSLOT_VECTORS)
    keys = [secrets.token_hex(8) for _ in range(2500)]
    keys += [f"{{{secrets.token_hex(3)}}}.{secrets.token_hex(4)}" for _ in range(500)]  # hash tags
    with redis_service.node_client(redis_service.nodes[0]) as client:
        pipe = client.pipeline(transaction=False)
        for key in vectors + keys:
            pipe.execute_command("CLUSTER", "KEYSLOT", key)
        server = [int(s) for s in pipe.execute()]
    assert dict(zip(vectors, server[:len(vectors)], strict=True)) == KEYSLOT_VECTORS, "the server's KEYSLOT"
    assert {k: key_slot(k.encode()) for k in vectors} == KEYSLOT_VECTORS, "redis-py's key_slot"
    mismatched = [(k, key_slot(k.encode()), s) for k, s in zip(keys, server[len(vectors):], strict=True)
                  if key_slot(k.encode()) != s]
    assert mismatched == [], f"redis-py and CLUSTER KEYSLOT disagree on {len(mismatched)} keys: {mismatched[:5]}"
    assert len(set(server[len(vectors):])) > 2000, "3000 random keys should spread over thousands of slots"


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


class Interrupted(Exception):
    """Raised on purpose to stop a migration midway."""


def _keys_in_slot(client: redis.Redis, slot: int) -> set[str]:
    return set(client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100_000))


def _move_slot(redis_service, slot, source, target, on_migrating=None) -> None:
    """The documented resharding sequence for one slot: IMPORTING on the target, MIGRATING on the source,
    MIGRATE every key of the slot (other tests' keys may share it), then SETSLOT NODE everywhere.
    ``on_migrating`` runs at each step while the slot is half-moved ("before-migrate", "after-migrate",
    "target-owns")."""
    (src_node, src_ep), (dst_node, dst_ep) = source, target
    # With tls-cluster the nodes reach each other (MIGRATE included) over their TLS ports.
    port = REDIS_TLS_PORT if redis_service.tls is not None else REDIS_PORT
    with redis_service.node_client(src_ep) as src, redis_service.node_client(dst_ep) as dst:
        _setslot(dst, slot, "IMPORTING", src_node.id)
        _setslot(src, slot, "MIGRATING", dst_node.id)
        if on_migrating:
            on_migrating("before-migrate")
        keys = sorted(_keys_in_slot(src, slot))
        if keys:
            src.execute_command("MIGRATE", dst_node.ip, port, "", 0, 5000, "AUTH", redis_service.password,
                                "KEYS", *keys)
        if on_migrating:
            on_migrating("after-migrate")
        _setslot(dst, slot, "NODE", dst_node.id)
        if on_migrating:
            on_migrating("target-owns")
        _setslot(src, slot, "NODE", dst_node.id)
    for _, other in _masters(redis_service):
        with redis_service.node_client(other) as client:
            _setslot(client, slot, "NODE", dst_node.id)


@dataclass
class SlotGuard:
    """The slot map before a test, the slots it moves and the keys it writes; :meth:`restore` undoes them."""

    redis_service: object
    before: list[tuple[int, int, str]]
    owners: dict[int, str] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)

    def touch(self, slot: int) -> None:
        self.owners.setdefault(slot, next(o for lo, hi, o in self.before if lo <= slot <= hi))

    def restore(self) -> list[str]:
        ep = self.redis_service
        masters = _masters(ep)
        port = REDIS_TLS_PORT if ep.tls is not None else REDIS_PORT
        done = []
        clients = {m.id: ep.node_client(node) for m, node in masters}
        try:
            for slot, owner in self.owners.items():
                address = next((m.ip, port) for m, _ in masters if m.id == owner)
                done += restore_slot(clients, slot, owner, address, ep.password)
        finally:
            for client in clients.values():
                client.close()
        return done

    def problems(self) -> list[str]:
        """What differs from the map before the test, as every node sees it (empty when all is back)."""
        found = []
        for node in self.redis_service.nodes:
            with self.redis_service.node_client(node) as client:
                ranges = shard_ranges(client.execute_command("CLUSTER", "SHARDS"))
                text = client.execute_command("CLUSTER", "NODES")
                info = client.execute_command("CLUSTER", "INFO")
                found += [f"{node.alias}: {p}" for p in coverage_problems(ranges)]
                if ranges != self.before:
                    found.append(f"{node.alias}: slot map {ranges} differs from the one before the test")
                found += [f"{node.alias}: slot {s} still open {slot_markers(text, s)}" for s in self.owners
                          if slot_markers(text, s)]
                if "cluster_state:ok" not in info:
                    found.append(f"{node.alias}: cluster_state is not ok")
        for _, node in _masters(self.redis_service):
            with self.redis_service.node_client(node) as client:
                for slot, owner in self.owners.items():
                    mine = client.execute_command("CLUSTER", "MYID") == owner
                    count = client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
                    if count and not mine:
                        found.append(f"{node.alias} still holds {count} keys of slot {slot}, which it does not own")
        return found


@pytest.fixture
def slot_guard(redis_service):
    """Yields a :class:`SlotGuard`; afterwards, passed or failed, puts every touched slot back on its owner with
    its keys, deletes the test's keys and fails unless every node reports the slot map of before the test."""
    with redis_service.node_client(redis_service.nodes[0]) as client:
        before = shard_ranges(client.execute_command("CLUSTER", "SHARDS"))
    assert coverage_problems(before) == [], f"the cluster was not whole before the test: {coverage_problems(before)}"
    guard = SlotGuard(redis_service, before)
    yield guard
    guard.restore()
    if guard.keys:
        cluster = redis_service.client()
        try:
            for key in guard.keys:
                cluster.delete(key)
        finally:
            cluster.close()
    poll(guard.problems, what="every node to report the slot map of before the test, no open slot, no stray key",
         timeout=30, accept=lambda problems: problems == [], transient=(redis.RedisError, OSError),
         hint="restore_slot could not undo the migration; read CLUSTER NODES on every node")


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


def _set_asking(redis_service, target_ep, key, value):
    with redis_service.node_client(target_ep) as dst:
        pipe = dst.pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.set(key, value)
        pipe.execute()


@pytest.mark.destructive
def test_ask_and_moved_while_a_slot_migrates(redis_service, slot_guard):
    masters = _masters(redis_service)
    source, target = masters[0], masters[1]
    slot = source[0].slots[0][0] + 7
    slot_guard.touch(slot)
    tag = key_for_slot(slot, "ask-")
    old_key, new_key = f"{tag}:old", f"{tag}:new"
    bystander = f"{key_for_slot(slot, 'bystander-')}:x"  # another tag in the same slot: it must move too
    slot_guard.keys += [old_key, new_key, bystander]
    cluster = redis_service.client()  # its slot map says: slot -> source, and is never told otherwise
    try:
        cluster.set(old_key, "v1")
        cluster.set(bystander, "b")
        seen = {}

        def during(step: str) -> None:
            if step == "target-owns":
                return
            # Readable throughout: before MIGRATE the source still serves it; after, the source answers ASK.
            seen[step] = _read_following_ask(redis_service, source[1], old_key)
            if step == "before-migrate":
                with redis_service.node_client(source[1]) as src, pytest.raises(redis.exceptions.AskError) as ask:
                    src.set(new_key, "v2")  # a new key in a MIGRATING slot belongs to the target
                assert ask.value.host == target[0].ip
                _set_asking(redis_service, target[1], new_key, "v2")

        _move_slot(redis_service, slot, source, target, on_migrating=during)
        assert seen["before-migrate"] == ("v1", None)
        assert seen["after-migrate"][0] == "v1" and seen["after-migrate"][1].startswith(target[0].ip)
        with redis_service.node_client(target[1]) as dst, redis_service.node_client(source[1]) as src:
            assert _keys_in_slot(dst, slot) >= {old_key, new_key, bystander}
            assert _keys_in_slot(src, slot) == set(), "keys of the slot were left on the source"
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
    _move_slot(redis_service, slot, target, source)  # and back, the same documented way
    with redis_service.node_client(source[1]) as src, redis_service.node_client(target[1]) as dst:
        assert _keys_in_slot(src, slot) >= {old_key, new_key, bystander}
        assert _keys_in_slot(dst, slot) == set(), "keys of the slot were left on the target"


@pytest.mark.destructive
@pytest.mark.parametrize("stop_at", ["before-migrate", "after-migrate", "target-owns"])
def test_a_migration_stopped_midway_is_undone(redis_service, slot_guard, stop_at):
    """The guard's restore, proven from each half-moved state: the slot is back on its owner with both keys
    (one written to the target through ASKING), no node keeps it open, and every node has the old map."""
    masters = _masters(redis_service)
    source, target = masters[0], masters[1]
    slot = source[0].slots[0][0] + {"before-migrate": 11, "after-migrate": 13, "target-owns": 17}[stop_at]
    slot_guard.touch(slot)
    tag = key_for_slot(slot, "broken-")
    old_key, new_key = f"{tag}:old", f"{tag}:new"
    slot_guard.keys += [old_key, new_key]
    with redis_service.node_client(source[1]) as src:
        # Keys of other tests that happen to share the slot, with their remaining lifetime (ms, -1: none).
        others = {k: src.pttl(k) for k in _keys_in_slot(src, slot)}
        src.set(old_key, "v1")

    def stop(step: str) -> None:
        if step == "before-migrate":
            _set_asking(redis_service, target[1], new_key, "v2")
        if step == stop_at:
            raise Interrupted(step)

    with pytest.raises(Interrupted, match=f"^{stop_at}$"):
        _move_slot(redis_service, slot, source, target, on_migrating=stop)
    done = slot_guard.restore()
    assert done, "restore_slot found nothing to undo after a migration stopped midway"
    assert poll(slot_guard.problems, what="the slot map of before the test on every node", timeout=30,
                accept=lambda problems: problems == [], transient=(redis.RedisError, OSError),
                hint="read CLUSTER NODES on every node") == []
    with redis_service.node_client(source[1]) as src:
        back = _keys_in_slot(src, slot)
        assert back >= {old_key, new_key}
        lost = [k for k, ttl in others.items() if k not in back and (ttl == -1 or ttl > 60_000)]
        assert lost == [], f"keys of other tests in slot {slot} were not brought back: {lost}"
        assert src.mget(old_key, new_key) == ["v1", "v2"]
