"""MongoDB (official ``mongo`` image, or any image named by ``HARNESS_IMAGE_MONGODB``).

No Debian build exists: Debian ships no mongod and no registry other than Docker Hub carries one, so where
no mongo image is present the harness skips MongoDB's suites with a reason naming the image.
Ports: 27017. Credentials: explicit root ``user``/``password`` (MONGO_INITDB_ROOT_USERNAME/PASSWORD) and
an application ``database``. Readiness: pymongo authenticates through the published 127.0.0.1 port and
runs ``ping`` (the image's init phase binds to localhost inside the container only).
TLS: with a Vault-issued certificate mongod runs ``--tlsMode preferTLS`` (dual mode: plain and TLS on 27017) or
``requireTLS`` (strict), from a 0600 chain+key file owned by mongodb, TLS 1.0/1.1 disabled, TLS 1.2 suites
from :mod:`stack.tls_policy` (``opensslCipherConfig``; untested here: no mongo image), client certificates
optional. A rotated certificate is picked up live by the ``rotateCertificates`` command (5.0+).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pymongo
import pymongo.errors

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
    TLS_PEM,
    LoopbackContainer,
    ProbeWaitStrategy,
    RunContext,
    TlsInfo,
    TlsMaterial,
    random_secret,
)
from stack.driver import Refusal, ServiceDriver
from stack.images import ImageSpec
from stack.service import MakeRequest, PublishedService, ServiceSpec
from stack.tls_policy import OPENSSL_TLS12

MONGO_PORT = 27017
PASSWORD_FILE = "/run/harness/mongodb-password"


def server_options(tls: bool, strict: bool) -> list[str]:
    """mongod options (the official entrypoint passes leading ``--`` options to mongod)."""
    if not tls:
        return []
    return ["--tlsMode", "requireTLS" if strict else "preferTLS", "--tlsCertificateKeyFile", TLS_PEM,
            "--tlsCAFile", TLS_CA, "--tlsAllowConnectionsWithoutCertificates",
            "--tlsDisabledProtocols", "TLS1_0,TLS1_1", "--setParameter", f"opensslCipherConfig={OPENSSL_TLS12}"]


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
    tls: TlsInfo | None = None

    def client(self, tls: bool | None = None, **overrides: Any) -> pymongo.MongoClient[dict[str, Any]]:
        """Plain, or with ``tls`` (default: on when strict) verified against the root CA and hostname."""
        params: dict[str, Any] = {"host": self.host, "port": self.port, "username": self.user,
                                  "password": self.password, "authSource": "admin", "directConnection": True,
                                  "serverSelectionTimeoutMS": 5000}
        if tls and self.tls is None:
            raise ValueError(f"{self.alias} has no TLS listener")
        if (self.tls is not None and self.tls.strict) if tls is None else tls:
            assert self.tls is not None
            params.update(tls=True, tlsCAFile=self.tls.ca_file)
        params.update(overrides)
        return pymongo.MongoClient(**params)


class MongoContainer(LoopbackContainer):
    """MongoDB with explicit root credentials, published on 127.0.0.1 only."""

    name = "mongodb"

    def __init__(self, image: str, *, ctx: RunContext, user: str, password: str, database: str,
                 tls: TlsMaterial | None = None, tls_strict: bool = False, **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="mongodb", **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="mongodb", combined=True)
        elif tls_strict:
            raise ValueError("tls_strict needs a certificate")
        self.tls_strict = tls_strict
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
        options = server_options(self.tls is not None, self.tls_strict)
        if options:
            self.with_command(options)

    def _ping(self) -> bool:
        return login(self.endpoint())

    def endpoint(self) -> MongoEndpoint:
        return MongoEndpoint(host="127.0.0.1", port=self.host_port(MONGO_PORT), user=self.user,
                             password=self.password, database=self.database,
                             container_name=self.ctx.container_name(self.alias), alias=self.alias,
                             tls=self.tls_info(MONGO_PORT, "tls", self.tls_strict))


def login(endpoint: MongoEndpoint) -> bool:
    """The readiness probe: an authenticated ``ping`` through the published port."""
    with endpoint.client(serverSelectionTimeoutMS=2000) as client:
        return bool(client.admin.command("ping").get("ok") == 1.0)




#: the MongoDB tools' config with the password, inside the container while a step runs (never in argv).
MONGO_CONFIG = f"{RESTORE_DIR}/mongo-tools.yaml"


def _tools_config(src: BackupSource, extra: dict[str, tuple[bytes, str]] | None = None
                  ) -> AbstractContextManager[None]:
    """The tools' config with the password inside the MongoDB container (plus ``extra`` files), for the
    duration of a ``with`` block."""
    return private_files(src.container(), {MONGO_CONFIG: (f"password: {src.endpoint.password}\n".encode(),
                                                          "mongodb"), **(extra or {})}, "mongodb")


#: What every backup of MongoDB holds: the application database's archive.
BACKUP_ARCHIVE = f"mongodb/{APP_DATABASE}.archive.gz"


def backup_capture(src: BackupSource) -> list[Captured]:
    """``mongodump --archive --gzip --db <db>`` (credentials in a 0600 ``--config`` file)."""
    ep, c = src.endpoint, src.container()
    cmd = ["mongodump", f"--config={MONGO_CONFIG}", "--username", ep.user, "--authenticationDatabase", "admin",
           "--db", ep.database, "--archive", "--gzip", "--quiet"]
    with _tools_config(src):
        dump, seconds = timed(lambda: run_checked(c, cmd, "mongodb", "mongodump"))
    return [Captured("mongodb", BACKUP_ARCHIVE, dump, seconds, {"tool": "mongodump"})]


def backup_restore(src: BackupSource, files: Mapping[str, bytes]) -> None:
    """``mongorestore --drop`` of the archive (config and archive removed afterwards)."""
    ep, c = src.endpoint, src.container()
    archive = f"{RESTORE_DIR}/dump.archive.gz"
    with _tools_config(src, {archive: (files[BACKUP_ARCHIVE], "mongodb")}):
        run_checked(c, ["mongorestore", f"--config={MONGO_CONFIG}", "--username", ep.user,
                        "--authenticationDatabase", "admin", f"--archive={archive}", "--gzip", "--drop", "--quiet"],
                    "mongodb", "mongorestore")


def server_version(endpoint: MongoEndpoint) -> str:
    with endpoint.client() as client:
        return str(client.server_info()["version"])


# ------------------------------------------------------------------------- the backup round trip's seed
# Deterministic data the round trips in suites/backup/ write, find again after a restore and fingerprint.

MONGO_DOCS = 250


def _seed(ep: MongoEndpoint) -> None:
    with ep.client() as client:
        result = client[ep.database]["seed_docs"].insert_many([{"_id": i, "v": f"doc-{i}"} for i in range(MONGO_DOCS)])
        assert len(result.inserted_ids) == MONGO_DOCS, f"mongodb: inserted {len(result.inserted_ids)} documents, " \
                                                       f"expected {MONGO_DOCS}"


def _seed_missing(ep: MongoEndpoint) -> list[str]:
    with ep.client() as client:
        count = client[ep.database]["seed_docs"].count_documents({})
    return [] if count == MONGO_DOCS else [f"mongodb.seed_docs: {count} documents, seeded {MONGO_DOCS}"]


def _seed_fingerprints(ep: MongoEndpoint) -> dict[str, str]:
    with ep.client() as client:
        docs = [json.dumps(d, sort_keys=True) for d in client[ep.database]["seed_docs"].find().sort("_id", 1)]
    return {"mongodb.seed_docs": f"{len(docs)}:{hashlib.sha256('|'.join(docs).encode()).hexdigest()}"}


# ------------------------------------------------------------------------------------------------ the driver

class _Session:
    """A pymongo client; the server's own record: ``connectionStatus`` and its ``transportSecurity`` counters."""

    def __init__(self, endpoint: MongoEndpoint, client: pymongo.MongoClient[dict[str, Any]], tls: bool | None,
                 credentials: dict[str, str]) -> None:
        self.endpoint, self.client, self.tls, self.credentials = endpoint, client, tls, credentials

    def whoami(self) -> str:
        users = self.client.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
        return str(users[0]["user"]) if users else ""

    def _tls_connections(self) -> int:
        counters = self.client.admin.command("serverStatus").get("transportSecurity", {})
        return sum(int(v) for k, v in counters.items() if k != "unknown")

    def is_tls(self) -> bool:
        """MongoDB keeps no per-connection TLS record; its counters of TLS connections do. One more connection of
        this session's kind is opened: the server's count goes up exactly when that kind is TLS."""
        before = self._tls_connections()
        with self.endpoint.client(tls=self.tls, **self.credentials) as another:
            another.admin.command("ping")
        return self._tls_connections() > before


