"""PostgreSQL (official ``postgres`` image, or PostgreSQL 15 from Debian with the same env contract).

Ports: 5432. Credentials: explicit ``user``/``password``/``dbname`` (POSTGRES_USER/PASSWORD_FILE/DB; the password is a
0600 file owned by postgres, never in the container environment).
TLS: with a Vault-issued certificate the server runs ``ssl=on`` (TLS 1.2+; in TLS 1.2 only the suites of
:mod:`stack.tls_policy`, server order preferred) from 0600 files owned by postgres
and its own ``pg_hba.conf``: dual mode accepts ``host`` (plain or TLS); strict mode accepts ``hostssl`` only
and rejects ``hostnossl``. A rotated certificate is picked up live by ``pg_reload_conf()``.
Readiness: a psycopg login with those credentials through the published 127.0.0.1 port running
``SELECT 1`` (over TLS in strict mode; the images' init server listens on the unix socket only, so a TCP
login means the final server is up).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.sql

from stack.backup_ops import (
    RESTORE_DIR,
    BackupOps,
    BackupSeed,
    BackupSource,
    Captured,
    private_files,
    run_checked,
    timed,
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
from stack.drill_ops import FaultError, ServerProcess, ServiceDrill, SqlCrashOps, find_pids
from stack.driver import Refusal, ServiceDriver
from stack.images import DebianLine, ImageSpec
from stack.service import MakeRequest, PublishedService, ServiceSpec
from stack.tls_policy import OPENSSL_TLS12

POSTGRES_PORT = 5432
PASSWORD_FILE = "/run/harness/postgres-password"
HBA_FILE = "/run/harness/pg_hba.conf"


def hba_config(strict: bool) -> str:
    """Client authentication: unix socket trusted inside the container (as in the official image), TCP by
    SCRAM password; strict mode admits TCP only over TLS."""
    lines = ["local all all trust"]
    if strict:
        lines += ["hostssl all all all scram-sha-256", "hostnossl all all all reject"]
    else:
        lines += ["host all all all scram-sha-256"]
    return "\n".join(lines) + "\n"


def server_options(tls: bool) -> list[str]:
    """``postgres`` arguments: the harness's pg_hba.conf, and TLS from the Vault-issued files when on."""
    options = ["postgres", "-c", f"hba_file={HBA_FILE}"]
    if tls:
        options += ["-c", "ssl=on", "-c", f"ssl_cert_file={TLS_CERT}", "-c", f"ssl_key_file={TLS_KEY}",
                    "-c", f"ssl_ca_file={TLS_CA}", "-c", "ssl_min_protocol_version=TLSv1.2",
                    "-c", f"ssl_ciphers={OPENSSL_TLS12}", "-c", "ssl_prefer_server_ciphers=on"]
    return options


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
    tls: TlsInfo | None = None

    def conninfo(self, tls: bool | None = None, **overrides: Any) -> str:
        """libpq parameters: plain (``sslmode=disable``), or with ``tls`` (default: on when the server is
        strict) ``verify-full`` against the root CA, checking the name the certificate was issued for."""
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user,
                                  "password": self.password, "dbname": self.dbname, "connect_timeout": 5,
                                  "sslmode": "disable"}
        use_tls = self.tls is not None and self.tls.strict if tls is None else tls
        if use_tls:
            if self.tls is None:
                raise ValueError(f"{self.alias} has no TLS listener")
            params.update(sslmode="verify-full", sslrootcert=self.tls.ca_file, host=self.tls.server_name,
                          hostaddr=self.host)
        params.update(overrides)
        return psycopg.conninfo.make_conninfo(**params)

    def connect(self, tls: bool | None = None, **overrides: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(tls, **overrides))


class PostgresContainer(LoopbackContainer):
    """PostgreSQL with explicit credentials, published on 127.0.0.1 only."""

    name = "postgres"

    def __init__(self, image: str, *, ctx: RunContext, user: str, password: str, dbname: str,
                 tls: TlsMaterial | None = None, tls_strict: bool = False, **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="postgres", **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="postgres")
        elif tls_strict:
            raise ValueError("tls_strict needs a certificate")
        self.tls_strict = tls_strict
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
        self.with_private_file(HBA_FILE, hba_config(self.tls_strict).encode(), owner="postgres")
        self.with_envs(POSTGRES_USER=self.user, POSTGRES_PASSWORD_FILE=PASSWORD_FILE, POSTGRES_DB=self.dbname)
        self.with_command(server_options(self.tls is not None))

    def _login(self) -> bool:
        return login(self.endpoint())

    def endpoint(self) -> PostgresEndpoint:
        return PostgresEndpoint(host="127.0.0.1", port=self.host_port(POSTGRES_PORT), user=self.user,
                                password=self.password, dbname=self.dbname,
                                container_name=self.ctx.container_name(self.alias), alias=self.alias,
                                tls=self.tls_info(POSTGRES_PORT, "postgres", self.tls_strict))


