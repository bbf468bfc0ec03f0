"""Redis cluster bookkeeping: who owns which slot, is every slot owned exactly once, is every node healthy.

The key-slot function is redis-py's (``redis.crc.key_slot``: CRC16/XMODEM of the key or its hash tag, mod
16384); the suites check it against the server's ``CLUSTER KEYSLOT``. Everything else here parses what the
cluster says (``CLUSTER NODES``, ``CLUSTER SHARDS``) into plain data, so it is tested without Docker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.crc import key_slot

CLUSTER_SLOTS = 16384
BAD_FLAGS = ("fail", "fail?", "noaddr", "handshake")

__all__ = ["CLUSTER_SLOTS", "ClusterNode", "coverage_problems", "health_problems", "key_for_slot", "key_slot",
           "parse_cluster_nodes", "shard_ranges"]


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
    for i in range(1_000_000):
        tag = f"{prefix}{i}"
        if key_slot(tag.encode()) == slot:
            return f"{{{tag}}}"
    raise LookupError(f"no tag found for slot {slot}")
