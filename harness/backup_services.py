"""What each service's backup and restore does, with the service's own tools inside its container.

* PostgreSQL: ``pg_dump -Fc`` of the application database and ``pg_dumpall --globals-only
  --no-role-passwords`` (roles without passwords, so a restore never changes a live login); restore with
  ``pg_restore --clean --if-exists``.
* MySQL/MariaDB: ``mysqldump``/``mariadb-dump --single-transaction --routines --triggers --events
  --skip-dump-date --databases <db>`` as root (credentials in a 0600 option file, never in argv).
* MongoDB: ``mongodump --archive --gzip --db <db>`` (credentials in a 0600 ``--config`` file).
* Files written into a container for one step (option files with passwords, dumps to restore) are removed
  when the step ends, also when it fails.
* Redis cluster: per master, every key as ``DUMP`` payload (the RDB serialisation of that key) with its
  absolute expiry (``PEXPIRETIME``), and the master's slot ranges; restore with ``RESTORE ... ABSTTL
  REPLACE`` through the cluster, so each key lands on whichever master owns its slot. (Whole-RDB restore
  would mean stopping each node and swapping its data files under AOF; per-key payloads need neither.)
* RabbitMQ: the definitions export (users, vhosts, permissions, queues, exchanges, bindings, policies);
  the live application user is left out of an import so its current password keeps working.
* Vault: a raft snapshot, and the unseal keys plus the harness's bootstrap record (admin token, AppRole
  credentials) needed to use the restored Vault: encrypted with everything else when encryption is on,
  otherwise stored like every artifact (0600 in a 0700 directory) -- say so to whoever holds the backup.
  After a restore, the running servers' current credentials are written back into the restored KV.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import requests

from harness.backup import Artifact, BackupError, Captured, b64, unb64
from harness.redis_slots import key_slot
from stack.base import put_private_files

RESTORE_DIR = "/run/harness/restore"
MYSQL_OPTIONS = f"{RESTORE_DIR}/client.cnf"
MONGO_CONFIG = f"{RESTORE_DIR}/mongo-tools.yaml"
ORDER = ("vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq")


class Target(Protocol):
    """A running stack: endpoints, the containers of each service, and its private state directory."""

    state_dir: Path

    def endpoint(self, name: str) -> Any: ...

    def containers(self, name: str) -> list[Any]: ...

    def running(self) -> list[str]: ...


def _exec(container: Any, cmd: list[str], user: str = "", what: str = "") -> bytes:
    result = container.exec_run(cmd, user=user, demux=True)
    out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
    if result.exit_code != 0:
        raise BackupError(f"{what or cmd[0]} exited {result.exit_code}: {(err or b'').decode(errors='replace')[-500:]}")
    return out or b""


def _timed(fn: Callable[[], bytes]) -> tuple[bytes, float]:
    t0 = time.monotonic()
    data = fn()
    return data, round(time.monotonic() - t0, 3)


# ------------------------------------------------------------------------------------------------ capture


def capture_postgres(t: Target) -> list[Captured]:
    ep, c = t.endpoint("postgres"), t.containers("postgres")[0]
    # The fingerprint comes from a plain-format dump taken first (no timestamps in it); the stored archive is
    # taken after it, so a change in between can only make the next incremental store it again.
    plain = _exec(c, ["pg_dump", "-Fp", "-U", ep.user, "-d", ep.dbname], "postgres", "pg_dump (plain)")
    dump, seconds = _timed(lambda: _exec(c, ["pg_dump", "-Fc", "-U", ep.user, "-d", ep.dbname], "postgres",
                                         "pg_dump -Fc"))
    roles, roles_s = _timed(lambda: _exec(c, ["pg_dumpall", "--globals-only", "--no-role-passwords", "-U", ep.user],
                                          "postgres", "pg_dumpall --globals-only"))
    return [Captured("postgres", f"postgres/{ep.dbname}.dump", dump, seconds, {"tool": "pg_dump -Fc"},
                     _without_restrict_keys(plain)),
            Captured("postgres", "postgres/globals.sql", roles, roles_s,
                     {"tool": "pg_dumpall --globals-only --no-role-passwords"}, _without_restrict_keys(roles))]


def _without_restrict_keys(sql: bytes) -> bytes:
    """Plain dumps from current PostgreSQL releases carry ``\\restrict <random key>`` lines (a psql safety
    measure); they differ on every dump, so they are left out of the content fingerprint."""
    return b"\n".join(line for line in sql.split(b"\n") if not line.startswith((b"\\restrict", b"\\unrestrict")))


@contextmanager
def _private_files(c: Any, files: dict[str, tuple[bytes, str]], what: str) -> Iterator[None]:
    """Files (mode 0600) in a container for the duration of a step; removed afterwards, also on failure."""
    put_private_files(c, files, what)
    try:
        yield
    finally:
        _exec(c, ["rm", "-f", *files], "root", f"removing {', '.join(files)} from the {what} container")


def _mysql_option_file(t: Target) -> AbstractContextManager[None]:
    """Root's client option file inside the MySQL container, for the duration of a ``with`` block."""
    ep, c = t.endpoint("mysql"), t.containers("mysql")[0]
    content = f"[client]\nuser=root\npassword={ep.root_password}\n".encode()
    return _private_files(c, {MYSQL_OPTIONS: (content, "mysql")}, "mysql")


