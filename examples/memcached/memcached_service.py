"""memcached as a devstack-harness service, defined outside the package (an example of adding a service).

Ports: 11211 plain, 11212 TLS (dual mode; strict mode serves 11212 only). Credentials: memcached's ASCII
authentication (``-Y``): a ``user:password`` file, 0600 and owned by the server's user, never in argv or env; a
client's first command is a ``set`` whose value is ``"<user> <password>"``. TLS: the Vault-issued certificate,
TLS 1.2+ with the policy's TLS 1.2 suites; ``refresh_certs`` reloads it live. The server cannot change a password
live (its auth file is read at start), so the driver has no ``change_password``: the password rotation suite leaves
it out and says nothing is missing.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheUnexpectedCloseError

from stack.base import (
    APP_USER,
    TLS_CA,
    TLS_CERT,
    TLS_KEY,
    LoopbackContainer,
    MakeRequest,
    ProbeWaitStrategy,
    PublishedService,
    RunContext,
    TlsInfo,
    TlsMaterial,
    client_tls_context,
    random_secret,
)
from stack.driver import Refusal, ServiceDriver
from stack.images import ImageSpec
from stack.service import ServiceSpec
from stack.tls_policy import OPENSSL_TLS12

PLAIN_PORT = 11211
TLS_PORT = 11212
AUTH_FILE = "/run/harness/memcached-auth"


def server_options(tls: bool, strict: bool) -> list[str]:
    """memcached's arguments: ASCII authentication from the auth file, the listeners of the mode, TLS files."""
    options = ["-Y", AUTH_FILE, "-m", "64"]
    if not tls:
        return [*options, "-l", f"0.0.0.0:{PLAIN_PORT}"]
    listeners = [] if strict else ["-l", f"notls:0.0.0.0:{PLAIN_PORT}"]
    return [*options, "-Z", *listeners, "-l", f"0.0.0.0:{TLS_PORT}",
            "-o", f"ssl_chain_cert={TLS_CERT},ssl_key={TLS_KEY},ssl_ca_cert={TLS_CA},ssl_min_version=2,"
                  f"ssl_ciphers={OPENSSL_TLS12}"]


@dataclass(frozen=True)
class MemcachedEndpoint:
    host: str
    port: int
    user: str
    password: str
    container_name: str
    alias: str
    tls: TlsInfo | None = None

    def client(self, tls: bool | None = None, user: str | None = None, password: str | None = None) -> Client:
        """An authenticated client (plain, or TLS verified against the root CA with the certificate's name)."""
        use_tls = self.tls is not None and self.tls.strict if tls is None else tls
        context: ssl.SSLContext | None = None
        port = self.port
        if use_tls:
            if self.tls is None:
                raise ValueError(f"{self.alias} has no TLS listener")
            context = client_tls_context(self.tls.ca_file)
            context.check_hostname = False  # the name is checked below, against 127.0.0.1's certificate name
            port = self.tls.port
        client = Client((self.host, port), connect_timeout=3, timeout=5, tls_context=context)
        credentials = f"{user or self.user} {self.password if password is None else password}"
        try:
            client.set("auth", credentials, noreply=False)  # memcached's ASCII authentication: the first command
        except MemcacheUnexpectedCloseError as exc:
            # A TLS-only listener hangs up on a plaintext command; whether the client sees the reset
            # (ConnectionResetError) or the close (pymemcache's own error) is a race, so both read as one refusal.
            raise ConnectionAbortedError(f"{self.alias}: the server closed the connection without answering") from exc
        return client


class MemcachedContainer(LoopbackContainer):
    def __init__(self, image: str, *, ctx: RunContext, user: str, password: str, tls: TlsMaterial | None,
                 strict: bool) -> None:
        super().__init__(image, ctx=ctx, service="memcached")
        if tls is not None:
            self.with_tls_material(tls, owner="memcache")
        self.user, self.password, self.strict = user, password, strict
        self.expose_on_loopback(PLAIN_PORT, TLS_PORT)
        self.waiting_for(ProbeWaitStrategy(lambda: login(self.endpoint()), what="memcached to accept a login",
                                           hint="read the container log: memcached prints why it refused to start",
                                           timeout=ctx.ready_timeout))

    def _configure(self) -> None:
        self.with_private_file(AUTH_FILE, f"{self.user}:{self.password}\n".encode(), owner="memcache")
        self.with_command(server_options(self.tls is not None, self.strict))

    def endpoint(self) -> MemcachedEndpoint:
        return MemcachedEndpoint(host="127.0.0.1", port=self.host_port(PLAIN_PORT), user=self.user,
                                 password=self.password, container_name=self.ctx.container_name(self.alias),
                                 alias=self.alias, tls=self.tls_info(TLS_PORT, "tls", self.strict))


