"""MySQL (official ``mysql`` image, or MariaDB 10.11 from Debian with the same env contract).

Ports: 3306. Credentials: explicit root password, application ``user``/``password`` and ``database``
(MYSQL_ROOT_PASSWORD_FILE/USER/PASSWORD_FILE/DATABASE; passwords are 0600 files owned by mysql, never in
the container environment). Readiness: a PyMySQL login as the application user through the published
127.0.0.1 port running ``SELECT 1`` (the init server runs with ``--skip-networking``).

TLS: with a Vault-issued certificate the server loads ``--ssl-ca/--ssl-cert/--ssl-key`` from 0600 files owned by
mysql (TLS 1.2/1.3); ``require_secure_transport`` is OFF in dual mode and ON in strict mode. A rotated
certificate is picked up live (MariaDB ``FLUSH SSL``, MySQL ``ALTER INSTANCE RELOAD TLS``).

PyMySQL negotiates TLS opportunistically when the server offers it; :meth:`MySqlEndpoint.connect` therefore
passes ``ssl_disabled=True`` unless TLS options are given, so "plain" really means plain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql

from stack.backup_ops import (
    RESTORE_DIR,
    BackupOps,
    BackupSeed,
    BackupSource,
    Captured,
    private_files,
    run_checked,
    timed,
    tool_path,
)
from stack.base import (
    APP_DATABASE,
    APP_USER,
    TLS_CA,
    TLS_CERT,
    TLS_KEY,
    LoopbackContainer,
    ProbeWaitStrategy,
    RunContext,
    TlsInfo,
    TlsMaterial,
    random_secret,
)
from stack.drill_ops import ServiceDrill, SqlCrashOps
from stack.driver import Refusal, ServiceDriver
from stack.images import DebianLine, ImageSpec
from stack.service import MakeRequest, PublishedService, ServiceSpec
from stack.tls_policy import OPENSSL_TLS12

MYSQL_PORT = 3306
ROOT_PASSWORD_FILE = "/run/harness/mysql-root-password"
PASSWORD_FILE = "/run/harness/mysql-password"


def server_options(tls: bool, strict: bool) -> list[str]:
    """mysqld options (both images' entrypoints pass leading ``--`` options to the server)."""
    if not tls:
        return []
    return [f"--ssl-ca={TLS_CA}", f"--ssl-cert={TLS_CERT}", f"--ssl-key={TLS_KEY}", "--tls-version=TLSv1.2,TLSv1.3",
            f"--ssl-cipher={OPENSSL_TLS12}", f"--require-secure-transport={'ON' if strict else 'OFF'}"]


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
    tls: TlsInfo | None = None

    def connect(self, tls: bool | None = None, **overrides: Any) -> pymysql.connections.Connection[Any]:
        """Plain (``ssl_disabled``: PyMySQL would otherwise use TLS whenever offered), or with ``tls``
        (default: on when the server is strict) verified against the root CA including the hostname."""
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user,
                                  "password": self.password, "database": self.database, "connect_timeout": 5}
        use_tls = self.tls is not None and self.tls.strict if tls is None else tls
        if use_tls:
            if self.tls is None:
                raise ValueError(f"{self.alias} has no TLS listener")
            params["ssl"] = self.tls.context()  # PyMySQL checks the hostname it dialled: 127.0.0.1 is an IP SAN
        params.update(overrides)
        if not use_tls and not any(k.startswith("ssl") for k in overrides):
            params["ssl_disabled"] = True
        return pymysql.connect(**params)


class MySqlContainer(LoopbackContainer):
    """MySQL/MariaDB with explicit credentials, published on 127.0.0.1 only."""

    name = "mysql"

    def __init__(self, image: str, *, ctx: RunContext, root_password: str, user: str, password: str,
                 database: str, tls: TlsMaterial | None = None, tls_strict: bool = False, **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="mysql", **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="mysql")
        elif tls_strict:
            raise ValueError("tls_strict needs a certificate")
        self.tls_strict = tls_strict
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
        options = server_options(self.tls is not None, self.tls_strict)
        if options:
            self.with_command(options)

    def _login(self) -> bool:
        return login(self.endpoint())

    def endpoint(self) -> MySqlEndpoint:
        return MySqlEndpoint(host="127.0.0.1", port=self.host_port(MYSQL_PORT), user=self.user,
                             password=self.password, database=self.database, root_password=self.root_password,
                             container_name=self.ctx.container_name(self.alias), alias=self.alias,
                             tls=self.tls_info(MYSQL_PORT, "mysql", self.tls_strict))


