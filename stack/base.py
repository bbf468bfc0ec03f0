"""What every service module shares: the run context, loopback-only ports, and probe-based readiness.

A service module in ``stack/`` is shaped like a testcontainers community module: a container class whose
constructor takes the image first and explicit credentials, a readiness probe that talks to the real
listener through the published port, and a frozen dataclass endpoint for consumers. The community modules
themselves are not subclassed because they fall back to reading credentials from the host environment
(``POSTGRES_PASSWORD`` and the like), which the harness never does.
"""

from __future__ import annotations

import io
import secrets
import ssl
import string
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from stack.errors import ServiceStartError
from stack.waiting import poll

if TYPE_CHECKING:
    from docker.models.containers import Container

LABEL_PREFIX = "devstack-harness"
LABEL_RUN_ID = f"{LABEL_PREFIX}.run-id"
LABEL_SERVICE = f"{LABEL_PREFIX}.service"
LABEL_OWNER_PID = f"{LABEL_PREFIX}.owner-pid"
LABEL_OWNER_HOST = f"{LABEL_PREFIX}.owner-host"
LABEL_KEEP = f"{LABEL_PREFIX}.keep"

LOOPBACK = "127.0.0.1"
_PRIVATE_FILES_MARKER = "/.devstack-harness-private-files"
_OWN_DIR = "/run/harness"


APP_USER = "devstack"  # the application user every service gets (its password from Vault's KV)
APP_DATABASE = "devstack"  # the application database / vhost