def _mysql_tool(c: Any, *names: str) -> str:
    found = _exec(c, ["sh", "-c", " || ".join(f"command -v {n}" for n in names)], what="locating the client")
    return found.decode().strip().splitlines()[0]


def capture_mysql(t: Target) -> list[Captured]:
    ep, c = t.endpoint("mysql"), t.containers("mysql")[0]
    tool = _mysql_tool(c, "mariadb-dump", "mysqldump")
    cmd = [tool, f"--defaults-extra-file={MYSQL_OPTIONS}", "--single-transaction", "--routines", "--triggers",
           "--events", "--skip-dump-date", "--databases", ep.database]
    with _mysql_option_file(t):
        dump, seconds = _timed(lambda: _exec(c, cmd, "mysql", tool))
    return [Captured("mysql", f"mysql/{ep.database}.sql", dump, seconds, {"tool": Path(tool).name})]


def _mongo_config(t: Target, extra: dict[str, tuple[bytes, str]] | None = None) -> AbstractContextManager[None]:
    """The tools' config with the password inside the MongoDB container (plus ``extra`` files), for the
    duration of a ``with`` block."""
    ep, c = t.endpoint("mongodb"), t.containers("mongodb")[0]
    return _private_files(c, {MONGO_CONFIG: (f"password: {ep.password}\n".encode(), "mongodb"), **(extra or {})},
                          "mongodb")


def capture_mongodb(t: Target) -> list[Captured]:
    ep, c = t.endpoint("mongodb"), t.containers("mongodb")[0]
    cmd = ["mongodump", f"--config={MONGO_CONFIG}", "--username", ep.user, "--authenticationDatabase", "admin",
           "--db", ep.database, "--archive", "--gzip", "--quiet"]
    with _mongo_config(t):
        dump, seconds = _timed(lambda: _exec(c, cmd, "mongodb", "mongodump"))
    return [Captured("mongodb", f"mongodb/{ep.database}.archive.gz", dump, seconds, {"tool": "mongodump"})]


def capture_redis(t: Target) -> list[Captured]:
    ep = t.endpoint("redis")
    out = []
    for node in ep.nodes:
        with ep.node_client(node, decode_responses=False) as client:
            role = client.execute_command("ROLE")[0]
            if role != b"master":
                continue
            t0 = time.monotonic()
            slots = [(int(s[0]), int(s[1])) for s in client.execute_command("CLUSTER", "SLOTS")
                     if s[2][0].decode() == node.internal_ip]
            lines = []
            for key in sorted(client.scan_iter(count=1000)):
                payload = client.dump(key)
                if payload is None:
                    continue
                expires = int(client.execute_command("PEXPIRETIME", key))
                lines.append(json.dumps({"k": b64(key), "v": b64(payload), "exp": expires}, sort_keys=True))
        data = ("\n".join(lines) + "\n").encode() if lines else b""
        name = "redis/shard-" + "_".join(f"{lo}-{hi}" for lo, hi in sorted(slots)) + ".jsonl"
        out.append(Captured("redis", name, data, round(time.monotonic() - t0, 3),
                            {"slots": sorted(slots), "keys": len(lines), "node": node.alias}))
    return out


def capture_rabbitmq(t: Target) -> list[Captured]:
    ep = t.endpoint("rabbitmq")
    t0 = time.monotonic()
    resp = ep.api("definitions")
    if resp.status_code != 200:
        raise BackupError(f"GET /api/definitions answered {resp.status_code}: {resp.text[:200]}")
    data = json.dumps(resp.json(), indent=1, sort_keys=True).encode()
    return [Captured("rabbitmq", "rabbitmq/definitions.json", data, round(time.monotonic() - t0, 3),
                     {"tool": "management API /api/definitions"})]


