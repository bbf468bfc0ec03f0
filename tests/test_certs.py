"""Certificate status plumbing that needs no Docker: endpoints from a state file, and listener discovery."""

from __future__ import annotations

import json
from dataclasses import asdict

from harness.stacks.kept import KeptStack, endpoint_from_json, find_kept_stack
from harness.trust.certs import targets
from stack.base import TlsInfo
from stack.postgres import PostgresEndpoint
from stack.rabbitmq import RabbitMqEndpoint
from stack.redis_cluster import RedisClusterEndpoint, RedisNodeEndpoint

TLS = TlsInfo(port=5433, protocol="postgres", serial="0a:0b", ca_file="/ca.pem", strict=False)


def _endpoints():
    pg = PostgresEndpoint(host="127.0.0.1", port=5433, user="u", password="p", dbname="d", container_name="c",
                          alias="postgres", tls=TLS)
    nodes = tuple(RedisNodeEndpoint(alias=f"redis-{i}", internal_ip=f"10.0.0.{i}", host="127.0.0.1", port=7000 + i,
                                    tls_port=8000 + i) for i in (1, 2, 3))
    redis = RedisClusterEndpoint(nodes=nodes, password="p", masters=3, replicas_per_master=0,
                                 tls=TlsInfo(port=8001, protocol="tls", serial="0c", ca_file="/ca.pem", strict=False))
    rabbit = RabbitMqEndpoint(host="127.0.0.1", port=5672, management_port=15672, user="u", password="p", vhost="v",
                              container_name="r", alias="rabbitmq",
                              tls=TlsInfo(port=5671, protocol="tls", serial="0d", ca_file="/ca.pem", strict=True),
                              management_tls_port=15671)
    return {"postgres": pg, "redis": redis, "rabbitmq": rabbit}


def test_endpoints_round_trip_through_json():
    for name, ep in _endpoints().items():
        assert endpoint_from_json(name, json.loads(json.dumps(asdict(ep)))) == ep


def test_targets_cover_every_listener():
    found = {(t.service, t.port, t.protocol) for t in targets(_endpoints())}
    assert found == {("postgres", 5433, "postgres"), ("redis", 8001, "tls"), ("redis", 8002, "tls"),
                     ("redis", 8003, "tls"), ("rabbitmq", 5671, "tls"), ("rabbitmq", 15671, "tls")}


class _Labelled:
    def __init__(self, run_id: str) -> None:
        self.labels = {"devstack-harness.run-id": run_id}


class _Client:
    """Docker's containers.list, answering the containers of the given runs."""

    def __init__(self, runs: list[str]) -> None:
        self.containers = self
        self.runs = runs

    def list(self, filters: dict[str, object]) -> list[_Labelled]:
        return [_Labelled(run) for run in self.runs]


def test_find_kept_stack_picks_the_newest_live_run(tmp_path):
    for run in ("20260101T000000-aaaaaa", "20260102T000000-bbbbbb", "20260103T000000-cccccc"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / "stack.json").write_text(json.dumps({"run_id": run, "endpoints": {}}))
    found = find_kept_stack(tmp_path, _Client(["20260101T000000-aaaaaa", "20260102T000000-bbbbbb"]))
    assert isinstance(found, KeptStack) and found.run_id == "20260102T000000-bbbbbb"
