"""RabbitMQ with the management plugin (official ``rabbitmq:<v>-management``, or RabbitMQ 3.10 from Debian).

Ports: 5672 (AMQP), 15672 (management HTTP API). Credentials: explicit ``user``/``password``/``vhost``
(``default_user``/``default_pass``/``default_vhost`` in a conf.d file;
a non-guest user, so no loopback restriction applies).
TLS: with a Vault-issued certificate a second conf.d file adds AMQPS on 5671 and the management API over HTTPS
on 15671 (TLS 1.2/1.3, the suites of :mod:`stack.tls_policy` in the server's order, client certificates
optional); dual mode keeps 5672 and HTTP 15672, strict mode
turns both plain listeners off. A rotated certificate is picked up live for new connections by clearing
Erlang's PEM cache (``rabbitmqctl eval 'ssl:clear_pem_cache().'``).
Readiness: an AMQP login with pika through the published port *and* ``GET /api/overview`` answering 200
with the same credentials; RabbitMQ opens AMQP before the management listener, so both are probed.
RabbitMQ is CPU-bound at start (10-18 s here); start it once per session.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import requests
from docker.models.containers import Container

from stack.backup_ops import BackupOps, BackupSeed, BackupSource, Captured, StepFailed
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
    TlsListener,
    TlsMaterial,
    main_tls_listener,
    random_secret,
)
from stack.drill_ops import BrokerOps, ServiceDrill
from stack.driver import Refusal, ServiceDriver
from stack.images import DebianLine, ImageSpec
from stack.service import MakeRequest, PublishedService, ServiceSpec
from stack.tls_policy import ERLANG_TLS13, TLS12_CIPHERS
from stack.waiting import poll

AMQP_PORT = 5672
AMQPS_PORT = 5671
MANAGEMENT_PORT = 15672
MANAGEMENT_TLS_PORT = 15671
CREDENTIALS_CONF = "/etc/rabbitmq/conf.d/90-harness-credentials.conf"
TLS_CONF = "/etc/rabbitmq/conf.d/91-harness-tls.conf"


def tls_config(strict: bool) -> str:
    """conf.d settings for AMQPS and HTTPS management; strict mode removes both plain listeners."""
    lines = [f"listeners.ssl.default = {AMQPS_PORT}"]
    # Erlang's cipher list covers every version: TLS 1.3 suites are listed too, or TLS 1.3 would stop working.
    ciphers = (*ERLANG_TLS13, *TLS12_CIPHERS)
    for prefix in ("ssl_options", "management.ssl"):
        lines += [f"{prefix}.cacertfile = {TLS_CA}", f"{prefix}.certfile = {TLS_CERT}", f"{prefix}.keyfile = {TLS_KEY}",
                  f"{prefix}.versions.1 = tlsv1.3", f"{prefix}.versions.2 = tlsv1.2",
                  *(f"{prefix}.ciphers.{i} = {name}" for i, name in enumerate(ciphers, 1)),
                  f"{prefix}.honor_cipher_order = true"]
    lines += ["ssl_options.verify = verify_peer", "ssl_options.fail_if_no_peer_cert = false",
              f"management.ssl.port = {MANAGEMENT_TLS_PORT}"]
    lines += ["listeners.tcp = none"] if strict else [f"management.tcp.port = {MANAGEMENT_PORT}"]
    return "\n".join(lines) + "\n"


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
    tls: TlsInfo | None = None  # AMQPS
    management_tls_port: int | None = None

    def _use_tls(self, tls: bool | None) -> bool:
        if tls and self.tls is None:
            raise ValueError(f"{self.alias} has no TLS listener")
        return self.tls is not None and self.tls.strict if tls is None else tls

    def management_url(self, tls: bool | None = None) -> str:
        if self._use_tls(tls):
            return f"https://{self.tls.server_name if self.tls else self.host}:{self.management_tls_port}"
        return f"http://{self.host}:{self.management_port}"

    def parameters(self, tls: bool | None = None, **overrides: Any) -> pika.ConnectionParameters:
        """AMQP (5672) or, with ``tls`` (default: on when strict), AMQPS verified against the root CA."""
        params: dict[str, Any] = {"host": self.host, "port": self.port, "virtual_host": self.vhost,
                                  "credentials": pika.PlainCredentials(self.user, self.password),
                                  "connection_attempts": 1, "socket_timeout": 5, "blocked_connection_timeout": 5}
        if self._use_tls(tls):
            assert self.tls is not None
            params.update(port=self.tls.port, ssl_options=pika.SSLOptions(self.tls.context(), self.tls.server_name))
        params.update(overrides)
        return pika.ConnectionParameters(**params)

    def connect(self, tls: bool | None = None, **overrides: Any) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.parameters(tls, **overrides))

    def api(self, path: str, tls: bool | None = None) -> requests.Response:
        verify: str | bool = self.tls.ca_file if self.tls is not None else True
        return requests.get(f"{self.management_url(tls)}/api/{path.lstrip('/')}", auth=(self.user, self.password),
                            timeout=10, verify=verify)


class RabbitMqContainer(LoopbackContainer):
    """RabbitMQ with the management API, explicit credentials, published on 127.0.0.1 only."""

    name = "rabbitmq"

    def __init__(self, image: str, *, ctx: RunContext, user: str, password: str, vhost: str = "/",
                 tls: TlsMaterial | None = None, tls_strict: bool = False, **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="rabbitmq", **kwargs)
        if tls is not None:
            self.with_tls_material(tls, owner="rabbitmq")
            self.expose_on_loopback(AMQPS_PORT, MANAGEMENT_TLS_PORT)
        elif tls_strict:
            raise ValueError("tls_strict needs a certificate")
        self.tls_strict = tls_strict
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
        conf = credentials_config(self.user, self.password, self.vhost)
        self.with_private_file(CREDENTIALS_CONF, conf.encode(), owner="rabbitmq")
        if self.tls is not None:
            self.with_private_file(TLS_CONF, tls_config(self.tls_strict).encode(), owner="rabbitmq")

    def _probe(self) -> bool:
        return login(self.endpoint())

    def endpoint(self) -> RabbitMqEndpoint:
        tls = self.tls_info(AMQPS_PORT, "tls", self.tls_strict)
        return RabbitMqEndpoint(host="127.0.0.1", port=self.host_port(AMQP_PORT),
                                management_port=self.host_port(MANAGEMENT_PORT), user=self.user,
                                password=self.password, vhost=self.vhost,
                                container_name=self.ctx.container_name(self.alias), alias=self.alias, tls=tls,
                                management_tls_port=self.host_port(MANAGEMENT_TLS_PORT) if tls else None)


def login(endpoint: RabbitMqEndpoint) -> bool:
    """The readiness probe: an AMQP login and ``GET /api/overview`` with the same credentials (the broker
    opens AMQP before the management listener, so both are asked)."""
    endpoint.connect().close()
    return bool(endpoint.api("overview").status_code == 200)


def credentials_config(user: str, password: str, vhost: str) -> str:
    """conf.d lines creating the default user and vhost at the broker's first boot."""
    return f"default_user = {user}\ndefault_pass = {password}\ndefault_vhost = {vhost}\n"