def capture_vault(t: Target) -> list[Captured]:
    ep = t.endpoint("vault")
    t0 = time.monotonic()
    resp = requests.get(f"{ep.url}/v1/sys/storage/raft/snapshot", headers={"X-Vault-Token": ep.token}, timeout=60)
    if resp.status_code != 200:
        raise BackupError(f"raft snapshot answered {resp.status_code}: {resp.text[:200]}")
    seconds = round(time.monotonic() - t0, 3)
    bundle = {"init": json.loads((t.state_dir / "vault-init.json").read_text()),
              "bootstrap": json.loads((t.state_dir / "vault-bootstrap.json").read_text())}
    return [Captured("vault", "vault/raft.snap", resp.content, seconds, {"tool": "sys/storage/raft/snapshot"}),
            Captured("vault", "vault/unseal.json", json.dumps(bundle, sort_keys=True).encode(), 0.0,
                     {"holds": "unseal keys, admin token, AppRole credentials"})]


CAPTURE: dict[str, Callable[[Target], list[Captured]]] = {
    "vault": capture_vault, "postgres": capture_postgres, "mysql": capture_mysql, "mongodb": capture_mongodb,
    "redis": capture_redis, "rabbitmq": capture_rabbitmq}


# ------------------------------------------------------------------------------------------------ restore


def restore_postgres(t: Target, files: dict[str, bytes]) -> None:
    ep, c = t.endpoint("postgres"), t.containers("postgres")[0]
    dump = files[f"postgres/{ep.dbname}.dump"]
    with _private_files(c, {f"{RESTORE_DIR}/pg.dump": (dump, "postgres"),
                            f"{RESTORE_DIR}/globals.sql": (files.get("postgres/globals.sql", b""), "postgres")},
                        "postgres"):
        # Roles that already exist make psql print an error and go on; passwords are not in the file.
        _exec(c, ["psql", "-q", "-U", ep.user, "-d", ep.dbname, "-f", f"{RESTORE_DIR}/globals.sql"], "postgres",
              "psql")
        _exec(c, ["pg_restore", "--clean", "--if-exists", "--no-owner", "--exit-on-error", "-U", ep.user, "-d",
                  ep.dbname, f"{RESTORE_DIR}/pg.dump"], "postgres", "pg_restore")


def restore_mysql(t: Target, files: dict[str, bytes]) -> None:
    ep, c = t.endpoint("mysql"), t.containers("mysql")[0]
    tool = _mysql_tool(c, "mariadb", "mysql")
    with _mysql_option_file(t), _private_files(
            c, {f"{RESTORE_DIR}/dump.sql": (files[f"mysql/{ep.database}.sql"], "mysql")}, "mysql"):
        _exec(c, ["sh", "-c", f'"$0" --defaults-extra-file={MYSQL_OPTIONS} < {RESTORE_DIR}/dump.sql', tool], "mysql",
              tool)


def restore_mongodb(t: Target, files: dict[str, bytes]) -> None:
    ep, c = t.endpoint("mongodb"), t.containers("mongodb")[0]
    archive = f"{RESTORE_DIR}/dump.archive.gz"
    with _mongo_config(t, {archive: (files[f"mongodb/{ep.database}.archive.gz"], "mongodb")}):
        _exec(c, ["mongorestore", f"--config={MONGO_CONFIG}", "--username", ep.user, "--authenticationDatabase",
                  "admin", f"--archive={archive}", "--gzip", "--drop", "--quiet"], "mongodb", "mongorestore")


def restore_redis(t: Target, files: dict[str, bytes]) -> None:
    ep = t.endpoint("redis")
    now_ms = int(time.time() * 1000)
    cluster = ep.client(decode_responses=False)
    try:
        for name, data in files.items():
            if not name.startswith("redis/"):
                continue
            for line in data.splitlines():
                record = json.loads(line)
                key = unb64(record["k"])
                if record["exp"] > 0 and record["exp"] <= now_ms:
                    continue  # expired since the backup
                cluster.restore(key, max(record["exp"], 0), unb64(record["v"]), replace=True,
                                absttl=record["exp"] > 0)
    finally:
        cluster.close()


def restore_rabbitmq(t: Target, files: dict[str, bytes]) -> None:
    ep = t.endpoint("rabbitmq")
    definitions = json.loads(files["rabbitmq/definitions.json"])
    definitions["users"] = [u for u in definitions.get("users", []) if u.get("name") != ep.user]
    resp = requests.post(f"{ep.management_url()}/api/definitions", json=definitions, auth=(ep.user, ep.password),
                         timeout=60, verify=ep.tls.ca_file if ep.tls is not None else True)
    if resp.status_code not in (200, 201, 204):
        raise BackupError(f"POST /api/definitions answered {resp.status_code}: {resp.text[:300]}")