def login(endpoint: MySqlEndpoint) -> bool:
    """The readiness probe: a login as the application user through the published port running ``SELECT 1``."""
    conn = endpoint.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return bool(cur.fetchone() == (1,))
    finally:
        conn.close()


#: The password plugin a server gives a user created with ``IDENTIFIED BY``, per server (told apart by the server
#: that runs: its ``VERSION()`` names MariaDB). MySQL 8 and 9 default to ``caching_sha2_password``: a password login
#: without TLS then needs the server's RSA public key (PyMySQL fetches it, with ``cryptography``), with TLS the
#: password goes over the encrypted channel. MariaDB keeps ``mysql_native_password``. Asserted by the mysql suite.
DEFAULT_AUTH_PLUGIN = {"mariadb": "mysql_native_password", "mysql": "caching_sha2_password"}


#: Known incompatibilities of the upgrade drill (``BackupOps.upgrade_gaps``). Measured: a logical dump of MariaDB
#: 10.11 loads into MySQL 9.7 with every seeded object and fingerprint intact; one of MariaDB 11.8 does not, since
#: 11.x gives new tables its default collation ``utf8mb4_uca1400_ai_ci``, which MySQL does not have (``ERROR 1273
#: Unknown collation``). Moving from MariaDB 11 to MySQL needs the collations rewritten first.
UPGRADE_GAPS = {"mariadb->mysql": "MariaDB 11.x dumps name its default collation utf8mb4_uca1400_ai_ci, which MySQL "
                                  "does not have (ERROR 1273); MariaDB 10.11 dumps load. Rewrite the collations "
                                  "(e.g. to utf8mb4_0900_ai_ci) before loading into MySQL."}


def server_flavor(version: str) -> str:
    """``mariadb`` or ``mysql``, from the server's ``VERSION()``."""
    return "mariadb" if "mariadb" in version.lower() else "mysql"




#: root's client option file inside the container while a backup or restore step runs (never in argv).
MYSQL_OPTIONS = f"{RESTORE_DIR}/client.cnf"


def _option_file(src: BackupSource) -> AbstractContextManager[None]:
    """Root's client option file inside the MySQL container, for the duration of a ``with`` block."""
    content = f"[client]\nuser=root\npassword={src.endpoint.root_password}\n".encode()
    return private_files(src.container(), {MYSQL_OPTIONS: (content, "mysql")}, "mysql")


#: What every backup of MySQL holds: the application database's dump.
BACKUP_DUMP = f"mysql/{APP_DATABASE}.sql"


def backup_capture(src: BackupSource) -> list[Captured]:
    """``mariadb-dump``/``mysqldump --single-transaction --routines --triggers --events --skip-dump-date
    --databases <db>`` as root (credentials in a 0600 option file)."""
    ep, c = src.endpoint, src.container()
    tool = tool_path(c, "mariadb-dump", "mysqldump")
    cmd = [tool, f"--defaults-extra-file={MYSQL_OPTIONS}", "--single-transaction", "--routines", "--triggers",
           "--events", "--skip-dump-date", "--databases", ep.database]
    with _option_file(src):
        dump, seconds = timed(lambda: run_checked(c, cmd, "mysql", tool))
    return [Captured("mysql", BACKUP_DUMP, dump, seconds, {"tool": tool.rsplit("/", 1)[-1]})]


def backup_restore(src: BackupSource, files: Mapping[str, bytes]) -> None:
    """The dump fed to the client as root (option file and dump removed afterwards)."""
    c = src.container()
    tool = tool_path(c, "mariadb", "mysql")
    with _option_file(src), private_files(
            c, {f"{RESTORE_DIR}/dump.sql": (files[BACKUP_DUMP], "mysql")}, "mysql"):
        run_checked(c, ["sh", "-c", f'"$0" --defaults-extra-file={MYSQL_OPTIONS} < {RESTORE_DIR}/dump.sql', tool],
                    "mysql", tool)


def server_version(endpoint: MySqlEndpoint) -> str:
    conn = endpoint.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
            return str(row[0] if row else "unknown")
    finally:
        conn.close()


# ------------------------------------------------------------------------- the backup round trip's seed
# Deterministic data the round trips in suites/backup/ write, find again after a restore and fingerprint.

MY_TABLES = {"accounts": 150, "events": 400}


def _seed(ep: MySqlEndpoint) -> None:
    my = ep.connect()
    try:
        with my.cursor() as cur:
            for table, rows in MY_TABLES.items():
                cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, label VARCHAR(64), qty INT)")
                inserted = cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)",
                                           [(i, f"{table}-{i}", i * 3) for i in range(1, rows + 1)])
                assert inserted == rows, f"mysql: INSERT into {table} wrote {inserted} rows, expected {rows}"
        my.commit()
    finally:
        my.close()


