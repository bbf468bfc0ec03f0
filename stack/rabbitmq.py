"""RabbitMQ with the management plugin (official ``rabbitmq:<v>-management``, or RabbitMQ 3.10 from Debian).

Ports: 5672 (AMQP), 15672 (management HTTP API). Credentials: explicit ``user``/``password``/``vhost``
(``default_user``/``default_pass``/``default_vhost`` in a conf.d file;
a non-guest user, so no loopback restriction applies).
Readiness: an AMQP login with pika through the published port *and* ``GET /api/overview`` answering 200
with the same credentials; RabbitMQ opens AMQP before the management listener, so both are probed.
RabbitMQ is CPU-bound at start (10-18 s here); start it once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pika
import requests

from stack.base import LoopbackContainer, ProbeWaitStrategy, RunContext, TlsMaterial

AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
CREDENTIALS_CONF = "/etc/rabbitmq/conf.d/90-harness-credentials.conf"


@dataclass(frozen=True)
class RabbitMqEndpoint:
    """A RabbitMQ broker and its management API, reachable from the host."""

    host: str
    port: int
    management_port: int
    user: str
    password: str
    vhost: str
    container_name: str
    alias: str

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    def parameters(self, **overrides: Any) -> pika.ConnectionParameters:
        params: dict[str, Any] = {"host": self.host, "port": self.port, "virtual_host": self.vhost,
                                  "credentials": pika.PlainCredentials(self.user, self.password),
                                  "connection_attempts": 1, "socket_timeout": 5, "blocked_connection_timeout": 5}
        params.update(overrides)
        return pika.ConnectionParameters(**params)

    def connect(self, **overrides: Any) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.parameters(**overrides))

    def api(self, path: str) -> requests.Response:
        return requests.get(f"{self.management_url}/api/{path.lstrip('/')}", auth=(self.user, self.password),
                            timeout=10)


class RabbitMqContainer(LoopbackContainer):
    """RabbitMQ with the management API, explicit credentials, published on 127.0.0.1 only."""

    name = "rabbitmq"

    def __init__(self, image: str, *, ctx: RunContext, user: str, password: str, vhost: str = "/",
                 tls: TlsMaterial | None = None,
                 **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="rabbitmq", **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="rabbitmq")
        self.user = user
        self.password = password
        self.vhost = vhost
        self.expose_on_loopback(AMQP_PORT, MANAGEMENT_PORT)
        self.waiting_for(ProbeWaitStrategy(
            self._probe, what=f"RabbitMQ to accept an AMQP login as {user!r} and serve /api/overview",
            hint="RabbitMQ needs 10-20 s of CPU to boot on a 2-core machine; a longer wait points at the log",
            timeout=ctx.ready_timeout))

    def _configure(self) -> None:
        # Both images read /etc/rabbitmq/conf.d/*.conf; a 0600 file owned by rabbitmq keeps the password out
        # of the container environment (RABBITMQ_DEFAULT_PASS would show in `docker inspect`).
        conf = f"default_user = {self.user}\ndefault_pass = {self.password}\ndefault_vhost = {self.vhost}\n"
        self.with_private_file(CREDENTIALS_CONF, conf.encode(), owner="rabbitmq")

    def _probe(self) -> bool:
        endpoint = self.endpoint()
        conn = endpoint.connect()
        conn.close()
        return endpoint.api("overview").status_code == 200

    def apply_password(self, new: str) -> None:
        """Change the user's password through the management API (PUT /api/users/{user})."""
        endpoint = self.endpoint()
        resp = requests.put(f"{endpoint.management_url}/api/users/{self.user}", auth=(self.user, self.password),
                            json={"password": new, "tags": "administrator"}, timeout=10)
        if resp.status_code not in (201, 204):
            raise RuntimeError(f"RabbitMQ refused the password change: {resp.status_code} {resp.text[:200]}")
        self.password = new

    def endpoint(self) -> RabbitMqEndpoint:
        return RabbitMqEndpoint(host="127.0.0.1", port=self.host_port(AMQP_PORT),
                                management_port=self.host_port(MANAGEMENT_PORT), user=self.user,
                                password=self.password, vhost=self.vhost,
                                container_name=self.ctx.container_name(self.alias), alias=self.alias)
