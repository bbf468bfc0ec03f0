"""Redis cluster bookkeeping: who owns which slot, is every slot owned exactly once, is every node healthy;
and putting a slot back on its owner after a migration that stopped midway.

The key-slot function is redis-py's (``redis.crc.key_slot``: CRC16/XMODEM of the key or its hash tag, mod
16384); the suites check it and the server's ``CLUSTER KEYSLOT`` against fixed vectors. The parsers turn what
the cluster says (``CLUSTER NODES``, ``CLUSTER SHARDS``) into plain data and are tested without Docker;
:func:`restore_slot` talks to the nodes and is proven against a real cluster by ``suites/redis_cluster``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.crc import key_slot

from stack.waiting import poll

CLUSTER_SLOTS = 16384
BAD_FLAGS = ("fail", "fail?", "noaddr", "handshake")

#: ``CLUSTER KEYSLOT`` answers of a Redis 7.0 node, written down once from the server (never computed with the
#: function under test). ``123456789`` -> 0x31C3 is the CRC16/XMODEM check value the cluster specification
#: quotes; the braces cases are the specification's hash-tag rules: the first ``{`` and the next ``}``
#: delimit the tag, an empty tag hashes the whole key.
KEYSLOT_VECTORS: dict[str, int] = {
    "123456789": 0x31C3,
    "foo": 12182,
    "bar": 5061,
    "hello": 866,
    "user1000": 3443,
    "{user1000}.following": 3443,
    "{user1000}.followers": 3443,
    "foo{}{bar}": 8363,  # empty tag: the whole key is hashed, not "bar"
    "foo{{bar}}zap": 4015,  # the tag is "{bar"
    "{bar": 4015,
    "foo{bar}{zap}": 5061,  # only the first tag counts: "bar"
    "": 0,
    "{}": 15257,
}

__all__ = ["CLUSTER_SLOTS", "KEYSLOT_VECTORS", "ClusterNode", "coverage_problems", "health_problems",
           "key_for_slot", "key_slot", "keys_for_slots", "parse_cluster_nodes", "restore_slot", "shard_ranges",
           "slot_markers"]


@dataclass(frozen=True)
class ClusterNode:
    """One line of ``CLUSTER NODES``."""

    id: str
    ip: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    link_state: str
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return any(flag in self.flags for flag in BAD_FLAGS)


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    """Parse ``CLUSTER NODES`` output (migrating/importing markers like ``[93->-id]`` are left out)."""
    nodes = []
    for line in text.strip().splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@", 1)[0]
        ip, _, port = address.rpartition(":")
        slots = []
        for item in parts[8:]:
            if item.startswith("["):
                continue
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        nodes.append(ClusterNode(id=parts[0], ip=ip, port=int(port or 0), flags=frozenset(parts[2].split(",")),
                                 master_id=None if parts[3] == "-" else parts[3], link_state=parts[7],
                                 slots=tuple(slots)))
    return nodes


def shard_ranges(shards: Sequence[Any]) -> list[tuple[int, int, str]]:
    """(low, high, master id) for every slot range in a ``CLUSTER SHARDS`` reply (as redis-py returns it)."""
    ranges = []
    for shard in shards:
        shard = _as_dict(shard)
        slots = [int(s) for s in shard.get("slots", [])]
        masters = [_as_dict(n) for n in shard.get("nodes", []) if _as_dict(n).get("role") == "master"]
        owner = str(masters[0].get("id")) if masters else "?"
        ranges += [(slots[i], slots[i + 1], owner) for i in range(0, len(slots) - 1, 2)]
    return sorted(ranges)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {_text(k): v for k, v in value.items()}
    items = list(value)  # RESP2 flat list: key, value, key, value...
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def coverage_problems(ranges: Iterable[tuple[int, int, str]]) -> list[str]:
    """Every slot 0..16383 owned exactly once: gaps and overlaps, as readable lines (empty when exact)."""
    problems = []
    expected = 0
    for low, high, owner in sorted(ranges):
        if low > expected:
            problems.append(f"slots {expected}-{low - 1} have no owner")
        elif low < expected:
            problems.append(f"slots {low}-{min(high, expected - 1)} are owned twice (again by {owner})")
        expected = max(expected, high + 1)
    if expected < CLUSTER_SLOTS:
        problems.append(f"slots {expected}-{CLUSTER_SLOTS - 1} have no owner")
    return problems


def health_problems(nodes: Sequence[ClusterNode], masters: int, replicas_per_master: int) -> list[str]:
    """Flags, links, master count and replica coverage as seen by one node (empty when healthy)."""
    problems = [f"{n.ip}:{n.port} ({n.id[:8]}) is flagged {','.join(sorted(f for f in n.flags if f in BAD_FLAGS))}"
                for n in nodes if n.failing]
    problems += [f"{n.ip}:{n.port} ({n.id[:8]}) link is {n.link_state}" for n in nodes if n.link_state != "connected"]
    healthy = [n for n in nodes if n.is_master and not n.failing and n.slots]
    if len(healthy) != masters:
        problems.append(f"{len(healthy)} healthy masters with slots, expected {masters}")
    for master in healthy:
        replicas = [n for n in nodes if n.master_id == master.id and not n.failing and n.link_state == "connected"]
        if len(replicas) < replicas_per_master:
            problems.append(f"master {master.ip}:{master.port} has {len(replicas)} connected replicas, "
                            f"expected {replicas_per_master}")
    return problems


def owner_of(nodes: Sequence[ClusterNode], slot: int) -> ClusterNode:
    for node in nodes:
        if node.is_master and any(low <= slot <= high for low, high in node.slots):
            return node
    raise LookupError(f"no master owns slot {slot}")


def key_for_slot(slot: int, prefix: str = "k") -> str:
    """A key whose hash tag lands on exactly ``slot`` (at most a few ten thousand CRCs)."""
    return keys_for_slots([slot], prefix)[slot]


def keys_for_slots(slots: Iterable[int], prefix: str = "k") -> dict[int, str]:
    """:func:`key_for_slot` of each slot, from one pass over the tags (the first tag of each slot, as there): a
    hundred slots cost about five times one slot's CRCs, not a hundred times."""
    wanted = set(slots)
    found: dict[int, str] = {}
    for i in range(1_000_000):
        tag = f"{prefix}{i}"
        slot = key_slot(tag.encode())
        if slot in wanted and slot not in found:
            found[slot] = f"{{{tag}}}"
            if len(found) == len(wanted):
                return found
    raise LookupError(f"no tag found for slot {min(wanted - set(found))}")