def _eval(container: Any, expression: str) -> str:
    """``rabbitmqctl eval EXPRESSION`` in the broker's container; its output, or RuntimeError with it."""
    result = container.exec_run(["rabbitmqctl", "eval", expression])
    output: str = result.output.decode(errors="replace").strip()
    if result.exit_code != 0:
        raise RuntimeError(f"rabbitmqctl eval '{expression}' exited {result.exit_code}: {output[-300:]}")
    return output


def _eval_ok(container: Any, expression: str) -> None:
    """``rabbitmqctl eval EXPRESSION``, which must answer ``ok``."""
    output = _eval(container, expression)
    if output != "ok":
        raise RuntimeError(f"rabbitmqctl eval '{expression}' answered {output[-300:]!r}, expected ok")


def reload_tls(container: Container) -> str:
    """Erlang's ssl application caches PEM files by path; clearing the cache makes new handshakes read the
    rotated files (RabbitMQ's documented way to rotate certificates without a restart)."""
    _eval_ok(container, "ssl:clear_pem_cache().")
    return "live: ssl:clear_pem_cache()"



#: What every backup of RabbitMQ holds: the definitions export.
BACKUP_DEFINITIONS = "rabbitmq/definitions.json"


def backup_capture(src: BackupSource) -> list[Captured]:
    """The definitions export (users, vhosts, permissions, queues, exchanges, bindings, policies)."""
    ep: RabbitMqEndpoint = src.endpoint
    t0 = time.monotonic()
    resp = ep.api("definitions")
    if resp.status_code != 200:
        raise StepFailed(f"GET /api/definitions answered {resp.status_code}: {resp.text[:200]}")
    data = json.dumps(resp.json(), indent=1, sort_keys=True).encode()
    return [Captured("rabbitmq", BACKUP_DEFINITIONS, data, round(time.monotonic() - t0, 3),
                     {"tool": "management API /api/definitions"})]


