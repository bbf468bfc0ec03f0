"""The Redis cluster in dual mode: plain clients are sent to plain ports, TLS clients to TLS ports, and a TLS
cluster client follows MOVED across every master."""

from __future__ import annotations

import secrets

import pytest
import redis

from stack.redis_cluster import REDIS_PORT, REDIS_TLS_PORT

pytestmark = [pytest.mark.tls, pytest.mark.redis]


def _slot_ports(client: redis.Redis) -> set[int]:
    return {int(node[1]) for entry in client.execute_command("CLUSTER", "SLOTS") for node in entry[2:]}


def test_cluster_announces_plain_ports_to_plain_and_tls_ports_to_tls(redis_service):
    node = redis_service.nodes[0]
    with redis_service.node_client(node, tls=False) as plain:
        assert _slot_ports(plain) == {REDIS_PORT}
    with redis_service.node_client(node, tls=True) as tls:
        assert _slot_ports(tls) == {REDIS_TLS_PORT}


@pytest.mark.parametrize(("tls", "port"), [(True, REDIS_TLS_PORT), (False, REDIS_PORT)], ids=["tls", "plain"])
def test_moved_points_at_the_port_of_the_clients_kind(redis_service, tls, port):
    first = redis_service.nodes[0]
    with redis_service.node_client(first, tls=tls) as client:
        slots = client.execute_command("CLUSTER", "SLOTS")
        foreign = next(entry for entry in slots if entry[2][0] != first.internal_ip)
        key = _key_in_range(client, int(foreign[0]), int(foreign[1]))
        # redis-py turns "-MOVED <slot> <ip>:<port>" into MovedError("<slot> <ip>:<port>").
        with pytest.raises(redis.exceptions.MovedError, match=rf"^\d+ {foreign[2][0]}:{port}$"):
            client.get(key)


def _key_in_range(client: redis.Redis, low: int, high: int) -> str:
    for _ in range(10_000):
        key = f"k-{secrets.token_hex(4)}"
        if low <= int(client.execute_command("CLUSTER", "KEYSLOT", key)) <= high:
            return key
    raise AssertionError(f"no key found for slots {low}-{high} in 10000 tries")


def test_tls_cluster_client_writes_and_reads_on_every_master(redis_service):
    prefix = f"tls-{secrets.token_hex(4)}"
    cluster = redis_service.client(tls=True)
    try:
        values = {f"{prefix}:{i}": secrets.token_hex(8) for i in range(200)}
        for key, value in values.items():
            cluster.set(key, value, ex=600)
        assert {key: cluster.get(key) for key in values} == values
        masters = [n for n in cluster.get_nodes() if n.server_type == "primary"]
    finally:
        cluster.close()
    assert len(masters) == redis_service.masters
    # The client followed the cluster to the published TLS ports (address_remap of ip:6380), not plain ones.
    assert {n.port for n in masters} <= {n.tls_port for n in redis_service.nodes}
    holders = 0
    for node in redis_service.nodes:
        with redis_service.node_client(node, tls=True) as client:
            if client.execute_command("ROLE")[0] == "master":
                local = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                assert local, f"{node.alias} (a master) holds none of the 200 keys written over TLS"
                holders += 1
    assert holders == redis_service.masters