RESTORE: dict[str, Callable[[Target, dict[str, bytes]], None]] = {
    "postgres": restore_postgres, "mysql": restore_mysql, "mongodb": restore_mongodb, "redis": restore_redis,
    "rabbitmq": restore_rabbitmq}


def redis_shard_problems(name: str, data: bytes, slots: list[list[int]]) -> str | None:
    """Every key of a shard file hashes into the slot ranges recorded for it."""
    for line in data.splitlines():
        key = unb64(json.loads(line)["k"])
        slot = key_slot(key)
        if not any(lo <= slot <= hi for lo, hi in slots):
            return f"key in slot {slot} is outside the shard's recorded ranges {slots}"
    return None


# --------------------------------------------------------------------------------------------- vault restore


def restore_vault(t: Target, files: dict[str, bytes], adopt: Callable[[dict[str, Any], dict[str, Any]], None],
                  timeout: float = 60) -> None:
    """Force-restore the raft snapshot, unseal with the backup's keys, make the harness use the backup's admin
    token and AppRole credentials (``adopt``), and write the live servers' credentials into the restored KV."""
    import hvac

    from harness.waiting import poll

    ep = t.endpoint("vault")
    bundle = json.loads(files["vault/unseal.json"])
    resp = requests.post(f"{ep.url}/v1/sys/storage/raft/snapshot-force", data=files["vault/raft.snap"],
                         headers={"X-Vault-Token": ep.token}, timeout=120)
    if resp.status_code not in (200, 204):
        raise BackupError(f"raft snapshot-force answered {resp.status_code}: {resp.text[:300]}")
    client = hvac.Client(url=ep.url, timeout=10)
    restored_admin = hvac.Client(url=ep.url, token=bundle["bootstrap"]["admin_token"], timeout=10)

    def restored() -> bool:
        # The restore seals Vault asynchronously (a snapshot from another cluster brings that cluster's keyring),
        # so "unsealed" alone proves nothing: ready means unsealed *and* the backup's admin token is valid.
        health: dict[str, Any] = requests.get(f"{ep.url}/v1/sys/health", params={"sealedcode": 200,
                                              "standbycode": 200, "uninitcode": 200}, timeout=5).json()
        if health.get("sealed"):
            for key in bundle["init"]["keys"][: bundle["init"]["threshold"]]:
                client.sys.submit_unseal_key(key)
            return False
        restored_admin.auth.token.lookup_self()
        return True

    poll(restored, what="the restored Vault to be unsealed (with the backup's keys) and to accept the backup's "
         "admin token", timeout=timeout, accept=bool,
         hint="a snapshot from another cluster needs that cluster's unseal keys, which the backup carries")
    adopt(bundle["init"], bundle["bootstrap"])
    admin = t.endpoint("vault").client()
    for name in t.running():
        if name == "vault":
            continue
        live = t.endpoint(name)
        secret = admin.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                         raise_on_deleted_version=True)["data"]["data"]
        secret["password"] = live.password
        if name == "mysql":
            secret["root_password"] = live.root_password
        admin.secrets.kv.v2.create_or_update_secret(path=name, secret=secret, mount_point="secret")


# ------------------------------------------------------------------------------------------- orchestration


def create(t: Target, root: Path, services: list[str] | None, passphrase: bytes | None,
           parent_id: str | None = None) -> Any:
    """Back up the running services (or ``services``) into a new backup under ``root``."""
    from harness.backup import build_backup

    wanted = [s for s in ORDER if s in (services or t.running()) and s in t.running()]
    missing = sorted(set(services or []) - set(t.running()))
    if missing:
        raise BackupError(f"not running in this stack: {', '.join(missing)}")
    captured: list[Captured] = []
    for name in wanted:
        captured += CAPTURE[name](t)
    versions = {name: _version(t, name) for name in wanted}
    return build_backup(root, captured, services=wanted, versions=versions, passphrase=passphrase,
                        parent_id=parent_id)


def _version(t: Target, name: str) -> str:
    try:
        ep = t.endpoint(name)
        if name == "postgres":
            with ep.connect() as conn:
                return str(conn.execute("SHOW server_version").fetchone()[0])
        if name == "mysql":
            conn = ep.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT VERSION()")
                    return str(cur.fetchone()[0])
            finally:
                conn.close()
        if name == "redis":
            with ep.node_client(ep.nodes[0]) as client:
                return str(client.info("server")["redis_version"])
        if name == "rabbitmq":
            return str(ep.api("overview").json().get("rabbitmq_version"))
        if name == "vault":
            return str(ep.client().sys.read_health_status(method="GET").get("version"))
        if name == "mongodb":
            with ep.client() as client:
                return str(client.server_info()["version"])
    except Exception as exc:  # a version is descriptive; its absence must not stop a backup
        return f"unknown ({type(exc).__name__})"
    return "unknown"