def _seed_missing(ep: MySqlEndpoint) -> list[str]:
    missing = []
    my = ep.connect()
    try:
        with my.cursor() as cur:
            for table, rows in MY_TABLES.items():
                cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND "
                            "table_name = %s", (table,))
                if cur.fetchone()[0] == 0:
                    missing.append(f"mysql.{table}: no such table")
                    continue
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                count = cur.fetchone()[0]
                if count != rows:
                    missing.append(f"mysql.{table}: {count} rows, seeded {rows}")
    finally:
        my.close()
    return missing


def _seed_fingerprints(ep: MySqlEndpoint) -> dict[str, str]:
    prints = {}
    my = ep.connect()
    try:
        with my.cursor() as cur:
            for table in MY_TABLES:
                cur.execute(f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, label, qty))), 0) FROM {table}")
                count, crc = cur.fetchone()
                prints[f"mysql.{table}"] = f"{count}:{crc}"
    finally:
        my.close()
    return prints
# ------------------------------------------------------------------------------------------- the crash drill

def drill_connect(endpoint: MySqlEndpoint) -> pymysql.connections.Connection[Any]:
    """The drill writer's connection: autocommit off, 2 s to connect, reads and writes bounded to 5 s."""
    return endpoint.connect(connect_timeout=2, read_timeout=5, write_timeout=5, autocommit=False)