def backup_format_check(name: str, data: bytes) -> str | None:
    """``backup verify``'s check of the definitions export, as the restore reads it: a JSON object whose users
    (if any) are a list of objects."""
    try:
        definitions = json.loads(data)
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(definitions, dict):
        return "not a JSON object"
    users = definitions.get("users", [])
    if not isinstance(users, list) or not all(isinstance(user, dict) for user in users):
        return "'users' is not a list of objects"
    return None


def backup_restore(src: BackupSource, files: Mapping[str, bytes]) -> None:
    """Import the definitions; the live application user is left out, so its current password keeps working."""
    ep: RabbitMqEndpoint = src.endpoint
    definitions = json.loads(files[BACKUP_DEFINITIONS])
    definitions["users"] = [u for u in definitions.get("users", []) if u.get("name") != ep.user]
    resp = requests.post(f"{ep.management_url()}/api/definitions", json=definitions, auth=(ep.user, ep.password),
                         timeout=60, verify=ep.tls.ca_file if ep.tls is not None else True)
    if resp.status_code not in (200, 201, 204):
        raise StepFailed(f"POST /api/definitions answered {resp.status_code}: {resp.text[:300]}")


def server_version(endpoint: RabbitMqEndpoint) -> str:
    return str(endpoint.api("overview").json().get("rabbitmq_version"))


# ------------------------------------------------------------------------- the backup round trip's seed
# Deterministic data the round trips in suites/backup/ write, find again after a restore and fingerprint.

RABBIT_QUEUES = ("orders", "invoices")


def _seed(ep: RabbitMqEndpoint) -> None:
    rabbit = ep
    auth = (rabbit.user, rabbit.password)
    verify_tls: str | bool = rabbit.tls.ca_file if rabbit.tls is not None else True
    base = rabbit.management_url()
    vhost = urllib.parse.quote(rabbit.vhost, safe="")
    steps: list[tuple[str, str, dict[str, Any]]] = [
        *[("PUT", f"queues/{vhost}/{queue}", {"durable": True}) for queue in RABBIT_QUEUES],
        ("PUT", f"exchanges/{vhost}/billing", {"type": "topic", "durable": True}),
        ("POST", f"bindings/{vhost}/e/billing/q/invoices", {"routing_key": "invoice.#"}),
        ("PUT", f"policies/{vhost}/ttl", {"pattern": "^orders$", "definition": {"message-ttl": 60000},
                                          "apply-to": "queues"})]
    for method, path, body in steps:
        resp = requests.request(method, f"{base}/api/{path}", json=body, auth=auth, timeout=10, verify=verify_tls)
        assert resp.status_code in (201, 204), f"rabbitmq: {method} /api/{path} answered {resp.status_code}: " \
                                               f"{resp.text[:200]}"


def _seed_missing(ep: RabbitMqEndpoint) -> list[str]:
    missing = []
    rabbit = ep
    defs = rabbit.api("definitions").json()
    in_vhost = {k: [d for d in defs.get(k, []) if d.get("vhost") == rabbit.vhost]
                for k in ("queues", "exchanges", "bindings", "policies")}
    missing += [f"rabbitmq.queue {q}: absent" for q in RABBIT_QUEUES
                if q not in {d["name"] for d in in_vhost["queues"]}]
    if "billing" not in {d["name"] for d in in_vhost["exchanges"]}:
        missing.append("rabbitmq.exchange billing: absent")
    if not any(d["source"] == "billing" and d["destination"] == "invoices" and d["routing_key"] == "invoice.#"
               for d in in_vhost["bindings"]):
        missing.append("rabbitmq.binding billing -> invoices (invoice.#): absent")
    if not any(d["name"] == "ttl" and d["definition"] == {"message-ttl": 60000} for d in in_vhost["policies"]):
        missing.append("rabbitmq.policy ttl: absent")
    return missing


