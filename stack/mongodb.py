"""MongoDB (official ``mongo`` image, or any image named by ``HARNESS_IMAGE_MONGODB``).

No Debian build exists: Debian ships no mongod and no registry other than Docker Hub carries one, so where
no mongo image is present the harness skips MongoDB's suites with a reason naming the image.
Ports: 27017. Credentials: explicit root ``user``/``password`` (MONGO_INITDB_ROOT_USERNAME/PASSWORD) and
an application ``database``. Readiness: pymongo authenticates through the published 127.0.0.1 port and
runs ``ping`` (the image's init phase binds to localhost inside the container only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymongo

from stack.base import LoopbackContainer, ProbeWaitStrategy, RunContext, TlsMaterial

MONGO_PORT = 27017
PASSWORD_FILE = "/run/harness/mongodb-password"


@dataclass(frozen=True)
class MongoEndpoint:
    """A MongoDB server reachable from the host."""

    host: str
    port: int
    user: str
    password: str
    database: str
    container_name: str
    alias: str

    def client(self, **overrides: Any) -> pymongo.MongoClient[dict[str, Any]]:
        params: dict[str, Any] = {"host": self.host, "port": self.port, "username": self.user,
                                  "password": self.password, "authSource": "admin", "directConnection": True,
                                  "serverSelectionTimeoutMS": 5000}
        params.update(overrides)
        return pymongo.MongoClient(**params)


class MongoContainer(LoopbackContainer):
    """MongoDB with explicit root credentials, published on 127.0.0.1 only."""

    name = "mongodb"

    def __init__(self, image: str, *, ctx: RunContext, user: str, password: str, database: str,
                 tls: TlsMaterial | None = None,
                 **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="mongodb", **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="mongodb")
        self.user = user
        self.password = password
        self.database = database
        self.expose_on_loopback(MONGO_PORT)
        self.waiting_for(ProbeWaitStrategy(
            self._ping, what=f"MongoDB to authenticate {user!r} and answer ping through its published port",
            hint="the image creates the root user in a first, localhost-only phase; read the container log",
            timeout=ctx.ready_timeout))

    def _configure(self) -> None:
        # The password goes in as a 0600 file owned by mongodb; the environment only names the file.
        self.with_private_file(PASSWORD_FILE, self.password.encode(), owner="mongodb")
        self.with_envs(MONGO_INITDB_ROOT_USERNAME=self.user, MONGO_INITDB_ROOT_PASSWORD_FILE=PASSWORD_FILE,
                       MONGO_INITDB_DATABASE=self.database)

    def _ping(self) -> bool:
        with self.endpoint().client(serverSelectionTimeoutMS=2000) as client:
            return client.admin.command("ping").get("ok") == 1.0

    def apply_password(self, new: str) -> None:
        """Change the root user's password on the running server (updateUser on admin)."""
        with self.endpoint().client() as client:
            client.admin.command("updateUser", self.user, pwd=new)
        self.password = new

    def endpoint(self) -> MongoEndpoint:
        return MongoEndpoint(host="127.0.0.1", port=self.host_port(MONGO_PORT), user=self.user,
                             password=self.password, database=self.database,
                             container_name=self.ctx.container_name(self.alias), alias=self.alias)