#: What every backup of PostgreSQL holds: the application database (``pg_dump -Fc``) and the roles.
BACKUP_DUMP = f"postgres/{APP_DATABASE}.dump"
BACKUP_GLOBALS = "postgres/globals.sql"


def backup_format_check(name: str, data: bytes) -> str | None:
    """``backup verify``'s check of the artifacts: the database is a ``pg_dump -Fc`` archive (``PGDMP`` header);
    the globals are plain SQL from ``pg_dumpall``, which carries no header to check."""
    if name.endswith(".dump") and not data.startswith(b"PGDMP"):
        return "not a pg_dump custom-format archive (no PGDMP header)"
    return None


def backup_capture(src: BackupSource) -> list[Captured]:
    """``pg_dump -Fc`` of the application database and ``pg_dumpall --globals-only --no-role-passwords`` (roles
    without passwords, so a restore never changes a live login)."""
    ep, c = src.endpoint, src.container()
    # The fingerprint comes from a plain-format dump taken first (no timestamps in it); the stored archive is
    # taken after it, so a change in between can only make the next incremental store it again.
    plain = run_checked(c, ["pg_dump", "-Fp", "-U", ep.user, "-d", ep.dbname], "postgres", "pg_dump (plain)")
    dump, seconds = timed(lambda: run_checked(c, ["pg_dump", "-Fc", "-U", ep.user, "-d", ep.dbname], "postgres",
                                              "pg_dump -Fc"))
    roles, roles_s = timed(lambda: run_checked(c, ["pg_dumpall", "--globals-only", "--no-role-passwords", "-U",
                                                   ep.user], "postgres", "pg_dumpall --globals-only"))
    return [Captured("postgres", BACKUP_DUMP, dump, seconds, {"tool": "pg_dump -Fc"},
                     _without_restrict_keys(plain)),
            Captured("postgres", BACKUP_GLOBALS, roles, roles_s,
                     {"tool": "pg_dumpall --globals-only --no-role-passwords"}, _without_restrict_keys(roles))]


def _without_restrict_keys(sql: bytes) -> bytes:
    """Plain dumps from current PostgreSQL releases carry ``\\restrict <random key>`` lines (a psql safety
    measure); they differ on every dump, so they are left out of the content fingerprint."""
    return b"\n".join(line for line in sql.split(b"\n") if not line.startswith((b"\\restrict", b"\\unrestrict")))


def backup_restore(src: BackupSource, files: Mapping[str, bytes]) -> None:
    """Roles first (``psql``), then ``pg_restore --clean --if-exists`` of the database. The harness calls it
    only with both declared artifacts (``BackupOps.artifacts``)."""
    ep, c = src.endpoint, src.container()
    with private_files(c, {f"{RESTORE_DIR}/pg.dump": (files[BACKUP_DUMP], "postgres"),
                           f"{RESTORE_DIR}/globals.sql": (files[BACKUP_GLOBALS], "postgres")}, "postgres"):
        # Roles that already exist make psql print an error and go on; passwords are not in the file.
        run_checked(c, ["psql", "-q", "-U", ep.user, "-d", ep.dbname, "-f", f"{RESTORE_DIR}/globals.sql"],
                    "postgres", "psql")
        run_checked(c, ["pg_restore", "--clean", "--if-exists", "--no-owner", "--exit-on-error", "-U", ep.user,
                        "-d", ep.dbname, f"{RESTORE_DIR}/pg.dump"], "postgres", "pg_restore")


def server_version(endpoint: PostgresEndpoint) -> str:
    with endpoint.connect() as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0] if row else "unknown")


# ------------------------------------------------------------------------- the backup round trip's seed
# Deterministic data the round trips in suites/backup/ write, find again after a restore and fingerprint.

PG_TABLES = {"customers": 200, "orders": 500, "items": 50}