def _definition(kind: str, item: Mapping[str, Any]) -> str:
    """One exported definition as compared across a restore, in the form every RabbitMQ version shares: a queue
    exported without a type is a classic queue (4.x writes ``"type": "classic"``, 3.10 writes nothing)."""
    picked = {f: item.get(f) for f in ("name", "vhost", "source", "destination", "routing_key", "type", "durable",
                                       "pattern", "definition")}
    if kind == "queues" and picked["type"] is None:
        picked["type"] = "classic"
    return json.dumps(picked, sort_keys=True)


def _seed_fingerprints(ep: RabbitMqEndpoint) -> dict[str, str]:
    defs = ep.api("definitions").json()
    # amq.* exchanges belong to the broker (4.3 exports its amq.rabbitmq.log per vhost, 3.10 does not): not data.
    picked = {k: sorted(_definition(k, d) for d in defs.get(k, [])
                        if not (k == "exchanges" and str(d.get("name", "")).startswith("amq.")))
              for k in ("vhosts", "queues", "exchanges", "bindings", "policies")}
    return {"rabbitmq.definitions": hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()}
# ------------------------------------------------------------------------------------------- the broker-loss drill

def drill_connect(endpoint: RabbitMqEndpoint) -> pika.BlockingConnection:
    """A drill client's connection: one attempt, 2 s socket timeout, 5 s heartbeat and blocked timeout (a lost
    broker is noticed within seconds, not at the default 60 s heartbeat)."""
    return endpoint.connect(socket_timeout=2, heartbeat=5, blocked_connection_timeout=5)


#: The metadata store's durability facts. RabbitMQ 3.10 keeps queues in Mnesia: a declaration writes the disc table
#: ``rabbit_durable_queue`` and the RAM table ``rabbit_queue`` in one transaction, which Mnesia commits as an
#: asymmetric transaction even on one node. Its "committed" decision reaches ``LATEST.LOG`` through the
#: ``mnesia_recover`` process, asynchronously, after ``queue.declare-ok``; a SIGKILL before that leaves a commit
#: record without a decision, which recovery presumes aborted (docs/drills.md, rabbitmq-declare-durability).
SETTLE_METADATA = "ok = mnesia_recover:sync(), mnesia:sync_log()."
HOLD_METADATA = "sys:suspend(mnesia_recover)."
#: RabbitMQ 4.x can keep its metadata in Khepri (a Raft log) instead of Mnesia: opt-in on 4.0, the default from 4.2
#: on. Asked of the running broker (the module may not exist, as on 3.10).
METADATA_STORE = ("case code:ensure_loaded(rabbit_khepri) of {module, _} -> "
                  "case rabbit_khepri:is_enabled() of true -> khepri; false -> mnesia end; _ -> mnesia end.")
#: Per metadata store: is a durable queue killed right after its declare-ok gone after the restart? Mnesia: yes when
#: the commit decision had not reached the log (the drill holds it back to make the window certain; measured 7 of
#: 7 on 3.10 and on 4.0). Khepri: a declare-ok comes after the Raft log entry is written, so the queue survives
#: (measured on 4.3; the drill fails if either stops being true).
UNSETTLED_DECLARE_LOST = {"mnesia": True, "khepri": False}


def metadata_store(container: Any) -> str:
    """``mnesia`` or ``khepri``: where the running broker keeps queues, exchanges and bindings."""
    output = _eval(container, METADATA_STORE)
    if output not in UNSETTLED_DECLARE_LOST:
        raise RuntimeError(f"rabbitmqctl eval (metadata store) answered {output[-300:]!r}, expected mnesia or khepri")
    return output


def settle_metadata(container: Any) -> None:
    """Push Mnesia's pending commit decisions into its log and sync the log to disk (Khepri: nothing to settle, a
    declare-ok already follows the Raft log write)."""
    if metadata_store(container) == "khepri":
        return
    _eval_ok(container, SETTLE_METADATA)


def hold_metadata(container: Any) -> None:
    """Suspend ``mnesia_recover``: commit decisions wait in its mailbox (a kill makes the window certain)."""
    _eval_ok(container, HOLD_METADATA)