def restore(t: Target, root: Path, backup_id: str, passphrase: bytes | None, services: list[str] | None,
            adopt: Callable[[dict[str, Any], dict[str, Any]], None]) -> dict[str, float]:
    """Verify, then restore each service of the backup that runs in ``t``; returns seconds per service. A backup
    that does not verify is refused before anything of ``t`` is touched."""
    from harness.backup import read_artifacts

    return restore_verified(t, read_artifacts(root, backup_id, passphrase), services, adopt)


def services_in(artifacts: dict[str, tuple[Artifact, bytes]]) -> list[str]:
    """The services a backup holds, in restore order."""
    return [s for s in ORDER if s in {art.service for art, _ in artifacts.values()}]


def restore_verified(t: Target, artifacts: dict[str, tuple[Artifact, bytes]], services: list[str] | None,
                     adopt: Callable[[dict[str, Any], dict[str, Any]], None]) -> dict[str, float]:
    """Restore artifacts returned by :func:`harness.backup.read_artifacts` (verified) into ``t``."""
    wanted = [s for s in services_in(artifacts) if services is None or s in services]
    not_running = [s for s in wanted if s not in t.running()]
    if not_running:
        raise BackupError(f"the target stack does not run {', '.join(not_running)}; start it first")
    timings = {}
    for name in wanted:
        files = {n: data for n, (art, data) in artifacts.items() if art.service == name}
        t0 = time.monotonic()
        if name == "vault":
            restore_vault(t, files, adopt)
        else:
            RESTORE[name](t, files)
        timings[name] = round(time.monotonic() - t0, 3)
    return timings


class StackTarget:
    """A pytest/CLI :class:`~harness.engine.Stack` as a backup target."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.state_dir: Path = stack.state_dir

    def endpoint(self, name: str) -> Any:
        return self.stack.endpoint(name)

    def containers(self, name: str) -> list[Any]:
        return [self.stack.client.containers.get(cid) for cid in self.stack.require(name).container_ids()]

    def running(self) -> list[str]:
        return list(self.stack.services)

    def adopt_vault(self, init: dict[str, Any], bootstrap: dict[str, Any]) -> None:
        """After a Vault restore: the backup's unseal keys, admin token and AppRole credentials are current."""
        from harness.vault_bootstrap import BootstrapResult
        from stack.vault import VaultInit

        vault = self.stack.require("vault")
        vault.init_result = VaultInit(keys=list(init["keys"]), root_token=str(init["root_token"]),
                                      shares=int(init["shares"]), threshold=int(init["threshold"]))
        vault.init_result.save(vault.keys_file)
        result = BootstrapResult(**bootstrap)
        result.save(self.state_dir / "vault-bootstrap.json")
        vault.admin_token = result.admin_token
        self.stack.vault_bootstrap = result


class UpStackTarget:
    """A stack left running by ``python -m harness up`` (state file + container labels) as a backup target."""

    def __init__(self, up: Any, client: Any) -> None:
        self.up = up
        self.client = client
        self.state_dir: Path = up.state_dir
        self._endpoints = up.endpoints()

    def endpoint(self, name: str) -> Any:
        if name not in self._endpoints:
            raise BackupError(f"{name} is not running in run {self.up.run_id}")
        return self._endpoints[name]

    def containers(self, name: str) -> list[Any]:
        from stack.base import LABEL_RUN_ID, LABEL_SERVICE

        found = self.client.containers.list(filters={"label": [f"{LABEL_RUN_ID}={self.up.run_id}",
                                                               f"{LABEL_SERVICE}={name}"]})
        if not found:
            raise BackupError(f"no running {name} container in run {self.up.run_id}")
        return sorted(found, key=lambda c: c.name)

    def running(self) -> list[str]:
        return list(self._endpoints)

    def adopt_vault(self, init: dict[str, Any], bootstrap: dict[str, Any]) -> None:
        from dataclasses import replace

        from harness.files import write_file

        write_file(self.state_dir / "vault-init.json", json.dumps(init))
        write_file(self.state_dir / "vault-bootstrap.json", json.dumps(bootstrap, indent=2))
        self._endpoints["vault"] = replace(self._endpoints["vault"], token=bootstrap["admin_token"])
        self.up.save(self._endpoints)
