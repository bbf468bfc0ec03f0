"""MySQL (official ``mysql`` image, or MariaDB 10.11 from Debian with the same env contract).

Ports: 3306. Credentials: explicit root password, application ``user``/``password`` and ``database``
(MYSQL_ROOT_PASSWORD_FILE/USER/PASSWORD_FILE/DATABASE; passwords are 0600 files owned by mysql, never in
the container environment). Readiness: a PyMySQL login as the application user through the published
127.0.0.1 port running ``SELECT 1`` (the init server runs with ``--skip-networking``).

PyMySQL negotiates TLS opportunistically when the server offers it; :meth:`MySqlEndpoint.connect` therefore
passes ``ssl_disabled=True`` unless TLS options are given, so "plain" really means plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from stack.base import LoopbackContainer, ProbeWaitStrategy, RunContext, TlsMaterial

MYSQL_PORT = 3306
ROOT_PASSWORD_FILE = "/run/harness/mysql-root-password"
PASSWORD_FILE = "/run/harness/mysql-password"


@dataclass(frozen=True)
class MySqlEndpoint:
    """A MySQL-protocol server reachable from the host."""

    host: str
    port: int
    user: str
    password: str
    database: str
    root_password: str
    container_name: str
    alias: str

    def connect(self, **overrides: Any) -> pymysql.connections.Connection[Any]:
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user,
                                  "password": self.password, "database": self.database, "connect_timeout": 5}
        params.update(overrides)
        if not any(k.startswith("ssl") for k in overrides):
            params["ssl_disabled"] = True
        return pymysql.connect(**params)


class MySqlContainer(LoopbackContainer):
    """MySQL/MariaDB with explicit credentials, published on 127.0.0.1 only."""

    name = "mysql"

    def __init__(self, image: str, *, ctx: RunContext, root_password: str, user: str, password: str,
                 database: str, tls: TlsMaterial | None = None, **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="mysql", **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="mysql")
        self.root_password = root_password
        self.user = user
        self.password = password
        self.database = database
        self.expose_on_loopback(MYSQL_PORT)
        self.waiting_for(ProbeWaitStrategy(
            self._login, what=f"MySQL to accept a login as {user!r} through its published port",
            hint="the first start initialises the data directory; read the container log for init errors",
            timeout=ctx.ready_timeout))

    def _configure(self) -> None:
        # Passwords go in as 0600 files owned by mysql; the environment only names the files.
        self.with_private_file(ROOT_PASSWORD_FILE, self.root_password.encode(), owner="mysql")
        self.with_private_file(PASSWORD_FILE, self.password.encode(), owner="mysql")
        self.with_envs(MYSQL_ROOT_PASSWORD_FILE=ROOT_PASSWORD_FILE, MYSQL_USER=self.user,
                       MYSQL_PASSWORD_FILE=PASSWORD_FILE, MYSQL_DATABASE=self.database)

    def _login(self) -> bool:
        conn = self.endpoint().connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return bool(cur.fetchone() == (1,))
        finally:
            conn.close()

    def apply_password(self, new: str) -> None:
        """Change the application user's password on the running server (ALTER USER, as root)."""
        conn = self.endpoint().connect(user="root", password=self.root_password)
        try:
            with conn.cursor() as cur:
                cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (self.user, new))
            conn.commit()
        finally:
            conn.close()
        self.password = new

    def endpoint(self) -> MySqlEndpoint:
        return MySqlEndpoint(host="127.0.0.1", port=self.host_port(MYSQL_PORT), user=self.user,
                             password=self.password, database=self.database, root_password=self.root_password,
                             container_name=self.ctx.container_name(self.alias), alias=self.alias)