def drill_durability(conn: pymysql.connections.Connection[Any]) -> list[str]:
    """InnoDB writes and flushes its redo log at every commit only with ``innodb_flush_log_at_trx_commit = 1``,
    and the drill's table must be InnoDB (``default_storage_engine``, as the table is created without ENGINE)."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@innodb_flush_log_at_trx_commit, @@default_storage_engine")
        row = cur.fetchone()
    conn.rollback()
    flush, engine = (str(row[0]), str(row[1])) if row else ("?", "?")
    problems = []
    if flush != "1":
        problems.append(f"innodb_flush_log_at_trx_commit = {flush} (an acknowledged commit may not survive a crash)")
    if engine.lower() != "innodb":
        problems.append(f"default_storage_engine = {engine}, not InnoDB (no crash recovery for the drill's table)")
    return problems


# mariadbd/mysqld is the container's PID 1 (the entrypoints exec it): no `sigkill` from inside, `docker-kill` only.
DRILLS = (ServiceDrill(
    name="mysql-crash", kind="sql-crash", faults=("docker-kill",),
    summary="numbered InnoDB commits while the container is killed; 0 committed rows may be lost",
    ops=SqlCrashOps(connect=drill_connect, create=("CREATE TABLE {table} (n bigint PRIMARY KEY)",),
                    insert="INSERT INTO {table} (n) VALUES (%s)", select="SELECT n FROM {table}",
                    drop="DROP TABLE IF EXISTS {table}", durability=drill_durability,
                    # Case-sensitive, after the fault only: MariaDB's InnoDB logs "Starting crash recovery from
                    # checkpoint", MySQL 9.7 (default log verbosity) "Starting XA crash recovery..."; neither
                    # appears on a clean restart (checked on both).
                    recovery_log="crash recovery")),)


# ------------------------------------------------------------------------------------------------ the driver

class _Session:
    """A PyMySQL session; the server's own record of it: ``CURRENT_USER()`` and the session's ``Ssl_cipher``."""

    def __init__(self, conn: pymysql.connections.Connection[Any]) -> None:
        self.conn = conn

    def _one(self, query: str) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(query)
            row = cur.fetchone()
        assert row is not None, f"{query!r} returned no row"
        return row

    def whoami(self) -> str:
        return str(self._one("SELECT CURRENT_USER()")[0]).split("@", 1)[0]

    def is_tls(self) -> bool:
        return bool(self._one("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[1])


class MySqlDriver(ServiceDriver[MySqlEndpoint]):
    endpoint_type = MySqlEndpoint
    password_refusal = Refusal(pymysql.err.OperationalError, r"^\(1045, .Access denied for user")
    # MySQL answers 3159 (insecure transport prohibited); MariaDB answers 1045 "Access denied" (its
    # REQUIRE SSL account check) or 4056. The strict suite logs in over TLS with the same credentials, so the
    # refusal can only be the transport.
    plaintext_refusal = Refusal(pymysql.err.OperationalError, r"^\((1045|3159|4056), ")
    compose_password_file = PASSWORD_FILE

    def make(self, req: MakeRequest) -> MySqlContainer:
        s = req.secret
        return MySqlContainer(req.image, ctx=req.ctx, root_password=s["root_password"], user=s["user"],
                              password=s["password"], database=s["database"], tls=req.tls, tls_strict=req.strict)

    def compose_endpoint(self, pub: PublishedService) -> MySqlEndpoint:
        name = pub.names[0]
        port = pub.port(name, MYSQL_PORT)
        return MySqlEndpoint(host="127.0.0.1", port=port, user=str(pub.secret.get("user", "")),
                             password=str(pub.secret["password"]), database=str(pub.secret["database"]),
                             root_password=str(pub.secret["root_password"]), container_name=pub.container_name(name),
                             alias=name, tls=TlsInfo(port, "mysql", pub.serial, pub.ca_file, strict=False))

    def login(self, endpoint: MySqlEndpoint) -> bool:
        return login(endpoint)

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        """Random application and root credentials, TLS flags as JSON booleans."""
        return {"password": random_secret(), "tls_enabled": True, "tls_strict": strict, "user": APP_USER,
                "database": APP_DATABASE, "root_password": random_secret()}

    def compose_files(self, secret: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, bytes]:
        return {ROOT_PASSWORD_FILE: str(secret["root_password"]).encode(),
                PASSWORD_FILE: str(secret.get("password", "")).encode()}

    def compose_env(self, secret: Mapping[str, Any]) -> dict[str, str]:
        return {"DSH_MYSQL_USER": str(secret["user"]), "DSH_MYSQL_DATABASE": str(secret["database"])}

    def reload_tls(self, endpoint: MySqlEndpoint, container: Any, timeout: float) -> str:
        """Re-read the certificate files for new connections: ``FLUSH SSL`` on MariaDB (10.4+),
        ``ALTER INSTANCE RELOAD TLS`` on MySQL (8.0.16+). Needs root."""
        conn = endpoint.connect(user="root", password=endpoint.root_password)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                row = cur.fetchone()
                flavor = server_flavor(str(row[0])) if row else "mysql"
                statement = "FLUSH SSL" if flavor == "mariadb" else "ALTER INSTANCE RELOAD TLS"
                cur.execute(statement)
        finally:
            conn.close()
        return f"live: {statement}"

    def change_password(self, endpoint: MySqlEndpoint, new: str) -> None:
        """ALTER USER for the application user, as root."""
        conn = endpoint.connect(user="root", password=endpoint.root_password)
        try:
            with conn.cursor() as cur:
                cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (endpoint.user, new))
            conn.commit()
        finally:
            conn.close()

    @contextmanager
    def session(self, endpoint: MySqlEndpoint, *, tls: bool | None = None, user: str | None = None,
                password: str | None = None) -> Iterator[_Session]:
        creds = {k: v for k, v in (("user", user), ("password", password)) if v is not None}
        conn = endpoint.connect(tls=tls, **creds)
        try:
            yield _Session(conn)
        finally:
            conn.close()

    def tls_only_evidence(self, endpoint: MySqlEndpoint) -> str:
        """``@@require_secure_transport``: the server refuses every connection that is not TLS."""
        with self.session(endpoint, tls=True) as session:
            value = session._one("SELECT @@require_secure_transport")[0]
        assert value == 1, f"@@require_secure_transport = {value}"
        return "@@require_secure_transport = 1"


SPEC = ServiceSpec(
    name="mysql",
    description="needs MySQL/MariaDB (and Vault)",
    owner="mysql",
    image=ImageSpec(service="mysql", official="mysql:8.0.40", debian="devstack-harness/mariadb:10.11",
                    context="mariadb", product="MariaDB 10.11", official_version="8.0.40", debian_version="10.11.",
                    flavors=("mysql", "mariadb"), bookworm_flavor="mariadb", lines=(
                        DebianLine("trixie", "mariadb", "devstack-harness/mariadb:11.8-trixie", "mariadb",
                                   "MariaDB 11.8", "11.8."),
                        DebianLine("sid", "mysql", "devstack-harness/mysql:9.7-sid", "mysql", "MySQL 9.7", "9.7."),
                        DebianLine("sid", "mariadb", "devstack-harness/mariadb:11.8-sid", "mariadb",
                                   "MariaDB 11.8", "11.8."))),
    driver=MySqlDriver(),
    official_volumes=("/var/lib/mysql",),
    compose_services=("mysql",),
    backup=True,
    backup_ops=BackupOps(backup_capture, backup_restore, server_version,
                         live_credentials=("password", "root_password"),
                         seed=BackupSeed(_seed, _seed_missing, _seed_fingerprints), artifacts=(BACKUP_DUMP,),
                         upgrade_gaps=UPGRADE_GAPS),
    drills=DRILLS,
)