def random_secret(length: int = 24) -> str:
    """A URL- and shell-safe random password (letters and digits only, so no quoting surprises)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


TLS_DIR = "/run/harness/tls"  # under _OWN_DIR
TLS_CERT = f"{TLS_DIR}/server.crt"  # leaf + intermediate
TLS_KEY = f"{TLS_DIR}/server.key"
TLS_CA = f"{TLS_DIR}/ca.crt"  # the root CA (verifies client certificates where a server asks for one)
TLS_PEM = f"{TLS_DIR}/server.pem"  # certificate chain + key in one file (MongoDB)


@dataclass(frozen=True)
class TlsMaterial:
    """A Vault-issued leaf for a service: PEM certificate (leaf + intermediate), key, root CA, serial."""

    certificate: str
    private_key: str
    ca_chain: str
    root_ca: str
    serial: str

    def files(self, owner: str, combined: bool = False) -> dict[str, tuple[bytes, str]]:
        """The files a server reads, as ``path -> (content, owner)`` (all installed 0600). The CA file holds the
        chain that issued the server's certificate (intermediate and root), not the root alone: MySQL 9 verifies
        its own certificate against it (a warning at start, and ``ALTER INSTANCE RELOAD TLS`` refuses with
        "Invalid certificates" when the intermediate is missing); the other servers accept a bundle there."""
        files = {TLS_CERT: (self.certificate.encode(), owner), TLS_KEY: (self.private_key.encode(), owner),
                 TLS_CA: ((self.ca_chain or self.root_ca).encode(), owner)}
        if combined:
            pem = self.certificate.rstrip("\n") + "\n" + self.private_key.rstrip("\n") + "\n"
            files[TLS_PEM] = (pem.encode(), owner)
        return files


@dataclass(frozen=True)
class TlsInfo:
    """How a client reaches a service's TLS listener and what it should find there.

    Attributes:
        port: published 127.0.0.1 port of the TLS listener (the plain port too where both share one).
        protocol: ``tls`` (TLS from the first byte), ``postgres`` or ``mysql`` (upgrade inside the protocol).
        serial: Vault serial (``aa:bb:..``) of the certificate the harness installed.
        ca_file: the exported root CA that clients trust.
        strict: the server refuses plaintext.
        server_name: a name in the certificate's SANs that resolves to the published port.
    """

    port: int
    protocol: str
    serial: str
    ca_file: str
    strict: bool
    server_name: str = "localhost"

    def context(self) -> ssl.SSLContext:
        """A client context with full verification (chain to the root CA and hostname), TLS 1.2 or newer."""
        return client_tls_context(self.ca_file)


def client_tls_context(ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass(frozen=True)
class RunContext:
    """Per-run facts every container needs: the run id, its labels and the stack network.

    Attributes:
        run_id: unique id of this run; also labels every container and the network.
        labels: labels put on every container of the run (run id, owner pid/host, keep flag).
        network: the user-defined network all services join (aliases = service names).
        ready_timeout: seconds a readiness probe may take.
        ca_file: path of the exported root CA (written after Vault's bootstrap, before other services start).
    """

    run_id: str
    labels: dict[str, str]
    network: Network
    ready_timeout: float
    name_prefix: str = field(default="")
    ca_file: str = ""  # where the root CA is exported once Vault is bootstrapped

    def container_name(self, service: str) -> str:
        # The run id ends in random hex; the date part alone would collide between runs of the same day.
        return f"{self.name_prefix or 'dsh-' + self.run_id[-6:]}-{service}"


class ProbeWaitStrategy(WaitStrategy):
    """Ready when ``probe()`` returns truthy; the probe must talk to the real listener.

    Unlike a log-line or bare TCP check, a probe logs in through the published port, so "ready" means a
    client can actually use the service. A timeout raises :class:`ReadinessTimeout` naming what was
    awaited, the last error seen and a hint.
    """

    def __init__(self, probe: Callable[[], Any], what: str, hint: str, timeout: float) -> None:
        super().__init__()
        self._probe = probe
        self._what = what
        self._hint = hint
        self.with_startup_timeout(int(timeout))
        self.with_poll_interval(0.25)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        def check() -> Any:
            container.reload()
            status = container.status
            if status in ("exited", "dead"):
                _, err = container.get_logs()
                raise _ContainerExited(f"container {status}; last log: {err.decode(errors='replace')[-400:]}")
            return self._probe()

        try:
            poll(check, what=self._what, timeout=self._startup_timeout, hint=self._hint,
                 interval=self._poll_interval, fatal=(_ContainerExited,))
        except _ContainerExited as exc:
            raise ServiceStartError(f"{self._what}: {exc}") from None


class _ContainerExited(Exception):
    """The container stopped while we waited; retrying cannot help, but the text is the best clue."""


class LoopbackContainer(DockerContainer):
    """A DockerContainer that publishes every exposed port on 127.0.0.1 only, with a random host port,
    and carries the run's labels, name and network alias."""

    def __init__(self, image: str, *, ctx: RunContext, service: str, alias: str | None = None,
                 **kwargs: Any) -> None:
        labels = {**ctx.labels, LABEL_SERVICE: service}
        super().__init__(image, labels=labels, **kwargs)
        self.ctx = ctx
        self.service = service
        self.name: str = service  # what the engine reports it as (Service.name)
        self.alias = alias or service
        self.with_name(ctx.container_name(self.alias))
        self.with_network(ctx.network)
        self.with_network_aliases(self.alias)
        self._private_files: dict[str, tuple[bytes, str]] = {}
        self.tls: TlsMaterial | None = None
        self.password = ""  # the service's password, for services that have one (set by the subclass)

    def with_private_file(self, path: str, content: bytes, owner: str) -> LoopbackContainer:
        """Put ``content`` at ``path`` before the container starts: mode 0600, owned by ``owner``.

        The owner's uid/gid are looked up in the image's own /etc/passwd (the official and the Debian images
        number their service users differently), so the service can read its secret and nobody else can,
        and the secret never appears in argv or the container's environment.
        """
        if not self._private_files:
            # A marker transfer: testcontainers runs transfers between create and start, which is exactly when
            # the image's users can be looked up and the files put in place.
            self.with_copy_into_container(b"", _PRIVATE_FILES_MARKER)
        self._private_files[path] = (content, owner)
        return self

    def with_tls_material(self, tls: TlsMaterial, owner: str, combined: bool = False) -> LoopbackContainer:
        """Hand the Vault-issued certificate, key and CA to the container (0600 files owned by ``owner``)."""
        for path, (content, user) in tls.files(owner, combined).items():
            self.with_private_file(path, content, user)
        self.tls = tls
        return self

    def _copy_private_files(self) -> None:
        if self._private_files and self._container is not None:
            put_private_files(self._container, self._private_files, what=f"{self.service} ({self.image})")

    def use_tls(self, tls: TlsMaterial) -> None:
        """Record a certificate just installed in the running container (a rotation): the endpoint reports it."""
        self.tls = tls

    def use_password(self, new: str) -> None:
        """Record the password the running server was just changed to: the endpoint reports it."""
        self.password = new

    def tls_info(self, port: int, protocol: str, strict: bool) -> TlsInfo | None:
        """What clients need to reach this container's TLS listener (None when TLS is off)."""
        if self.tls is None:
            return None
        return TlsInfo(port=self.host_port(port), protocol=protocol, serial=self.tls.serial,
                       ca_file=self.ctx.ca_file, strict=strict)

    def _transfer_into_container(self, transferable: Any, destination_in_container: str, mode: int) -> None:
        if destination_in_container == _PRIVATE_FILES_MARKER:
            self._copy_private_files()
            return
        super()._transfer_into_container(transferable, destination_in_container, mode)

    def expose_on_loopback(self, *ports: int) -> None:
        for port in ports:
            # docker-py accepts (host_ip, host_port); None lets Docker pick a free host port.
            self.ports[f"{port}/tcp"] = (LOOPBACK, None)  # type: ignore[assignment]

    def host_port(self, port: int) -> int:
        return int(self.get_exposed_port(port))

    def logs(self, tail: int = 200) -> str:
        wrapped = self._container
        if wrapped is None:
            return ""
        raw: bytes = wrapped.logs(tail=tail, stdout=True, stderr=True)
        return raw.decode(errors="replace")

    def container_ids(self) -> list[str]:
        return [self._container.id] if self._container is not None else []

    def network_ip(self) -> str:
        wrapped = self.get_wrapped_container()
        wrapped.reload()
        ip: str = wrapped.attrs["NetworkSettings"]["Networks"][self.ctx.network.name]["IPAddress"]
        return ip


def put_private_files(container: Container, files: dict[str, tuple[bytes, str]], what: str) -> None:
    """Write ``path -> (content, owner)`` into a container (created or running): mode 0600, owned by
    ``owner`` as numbered in the image's own /etc/passwd. Used at creation and when certificates rotate."""
    ids = _passwd(container)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        # Only the harness's own directory is created; other parents must exist in the image, and writing
        # a header for them would reset their owner and mode.
        dirs = sorted({p.rsplit("/", 1)[0] for p in files if p.startswith(f"{_OWN_DIR}/")})
        for directory in dirs:
            info = tarfile.TarInfo(directory.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, (content, owner) in files.items():
            if owner not in ids:
                raise ServiceStartError(f"{what}: user {owner!r} does not exist in the image")
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(content), 0o600
            info.uid, info.gid = ids[owner]
            tar.addfile(info, io.BytesIO(content))
    if not container.put_archive("/", buf.getvalue()):
        raise ServiceStartError(f"{what}: could not copy private files into the container")


def _passwd(container: Container) -> dict[str, tuple[int, int]]:
    stream, _ = container.get_archive("/etc/passwd")
    raw = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=raw) as tar:
        member = tar.extractfile("passwd")
        text = member.read().decode() if member is not None else ""
    ids = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            ids[fields[0]] = (int(fields[2]), int(fields[3]))
    return ids


#: One TLS listener of an endpoint: (alias shown in reports, published 127.0.0.1 port, protocol for the handshake:
#: ``tls``, ``postgres`` or ``mysql``).
TlsListener = tuple[str, int, str]


def main_tls_listener(endpoint: Any) -> list[TlsListener]:
    """The one TLS listener of an endpoint with ``alias`` and ``tls`` (none when TLS is off)."""
    tls: TlsInfo | None = endpoint.tls
    return [] if tls is None else [(str(endpoint.alias), tls.port, tls.protocol)]


def describe_endpoint(endpoint: Any) -> tuple[str, str]:
    """(plain address, TLS address) of a one-port endpoint, for the CLI's endpoint table."""
    tls: TlsInfo | None = endpoint.tls
    return f"127.0.0.1:{endpoint.port}", f"localhost:{tls.port}" if tls else ""


def endpoint_from_json(cls: type, data: Mapping[str, Any], **nested: Callable[[Any], Any]) -> Any:
    """Rebuild an endpoint dataclass from its ``asdict`` JSON: ``tls`` becomes :class:`TlsInfo` again, each
    ``nested`` field is converted by its function, keys the class does not know are ignored."""
    values = dict(data)
    if values.get("tls") is not None:
        values["tls"] = TlsInfo(**values["tls"])
    for key, convert in nested.items():
        values[key] = convert(values[key])
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


class Service(Protocol):
    """What the engine needs from a service: start it, stop it, describe it, show its logs, and record a
    certificate or password changed while it runs (rotations: the harness installs and reloads, the service
    object only keeps what its endpoint reports)."""

    name: str

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def endpoint(self) -> Any: ...

    def logs(self, tail: int = 200) -> str: ...

    def container_ids(self) -> list[str]: ...

    def use_tls(self, tls: TlsMaterial) -> None: ...

    def use_password(self, new: str) -> None: ...


@dataclass(frozen=True)
class MakeRequest:
    """What a service's container factory (``ServiceDriver.make``) gets: plain values, no harness objects.

    Attributes:
        image: the image reference to run.
        ctx: the run context (labels, network, ready timeout, CA file).
        secret: the service's KV document from Vault (credentials and TLS switches).
        tls: its Vault-issued certificate, or None when its KV says TLS is off.
        strict: its KV's ``tls_strict`` flag (serve TLS only).
        options: the harness settings the spec names in ``settings`` (``name -> value``).
        state_dir: the run's private state directory (0700).
    """

    image: str
    ctx: RunContext
    secret: Mapping[str, Any]
    tls: TlsMaterial | None
    strict: bool
    options: Mapping[str, Any]
    state_dir: Path


@dataclass(frozen=True)
class PublishedService:
    """A service's running compose containers as its driver's compose operations (``compose_endpoint``,
    ``compose_ready``) see them: keyed by compose service name, each answering its published 127.0.0.1
    port, network address, container name and the docker container itself (to run the service's tools in)."""

    names: tuple[str, ...]  # the spec's compose services, in order
    port: Callable[[str, int], int]
    ip: Callable[[str], str]
    container_name: Callable[[str], str]
    secret: Mapping[str, Any]
    serial: str
    ca_file: str
    admin_token: str = ""
    container: Callable[[str], Any] = field(default=lambda cname: None)
