"""Redis cluster: the configured masters own all 16384 slots, the password is enforced, keys round-trip across
nodes. Topology figures come from what the stack was started with, never from constants here."""

from __future__ import annotations

import secrets

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stack.redis_cluster import CLUSTER_SLOTS, parse_cluster_info, version_of

pytestmark = pytest.mark.redis


def test_every_node_reports_cluster_ok_and_all_slots(redis_service):
    for node in redis_service.nodes:
        with redis_service.node_client(node) as client:
            info = parse_cluster_info(client.cluster("info"))
        assert info["cluster_state"] == "ok", f"{node.alias}: {info}"
        assert int(info["cluster_slots_assigned"]) == CLUSTER_SLOTS, f"{node.alias}: {info}"
        assert int(info["cluster_slots_ok"]) == CLUSTER_SLOTS, f"{node.alias}: {info}"
        assert int(info["cluster_known_nodes"]) == len(redis_service.nodes)


def test_masters_and_replicas_as_started(redis_service, harness_stack):
    settings = harness_stack.settings
    if settings.stack != "compose":  # the compose stack's topology is its file's, not the settings'
        assert (redis_service.masters, redis_service.replicas_per_master) == (settings.redis_masters,
                                                                             settings.redis_replicas)
    assert len(redis_service.nodes) == redis_service.masters * (1 + redis_service.replicas_per_master)
    with redis_service.node_client(redis_service.nodes[0]) as client:
        nodes = client.cluster("nodes")
    masters = [addr for addr, n in nodes.items() if "master" in n["flags"] and "fail" not in n["flags"]]
    replicas = [addr for addr, n in nodes.items() if "slave" in n["flags"] and "fail" not in n["flags"]]
    assert len(masters) == redis_service.masters
    assert len(replicas) == redis_service.masters * redis_service.replicas_per_master


def test_server_version(redis_service, harness_stack):
    with redis_service.node_client(redis_service.nodes[0]) as client:
        version = version_of(client.info("server"))  # Valkey: valkey_version, not its compatibility redis_version
    expected = harness_stack.expected_version("redis")
    if expected:
        assert version.startswith(expected), f"server reports {version}, image promises {expected}"


def test_write_read_round_trip_through_cluster_client(redis_service):
    client = redis_service.client()
    try:
        keys = {f"probe:{secrets.token_hex(6)}": secrets.token_hex(8) for _ in range(60)}
        for key, value in keys.items():
            client.set(key, value, ex=300)
        for key, value in keys.items():
            assert client.get(key) == value
        owners = {client.get_node_from_key(k).name for k in keys}
        assert len(owners) == redis_service.masters, (
            f"60 random keys should land on all {redis_service.masters} masters, landed on {owners}")
    finally:
        client.close()


def one_attempt() -> Retry:
    """No retries: redis-py retries a failed connection ten times with backoff by default (~4 s), which only
    delays a refusal the test expects."""
    return Retry(NoBackoff(), 0)


def test_wrong_password_is_rejected(redis_service):
    node = redis_service.nodes[0]
    client = redis.Redis(host=node.host, port=node.port, password=redis_service.password + "x", socket_timeout=5,
                         retry=one_attempt())
    with pytest.raises(redis.exceptions.AuthenticationError, match="invalid username-password pair"):
        client.ping()


def test_no_password_is_rejected(redis_service):
    node = redis_service.nodes[0]
    client = redis.Redis(host=node.host, port=node.port, socket_timeout=5, retry=one_attempt())
    with pytest.raises(redis.exceptions.AuthenticationError, match=r"Authentication required|already authenticated"):
        client.ping()