class MongoDriver(ServiceDriver[MongoEndpoint]):
    endpoint_type = MongoEndpoint
    password_refusal = Refusal(pymongo.errors.OperationFailure, r"Authentication failed.*'code': 18")
    # requireTLS closes a plaintext connection before any reply, so server selection times out.
    plaintext_refusal = Refusal(pymongo.errors.ServerSelectionTimeoutError, None)
    compose_password_file = PASSWORD_FILE

    def make(self, req: MakeRequest) -> MongoContainer:
        s = req.secret
        return MongoContainer(req.image, ctx=req.ctx, user=s["user"], password=s["password"],
                              database=s["database"], tls=req.tls, tls_strict=req.strict)

    def compose_endpoint(self, pub: PublishedService) -> MongoEndpoint:
        name = pub.names[0]
        port = pub.port(name, MONGO_PORT)
        return MongoEndpoint(host="127.0.0.1", port=port, user=str(pub.secret.get("user", "")),
                             password=str(pub.secret["password"]), database=str(pub.secret["database"]),
                             container_name=pub.container_name(name), alias=name,
                             tls=TlsInfo(port, "tls", pub.serial, pub.ca_file, strict=False))

    def login(self, endpoint: MongoEndpoint) -> bool:
        return login(endpoint)

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        return {"password": random_secret(), "tls_enabled": True, "tls_strict": strict, "user": APP_USER,
                "database": APP_DATABASE}

    def compose_files(self, secret: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, bytes]:
        return {PASSWORD_FILE: str(secret.get("password", "")).encode()}

    def compose_env(self, secret: Mapping[str, Any]) -> dict[str, str]:
        return {"DSH_MONGODB_USER": str(secret["user"]), "DSH_MONGODB_DATABASE": str(secret["database"])}

    def reload_tls(self, endpoint: MongoEndpoint, container: Any, timeout: float) -> str:
        """``rotateCertificates`` (MongoDB 5.0+) reloads the certificate and CA files for new connections."""
        with endpoint.client() as client:
            client.admin.command("rotateCertificates", 1)
        return "live: rotateCertificates"

    def change_password(self, endpoint: MongoEndpoint, new: str) -> None:
        """updateUser on admin, as the root user itself."""
        with endpoint.client() as client:
            client.admin.command("updateUser", endpoint.user, pwd=new)

    @contextmanager
    def session(self, endpoint: MongoEndpoint, *, tls: bool | None = None, user: str | None = None,
                password: str | None = None) -> Iterator[_Session]:
        creds = {k: v for k, v in (("username", user), ("password", password)) if v is not None}
        with endpoint.client(tls=tls, serverSelectionTimeoutMS=3000, **creds) as client:
            client.admin.command("ping")  # connect and authenticate now: a refusal surfaces here
            yield _Session(endpoint, client, tls, creds)

    def tls_only_evidence(self, endpoint: MongoEndpoint) -> str:
        """``getCmdLineOpts``: the server runs ``net.tls.mode: requireTLS``."""
        with endpoint.client(tls=True) as client:
            mode = client.admin.command("getCmdLineOpts")["parsed"]["net"]["tls"]["mode"]
        assert mode == "requireTLS", f"net.tls.mode = {mode}"
        return "net.tls.mode = requireTLS"


SPEC = ServiceSpec(
    name="mongodb",
    description="needs MongoDB (and Vault); skipped with the image named where no mongo image exists",
    owner="mongodb",
    image=ImageSpec(service="mongodb", official="mongo:7.0.16", debian=None, context=None, product="MongoDB 7.0",
                    official_version="7.0.16", debian_version=None),
    driver=MongoDriver(),
    official_volumes=("/data/db", "/data/configdb"),
    compose_services=("mongodb",),
    combined_pem=True,
    backup=True,
    backup_ops=BackupOps(backup_capture, backup_restore, server_version,
                         seed=BackupSeed(_seed, _seed_missing, _seed_fingerprints), artifacts=(BACKUP_ARCHIVE,)),
)