_BROKER_OPS = BrokerOps(connect=drill_connect, settle_metadata=settle_metadata, hold_metadata=hold_metadata,
                        metadata_store=metadata_store, unsettled_declare_lost=UNSETTLED_DECLARE_LOST)

DRILLS = (
    ServiceDrill(
        name="rabbitmq-broker-loss", kind="broker-loss", faults=("docker-kill",),
        summary="the consumer cancelled, >= 100 confirmed persistent messages waiting in a durable queue when the "
                "broker is killed; every confirmed and unacknowledged message must be delivered after the restart",
        ops=_BROKER_OPS),
    ServiceDrill(
        name="rabbitmq-declare-durability", kind="declare-durability", faults=("docker-kill",),
        summary="a durable queue declared, then the broker killed at once and after settling: on Mnesia (commit "
                "decisions held back) the unsettled queue is gone (the finding), on Khepri it survives; settled, "
                "it survives",
        ops=_BROKER_OPS),
)


# ------------------------------------------------------------------------------------------------ the driver

class _Session:
    """A named AMQP connection; the server's own record of it is the management API's connection entry (its
    ``user`` and ``ssl``), found by the connection name."""

    def __init__(self, endpoint: RabbitMqEndpoint, conn: pika.BlockingConnection, name: str) -> None:
        self.endpoint, self.conn, self.name = endpoint, conn, name

    def _record(self) -> dict[str, Any]:
        def lookup() -> dict[str, Any] | None:
            listed = self.endpoint.api("connections").json()  # the endpoint's own (administrator) credentials
            return next((c for c in listed if c.get("client_properties", {}).get("connection_name") == self.name),
                        None)

        found: dict[str, Any] = poll(lookup, what=f"connection {self.name!r} in the management API", timeout=30,
                                     accept=lambda r: r is not None,
                                     hint="the management API lists a connection within seconds of its opening")
        return found

    def whoami(self) -> str:
        self.conn.channel().close()  # the session is usable, not only open
        return str(self._record()["user"])

    def is_tls(self) -> bool:
        record = self._record()
        return record["ssl"] is True and record["ssl_protocol"] in ("tlsv1.2", "tlsv1.3")


