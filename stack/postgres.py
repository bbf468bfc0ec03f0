"""PostgreSQL (official ``postgres`` image, or PostgreSQL 15 from Debian with the same env contract).

Ports: 5432. Credentials: explicit ``user``/``password``/``dbname`` (POSTGRES_USER/PASSWORD_FILE/DB; the password is a
0600 file owned by postgres, never in the container environment).
Readiness: a psycopg login with those credentials through the published 127.0.0.1 port running
``SELECT 1`` (the images' init server listens on the unix socket only, so a TCP login means the final
server is up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.sql

from stack.base import LoopbackContainer, ProbeWaitStrategy, RunContext, TlsMaterial

POSTGRES_PORT = 5432
PASSWORD_FILE = "/run/harness/postgres-password"


@dataclass(frozen=True)
class PostgresEndpoint:
    """A PostgreSQL server reachable from the host."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    container_name: str
    alias: str

    def conninfo(self, **overrides: Any) -> str:
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user,
                                  "password": self.password, "dbname": self.dbname, "connect_timeout": 5,
                                  "sslmode": "disable"}
        params.update(overrides)
        return psycopg.conninfo.make_conninfo(**params)

    def connect(self, **overrides: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(**overrides))


class PostgresContainer(LoopbackContainer):
    """PostgreSQL with explicit credentials, published on 127.0.0.1 only."""

    name = "postgres"

    def __init__(self, image: str, *, ctx: RunContext, user: str, password: str, dbname: str,
                 tls: TlsMaterial | None = None,
                 **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="postgres", **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="postgres")
        self.user = user
        self.password = password
        self.dbname = dbname
        self.expose_on_loopback(POSTGRES_PORT)
        self.waiting_for(ProbeWaitStrategy(
            self._login, what=f"PostgreSQL to accept a login as {user!r} through its published port",
            hint="initdb takes a few seconds; if it never ends, read the container log for initdb errors",
            timeout=ctx.ready_timeout))

    def _configure(self) -> None:
        # The password goes in as a 0600 file owned by postgres; the environment only names the file.
        self.with_private_file(PASSWORD_FILE, self.password.encode(), owner="postgres")
        self.with_envs(POSTGRES_USER=self.user, POSTGRES_PASSWORD_FILE=PASSWORD_FILE, POSTGRES_DB=self.dbname)

    def _login(self) -> bool:
        with self.endpoint().connect() as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def apply_password(self, new: str) -> None:
        """Change the application user's password on the running server (ALTER ROLE, as that user)."""
        with self.endpoint().connect() as conn:
            conn.execute(psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                psycopg.sql.Identifier(self.user), psycopg.sql.Literal(new)))
        self.password = new

    def endpoint(self) -> PostgresEndpoint:
        return PostgresEndpoint(host="127.0.0.1", port=self.host_port(POSTGRES_PORT), user=self.user,
                                password=self.password, dbname=self.dbname,
                                container_name=self.ctx.container_name(self.alias), alias=self.alias)