# ------------------------------------------------------------------------------ undoing a broken migration


def slot_markers(nodes_text: str, slot: int) -> list[str]:
    """The ``[slot->-id]`` (migrating) / ``[slot-<-id]`` (importing) marks for ``slot`` in ``CLUSTER NODES``."""
    return [item for line in nodes_text.splitlines() for item in line.split()[8:]
            if item.startswith(f"[{slot}-")]


def _setslot(client: redis.Redis, slot: int, *args: str) -> None:
    client.execute_command("CLUSTER", "SETSLOT", slot, *args)  # type: ignore[no-untyped-call]


def _agreed_owner(masters: Mapping[str, redis.Redis], slot: int) -> str | None:
    """The id every master names as the owner of ``slot``, or None while they disagree."""
    seen = set()
    for client in masters.values():
        nodes = parse_cluster_nodes(client.execute_command("CLUSTER", "NODES"))  # type: ignore[no-untyped-call]
        try:
            seen.add(owner_of(nodes, slot).id)
        except LookupError:
            seen.add("")
    return seen.pop() if len(seen) == 1 and "" not in seen else None


def _migrate_all(client: redis.Redis, slot: int, to: tuple[str, int], password: str) -> int:
    """MIGRATE every key of ``slot`` held by ``client``'s node to ``to`` (the slot must be open there, migrating
    or importing, or owned); REPLACE because the copy being moved is the one the clients last wrote."""
    moved = 0
    while True:
        keys = client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)  # type: ignore[no-untyped-call]
        if not keys:
            return moved
        pipe = client.pipeline(transaction=False)
        # ASKING lets a node that only imports the slot run MIGRATE on it.
        pipe.execute_command("ASKING")  # type: ignore[no-untyped-call]
        pipe.execute_command("MIGRATE", to[0], to[1], "", 0, 5000, "REPLACE",  # type: ignore[no-untyped-call]
                             "AUTH", password, "KEYS", *keys)
        pipe.execute()
        moved += len(keys)


def restore_slot(masters: Mapping[str, redis.Redis], slot: int, owner_id: str, owner_address: tuple[str, int],
                 password: str, timeout: float = 30.0) -> list[str]:
    """Give ``slot`` back to ``owner_id`` with every key of it, from whatever state a migration stopped in.

    ``masters`` maps each master's node id to a client of that node; ``owner_address`` is the owner's address
    as the nodes reach each other (for MIGRATE). Steps: close the slot everywhere (``SETSLOT STABLE``); wait
    until the masters agree who owns it (competing claims settle by config epoch); if that is another node,
    move it back with the documented sequence (IMPORTING/MIGRATING, MIGRATE, NODE on every master); then
    move keys left on non-owners (written there through ASKING) to the owner; last, wait until every master
    names the owner. Returns what was done, one line per action. Hand-written from documented commands
    because ``redis-cli --cluster fix`` chooses the owner by its own rules (such as the node holding most
    keys), while a test must get back exactly the map it started from."""
    done: list[str] = []
    for client in masters.values():
        _setslot(client, slot, "STABLE")
    what = f"the masters to agree on the owner of slot {slot}"
    hint = "conflicting claims settle by config epoch within a few cluster-node-timeout rounds"
    holder = poll(lambda: _agreed_owner(masters, slot), what=what, timeout=timeout, hint=hint,
                  transient=(redis.RedisError, OSError))
    owner = masters[owner_id]
    if holder != owner_id:
        source = masters[holder]
        _setslot(owner, slot, "IMPORTING", holder)
        _setslot(source, slot, "MIGRATING", owner_id)
        moved = _migrate_all(source, slot, owner_address, password)
        for client in (owner, source, *(c for i, c in masters.items() if i not in (owner_id, holder))):
            _setslot(client, slot, "NODE", owner_id)
        done.append(f"slot {slot}: moved back from {holder[:8]} with {moved} keys")
    for node_id, client in masters.items():
        if node_id == owner_id:
            continue
        if not client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot):  # type: ignore[no-untyped-call]
            continue
        _setslot(client, slot, "IMPORTING", owner_id)  # opens the slot here so MIGRATE may run on it
        moved = _migrate_all(client, slot, owner_address, password)
        _setslot(client, slot, "STABLE")
        done.append(f"slot {slot}: {moved} keys left on {node_id[:8]} moved to the owner")
    poll(lambda: _agreed_owner(masters, slot), what=f"every master to name {owner_id[:8]} the owner of slot {slot}",
         timeout=timeout, hint=hint, accept=lambda found: found == owner_id, transient=(redis.RedisError, OSError))
    return done