class RabbitMqDriver(ServiceDriver[RabbitMqEndpoint]):
    endpoint_type = RabbitMqEndpoint
    password_refusal = Refusal(pika.exceptions.ProbableAuthenticationError, "ACCESS_REFUSED")
    # No plaintext listener: the connection fails before any login. A login refusal would mean a plaintext
    # listener exists and read the credentials.
    plaintext_refusal = Refusal(pika.exceptions.AMQPConnectionError, None, not_as=(
        pika.exceptions.ProbableAuthenticationError, pika.exceptions.ProbableAccessDeniedError))
    compose_password_file = CREDENTIALS_CONF

    def make(self, req: MakeRequest) -> RabbitMqContainer:
        s = req.secret
        return RabbitMqContainer(req.image, ctx=req.ctx, user=s["user"], password=s["password"], vhost=s["vhost"],
                                 tls=req.tls, tls_strict=req.strict)

    def compose_endpoint(self, pub: PublishedService) -> RabbitMqEndpoint:
        name = pub.names[0]
        return RabbitMqEndpoint(host="127.0.0.1", port=pub.port(name, AMQP_PORT),
                                management_port=pub.port(name, MANAGEMENT_PORT), user=str(pub.secret.get("user", "")),
                                password=str(pub.secret["password"]), vhost=str(pub.secret["vhost"]),
                                container_name=pub.container_name(name), alias=name,
                                tls=TlsInfo(pub.port(name, AMQPS_PORT), "tls", pub.serial, pub.ca_file, strict=False),
                                management_tls_port=pub.port(name, MANAGEMENT_TLS_PORT))

    def login(self, endpoint: RabbitMqEndpoint) -> bool:
        return login(endpoint)

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        """Random credentials, the application's vhost, TLS flags as JSON booleans."""
        return {"password": random_secret(), "tls_enabled": True, "tls_strict": strict, "user": APP_USER,
                "vhost": APP_DATABASE}

    def compose_files(self, secret: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, bytes]:
        """The compose broker's conf.d files (TLS dual mode)."""
        return {CREDENTIALS_CONF: credentials_config(str(secret["user"]), str(secret["password"]),
                                                     str(secret["vhost"])).encode(),
                TLS_CONF: tls_config(strict=False).encode()}

    def tls_targets(self, endpoint: RabbitMqEndpoint) -> list[TlsListener]:
        """AMQPS and, where published, the management API over HTTPS (same certificate)."""
        found = main_tls_listener(endpoint)
        if found and endpoint.management_tls_port:
            found.append((f"{endpoint.alias} (management https)", endpoint.management_tls_port, "tls"))
        return found

    def describe(self, endpoint: RabbitMqEndpoint) -> tuple[str, str]:
        """AMQP and the management API."""
        plain = f"amqp 127.0.0.1:{endpoint.port}, management http://127.0.0.1:{endpoint.management_port}"
        tls = endpoint.tls
        secure = (f"amqps localhost:{tls.port}, management https://localhost:{endpoint.management_tls_port}"
                  if tls else "")
        return plain, secure

    def reload_tls(self, endpoint: RabbitMqEndpoint, container: Any, timeout: float) -> str:
        return reload_tls(container)

    def change_password(self, endpoint: RabbitMqEndpoint, new: str) -> None:
        """PUT /api/users/{user} with the current credentials (the user keeps its administrator tag)."""
        verify: str | bool = endpoint.tls.ca_file if endpoint.tls is not None else True
        resp = requests.put(f"{endpoint.management_url()}/api/users/{endpoint.user}",
                            auth=(endpoint.user, endpoint.password), json={"password": new, "tags": "administrator"},
                            timeout=10, verify=verify)
        if resp.status_code not in (201, 204):
            raise RuntimeError(f"RabbitMQ refused the password change: {resp.status_code} {resp.text[:200]}")

    @contextmanager
    def session(self, endpoint: RabbitMqEndpoint, *, tls: bool | None = None, user: str | None = None,
                password: str | None = None) -> Iterator[_Session]:
        name = f"harness-session-{secrets.token_hex(4)}"
        creds = pika.PlainCredentials(user or endpoint.user, password if password is not None else endpoint.password)
        conn = endpoint.connect(tls=tls, credentials=creds, client_properties={"connection_name": name})
        try:
            yield _Session(endpoint, conn, name)
        finally:
            if conn.is_open:
                conn.close()

    def tls_only_evidence(self, endpoint: RabbitMqEndpoint) -> str:
        """The broker's own listener list (over HTTPS): AMQPS and HTTPS only, and plain HTTP not answering."""
        overview = endpoint.api("overview", tls=True)
        assert overview.status_code == 200, f"GET /api/overview over HTTPS answered {overview.status_code}"
        protocols = {listener["protocol"] for listener in overview.json()["listeners"]}
        assert {"amqp/ssl", "https"} <= protocols and not protocols & {"amqp", "http"}, f"listeners {protocols}"
        try:
            endpoint.api("overview", tls=False)
        except requests.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError("the management API still answers plain HTTP")
        return f"listeners: {', '.join(sorted(protocols))}; plain HTTP refused"


SPEC = ServiceSpec(
    name="rabbitmq",
    description="needs RabbitMQ (and Vault)",
    owner="rabbitmq",
    image=ImageSpec(service="rabbitmq", official="rabbitmq:3.10.25-management",
                    debian="devstack-harness/rabbitmq:3.10", context="rabbitmq", product="RabbitMQ 3.10",
                    official_version="3.10.25", debian_version="3.10.", lines=(
                        DebianLine("trixie", "rabbitmq", "devstack-harness/rabbitmq:4.0-trixie", "rabbitmq",
                                   "RabbitMQ 4.0", "4.0."),
                        DebianLine("sid", "rabbitmq", "devstack-harness/rabbitmq:4.3-sid", "rabbitmq",
                                   "RabbitMQ 4.3", "4.3."))),
    driver=RabbitMqDriver(),
    official_volumes=("/var/lib/rabbitmq",),
    compose_services=("rabbitmq",),
    tls12_server_order="honor_cipher_order = true",
    backup=True,
    backup_ops=BackupOps(backup_capture, backup_restore, server_version,
                         seed=BackupSeed(_seed, _seed_missing, _seed_fingerprints), artifacts=(BACKUP_DEFINITIONS,),
                         format_check=backup_format_check),
    drills=DRILLS,
)