def _seed(ep: PostgresEndpoint) -> None:
    with ep.connect() as conn:
        for table, rows in PG_TABLES.items():
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, amount numeric)")
            inserted = conn.execute(
                f"INSERT INTO {table} SELECT g, '{table}-' || g, g * 1.25 FROM generate_series(1, {rows}) g").rowcount
            assert inserted == rows, f"postgres: INSERT into {table} wrote {inserted} rows, expected {rows}"
        conn.execute("CREATE TABLE canary (note text)")


def _row(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    row = cursor.fetchone()
    assert row is not None, "the query returned no row"
    return tuple(row)


def _seed_missing(ep: PostgresEndpoint) -> list[str]:
    missing = []
    with ep.connect() as conn:
        for table, rows in PG_TABLES.items():
            if _row(conn.execute("SELECT to_regclass(%s)", (table,)))[0] is None:
                missing.append(f"postgres.{table}: no such table")
                continue
            count = _row(conn.execute(f"SELECT count(*) FROM {table}"))[0]
            if count != rows:
                missing.append(f"postgres.{table}: {count} rows, seeded {rows}")
    return missing


def _seed_fingerprints(ep: PostgresEndpoint) -> dict[str, str]:
    prints = {}
    with ep.connect() as conn:
        for table in [*PG_TABLES, "canary"]:
            count, digest = _row(conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"))
            prints[f"postgres.{table}"] = f"{count}:{digest}"
    return prints


def _seed_mark(ep: PostgresEndpoint, label: str) -> None:
    with ep.connect() as conn:
        conn.execute("INSERT INTO canary VALUES (%s)", (label,))
# ------------------------------------------------------------------------------------------- the crash drill

def drill_connect(endpoint: PostgresEndpoint) -> psycopg.Connection[Any]:
    """The drill writer's connection: autocommit off, 2 s to connect, TCP and statements bounded to 5 s."""
    return endpoint.connect(connect_timeout=2, tcp_user_timeout=5000, options="-c statement_timeout=5000")


def drill_durability(conn: psycopg.Connection[Any]) -> list[str]:
    """An acknowledged commit survives a crash only with its WAL flushed first (``fsync``, ``synchronous_commit``)
    and torn pages repairable (``full_page_writes``)."""
    problems = []
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        row = conn.execute(f"SHOW {name}").fetchone()
        if row is None or row[0] != "on":
            problems.append(f"{name} = {row[0] if row else '?'} (an acknowledged commit may not survive a crash)")
    conn.rollback()
    return problems


def drill_server_process(container: Any) -> ServerProcess:
    """The checkpointer: when it dies by SIGKILL the postmaster (the container's PID 1) ends every backend, resets
    shared memory and replays the WAL from the last checkpoint (crash recovery) without the container stopping."""
    pids = find_pids(container, "postgres: checkpointer", "postgres")
    if not pids:
        raise FaultError("no 'postgres: checkpointer' process in the container to SIGKILL")
    return ServerProcess(pids[0], "postgres", f"the checkpointer (pid {pids[0]}); the postmaster runs crash recovery")


DRILLS = (ServiceDrill(
    name="postgres-crash", kind="sql-crash", faults=("sigkill", "docker-kill"),
    summary="numbered commits while the server is SIGKILLed or its container killed; 0 committed rows may be lost",
    ops=SqlCrashOps(connect=drill_connect, create=("CREATE TABLE {table} (n bigint PRIMARY KEY)",),
                    insert="INSERT INTO {table} (n) VALUES (%s)", select="SELECT n FROM {table}",
                    drop="DROP TABLE IF EXISTS {table}", durability=drill_durability,
                    recovery_log="automatic recovery in progress", server_process=drill_server_process)),)


# ------------------------------------------------------------------------------------------------ the driver

class _Session:
    """A psycopg session; the server's own record of it: ``current_user`` and ``pg_stat_ssl``."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def whoami(self) -> str:
        return str(_row(self.conn.execute("SELECT current_user"))[0])

    def is_tls(self) -> bool:
        return _row(self.conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))[0] is True


class PostgresDriver(ServiceDriver[PostgresEndpoint]):
    endpoint_type = PostgresEndpoint
    # libpq reports the server's FATAL 28P01 as text; psycopg raises OperationalError for every connect failure.
    password_refusal = Refusal(psycopg.OperationalError, "password authentication failed for user")
    # pg_hba.conf's "hostnossl … reject" line, or a server without a plaintext path at all.
    plaintext_refusal = Refusal(psycopg.OperationalError, r"no encryption|pg_hba\.conf rejects")
    compose_password_file = PASSWORD_FILE

    def make(self, req: MakeRequest) -> PostgresContainer:
        s = req.secret
        return PostgresContainer(req.image, ctx=req.ctx, user=s["user"], password=s["password"],
                                 dbname=s["database"], tls=req.tls, tls_strict=req.strict)

    def compose_endpoint(self, pub: PublishedService) -> PostgresEndpoint:
        name = pub.names[0]
        port = pub.port(name, POSTGRES_PORT)
        return PostgresEndpoint(host="127.0.0.1", port=port, user=str(pub.secret.get("user", "")),
                                password=str(pub.secret["password"]), dbname=str(pub.secret["database"]),
                                container_name=pub.container_name(name), alias=name,
                                tls=TlsInfo(port, "postgres", pub.serial, pub.ca_file, strict=False))

    def login(self, endpoint: PostgresEndpoint) -> bool:
        return login(endpoint)

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        return {"password": random_secret(), "tls_enabled": True, "tls_strict": strict, "user": APP_USER,
                "database": APP_DATABASE}

    def compose_files(self, secret: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, bytes]:
        return {PASSWORD_FILE: str(secret.get("password", "")).encode(), HBA_FILE: hba_config(strict=False).encode()}

    def compose_env(self, secret: Mapping[str, Any]) -> dict[str, str]:
        return {"DSH_POSTGRES_USER": str(secret["user"]), "DSH_POSTGRES_DB": str(secret["database"])}

    def reload_tls(self, endpoint: PostgresEndpoint, container: Any, timeout: float) -> str:
        """``pg_reload_conf()`` re-reads the certificate files for new connections (PostgreSQL >= 10)."""
        with endpoint.connect() as conn:
            conn.execute("SELECT pg_reload_conf()")
        return "live: pg_reload_conf()"

    def change_password(self, endpoint: PostgresEndpoint, new: str) -> None:
        """ALTER ROLE as the application user itself (it owns its role's password)."""
        with endpoint.connect() as conn:
            conn.execute(psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                psycopg.sql.Identifier(endpoint.user), psycopg.sql.Literal(new)))

    @contextmanager
    def session(self, endpoint: PostgresEndpoint, *, tls: bool | None = None, user: str | None = None,
                password: str | None = None) -> Iterator[_Session]:
        creds = {k: v for k, v in (("user", user), ("password", password)) if v is not None}
        with endpoint.connect(tls=tls, **creds) as conn:
            yield _Session(conn)

    def tls_only_evidence(self, endpoint: PostgresEndpoint) -> str:
        """The server's pg_hba rules: TCP only as ``hostssl``, ``hostnossl`` rejected."""
        with endpoint.connect(tls=True) as conn:
            rules = {(str(r[0]), str(r[1])) for r in conn.execute(
                "SELECT type, auth_method FROM pg_hba_file_rules WHERE type LIKE 'host%'").fetchall()}
        assert rules == {("hostssl", "scram-sha-256"), ("hostnossl", "reject")}, f"pg_hba rules {sorted(rules)}"
        return "pg_hba_file_rules: hostssl scram-sha-256, hostnossl reject"


def login(endpoint: PostgresEndpoint) -> bool:
    """The readiness probe: a password login through the published port running ``SELECT 1``."""
    with endpoint.connect() as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


SPEC = ServiceSpec(
    name="postgres",
    description="needs PostgreSQL (and Vault)",
    owner="postgres",
    image=ImageSpec(service="postgres", official="postgres:15.10", debian="devstack-harness/postgres:15",
                    context="postgres", product="PostgreSQL 15", official_version="15.10", debian_version="15.",
                    lines=(DebianLine("trixie", "postgres", "devstack-harness/postgres:17-trixie", "postgres",
                                      "PostgreSQL 17", "17.", (("PG_MAJOR", "17"),)),
                           DebianLine("sid", "postgres", "devstack-harness/postgres:18-sid", "postgres",
                                      "PostgreSQL 18", "18.", (("PG_MAJOR", "18"),)))),
    driver=PostgresDriver(),
    official_volumes=("/var/lib/postgresql/data",),
    compose_services=("postgres",),
    tls12_server_order="ssl_prefer_server_ciphers=on",
    backup=True,
    backup_ops=BackupOps(backup_capture, backup_restore, server_version, format_check=backup_format_check,
                         seed=BackupSeed(_seed, _seed_missing, _seed_fingerprints, _seed_mark),
                         artifacts=(BACKUP_DUMP, BACKUP_GLOBALS)),
    drills=DRILLS,
)