def login(endpoint: MemcachedEndpoint) -> bool:
    client = endpoint.client()
    try:
        return bool(client.version())
    finally:
        client.close()


class _Session:
    """The server's record of this connection: ``stats conns`` lists each connection with the listener that
    accepted it; the one running the command is the only one in ``conn_parse_cmd``."""

    def __init__(self, client: Client, user: str) -> None:
        self.client, self.user = client, user

    def whoami(self) -> str:
        self.client.version()  # the session still answers; memcached keeps no user per connection
        return self.user

    def is_tls(self) -> bool:
        stats = {k.decode() if isinstance(k, bytes) else k: v for k, v in self.client.stats("conns").items()}
        mine = [key.split(":", 1)[0] for key, value in stats.items()
                if key.endswith(":state") and value in (b"conn_parse_cmd", "conn_parse_cmd")]
        if len(mine) != 1:
            raise AssertionError(f"stats conns shows {len(mine)} connections running a command; cannot tell ours")
        listener = stats[f"{mine[0]}:listen_addr"]
        listener = listener.decode() if isinstance(listener, bytes) else str(listener)
        return listener.endswith(f":{TLS_PORT}")


class MemcachedDriver(ServiceDriver[MemcachedEndpoint]):
    endpoint_type = MemcachedEndpoint
    password_refusal = Refusal(MemcacheClientError, "authentication failure")
    plaintext_refusal = Refusal(ConnectionError, None, not_as=(MemcacheClientError,))

    def make(self, req: MakeRequest) -> MemcachedContainer:
        return MemcachedContainer(req.image, ctx=req.ctx, user=req.secret["user"], password=req.secret["password"],
                                  tls=req.tls, strict=req.strict)

    def compose_endpoint(self, pub: PublishedService) -> MemcachedEndpoint:
        raise NotImplementedError("the example memcached service has no compose entry")

    def login(self, endpoint: MemcachedEndpoint) -> bool:
        return login(endpoint)

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        return {"user": APP_USER, "password": random_secret(), "tls_enabled": True, "tls_strict": strict}

    def reload_tls(self, endpoint: MemcachedEndpoint, container: Any, timeout: float) -> str:
        client = endpoint.client()
        try:
            answer = client.raw_command(b"refresh_certs", b"\r\n")
        finally:
            client.close()
        if answer != b"OK":
            raise RuntimeError(f"memcached answered {answer!r} to refresh_certs")
        return "live: refresh_certs"

    @contextmanager
    def session(self, endpoint: MemcachedEndpoint, *, tls: bool | None = None, user: str | None = None,
                password: str | None = None) -> Iterator[_Session]:
        client = endpoint.client(tls=tls, user=user, password=password)
        try:
            yield _Session(client, user or endpoint.user)
        finally:
            client.close()

    def tls_only_evidence(self, endpoint: MemcachedEndpoint) -> str:
        """``stats settings``: the server's listeners, none of them ``notls:``."""
        client = endpoint.client(tls=True)
        try:
            settings = client.stats("settings")
        finally:
            client.close()
        raw = settings.get(b"inter") or settings.get("inter")
        inter = raw.decode() if isinstance(raw, bytes) else str(raw)
        assert "notls:" not in inter and f":{TLS_PORT}" in inter, f"listeners {inter}"
        return f"listeners {inter}"


SPEC = ServiceSpec(
    name="memcached",
    description="needs the example memcached service (and Vault)",
    owner="memcache",
    image=ImageSpec(service="memcached", official="memcached:1.6.18", debian="devstack-harness/memcached:1.6",
                    context=Path(__file__).resolve().parent / "image", product="memcached 1.6",
                    official_version="1.6.18", debian_version="1.6."),
    driver=MemcachedDriver(),
)
