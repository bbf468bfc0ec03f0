"""Certificate status and rotation: what each TLS listener really serves, and replacing it live.

Status reads the certificate off the wire (a verified handshake against the exported root CA), so it reports
what clients get, not what a file on disk says. Rotation issues a new leaf with the service's own AppRole,
installs it as 0600 files owned by the service user and makes the server reload it (see each ``stack``
module's ``reload_tls``). Both work on every kind of running stack (:class:`~harness.stacks.running.RunningStack`): a
pytest session's, the compose stack and a stack left running by ``python -m harness up``. Rotation names what it
uses of one in :class:`RotatableStack` rather than importing the stacks' protocol: the stacks import this module
(the engine installs and reloads certificates with it), so it must not import them. This is the one
rotation path: the engine's swap of Vault's placeholder certificate and ``compose up``'s renewal of a kept
container's certificate use the same :func:`install_tls` and :func:`reload_tls`.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from docker.models.containers import Container

from harness.reports.redact import register_fields
from harness.trust.bootstrap import BootstrapResult, fetch_material
from harness.trust.pki import CaChain, write_service_pem
from stack import registry
from stack.base import TlsInfo, TlsMaterial, client_tls_context, put_private_files
from stack.errors import ConfigError, HarnessError
from stack.service import MissingCapability
from stack.tlsprobe import TlsProbeError, handshake, int_to_serial, serial_to_int, tls12_only

#: The user owning a service's key inside its container (each module's ``SPEC.owner``; the same name in the
#: official and Debian images).
OWNERS: Mapping[str, str] = registry.view(lambda spec: spec.owner)


@dataclass(frozen=True)
class TlsTarget:
    """One TLS listener to check: which service/container, where, how to upgrade, what it should serve."""

    service: str
    alias: str
    port: int
    protocol: str
    expected_serial: str
    ca_file: str
    server_name: str = "localhost"
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class CertStatus:
    """What a listener served: serial, expiry, negotiated version/cipher, the suite a TLS 1.2 client gets,
    and whether it is the Vault leaf."""

    target: TlsTarget
    served_serial: str
    not_after: dt.datetime
    days_left: float
    version: str
    cipher: str
    tls12_cipher: str

    @property
    def matches(self) -> bool:
        return serial_to_int(self.served_serial) == serial_to_int(self.target.expected_serial)

TLS_FIX = "set tls=True in its ServiceSpec and serve the Vault-issued certificate"


def targets(endpoints: Mapping[str, Any]) -> list[TlsTarget]:
    """Every TLS listener of the given endpoints, as each service's ``tls_targets`` lists them (each Redis node
    is its own listener). A service with TLS on but no ``tls_targets`` raises :class:`MissingCapability`."""
    found: list[TlsTarget] = []
    for name, ep in endpoints.items():
        tls: TlsInfo | None = getattr(ep, "tls", None)
        if tls is None:
            continue
        listeners = registry.get(name).driver.tls_targets(ep)
        found += [TlsTarget(name, alias, port, protocol, tls.serial, tls.ca_file, tls.server_name)
                  for alias, port, protocol in listeners]
    return found


def served(target: TlsTarget, now: dt.datetime | None = None) -> CertStatus:
    """Handshake with full verification (chain to the root CA and hostname) and describe the leaf; a second
    verified handshake capped at TLS 1.2 gives the TLS 1.2 suite the listener picks for a default client."""
    result = handshake(target.host, target.port, target.protocol, client_tls_context(target.ca_file),
                       target.server_name)
    tls12 = handshake(target.host, target.port, target.protocol, tls12_only(client_tls_context(target.ca_file)),
                      target.server_name)
    now = now or dt.datetime.now(dt.UTC)
    return CertStatus(target=target, served_serial=int_to_serial(result.serial), not_after=result.not_after,
                      days_left=(result.not_after - now).total_seconds() / 86400, version=result.version,
                      cipher=result.cipher, tls12_cipher=tls12.cipher)


def status(endpoints: Mapping[str, Any]) -> list[CertStatus | tuple[TlsTarget, str]]:
    """The served certificate of every listener, or (target, error) where the handshake failed."""
    rows: list[CertStatus | tuple[TlsTarget, str]] = []
    for target in targets(endpoints):
        try:
            rows.append(served(target))
        except (OSError, ssl.SSLError, TlsProbeError) as exc:
            rows.append((target, f"{type(exc).__name__}: {exc}"))
    return rows


def tls_row(row: CertStatus | tuple[TlsTarget, str], min_days_left: float) -> dict[str, Any]:
    """One listener as the run report's ``tls`` list holds it (the HTML report's TLS table)."""
    if isinstance(row, tuple):
        target, error = row
        return {"service": target.service, "listener": f"{target.alias} :{target.port}", "error": error}
    return {"service": row.target.service, "listener": f"{row.target.alias} :{row.target.port}",
            "serial": row.served_serial, "not_after": row.not_after.strftime("%Y-%m-%d %H:%M"),
            "days_left": round(row.days_left, 2), "min_days_left": min_days_left, "version": row.version,
            "cipher": row.cipher, "tls12_cipher": row.tls12_cipher, "matches": row.matches}


# ------------------------------------------------------------------------------ rotation, on any running stack


class RotatableStack(Protocol):
    """What a certificate rotation uses of a running stack: these members of
    :class:`harness.stacks.running.RunningStack`, which every kind of running stack implements (mypy proves there that a
    ``RunningStack`` is a ``RotatableStack``)."""

    @property
    def run_id(self) -> str: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def vault_bootstrap(self) -> BootstrapResult | None: ...
    @property
    def ca(self) -> CaChain | None: ...
    @property
    def ready_timeout(self) -> float: ...
    def endpoint(self, name: str) -> Any: ...
    def containers(self, name: str) -> list[Container]: ...
    def record_tls(self, name: str, tls: TlsMaterial) -> None: ...


def issue_tls(stack: RotatableStack, name: str) -> TlsMaterial:
    """A new leaf for ``name``, issued with the service's own AppRole from the stack's Vault, as the files its
    server reads (the one way a rotation gets its certificate)."""
    boot, ca = stack.vault_bootstrap, stack.ca
    if boot is None or ca is None:
        raise ConfigError(f"{name}: the stack's Vault is not bootstrapped (run {stack.run_id})")
    material = fetch_material(stack.endpoint("vault").url, name, boot.approles[name], boot.names[name])
    register_fields(material)  # the new private key
    write_service_pem(stack.state_dir / "pki" / name, material)
    return material.tls(ca)


def install_tls(name: str, tls: TlsMaterial, containers: Iterable[Container]) -> None:
    """Put a certificate into running containers of ``name`` as the files its server reads (0600, owned by the
    spec's ``owner``; chain and key in one file too where the spec says ``combined_pem``)."""
    files = registry.get(name).tls_files(tls)
    for container in containers:
        put_private_files(container, files, what=f"{name} ({container.name})")


def reload_tls(service: str, endpoint: Any, container: Container, timeout: float) -> str:
    """Make a running server use the certificate files just installed, without a restart, through its module's
    ``reload_tls``. ``endpoint`` carries the new serial (Vault's reload is asynchronous: it is awaited);
    ``container`` is one of the service's containers (RabbitMQ and Vault are reloaded from inside). An unknown
    service raises :class:`~stack.registry.UnknownService`; one without TLS, or without a ``reload_tls``
    operation, :class:`MissingCapability` naming it."""
    spec = registry.get(service)
    if not spec.tls:
        raise MissingCapability(service, "tls", TLS_FIX)
    return spec.driver.reload_tls(endpoint, container, timeout)


@dataclass(frozen=True)
class Rotated:
    """One certificate rotation: the serial served before, the new one, and how the server took it."""

    service: str
    old_serial: str
    new_serial: str
    how: str


def rotate_certificate(stack: RotatableStack, name: str) -> Rotated:
    """Rotate ``name``'s certificate on a running stack of any kind: issue a new leaf with its AppRole, install it
    in every container of the service, let the stack keep it, and make the server use it without a restart.

    The service's ``reload_tls`` capability is checked before anything is issued or installed, so a service that
    cannot take a new certificate live is refused with :class:`MissingCapability` and left as it was."""
    spec = registry.get(name)
    if not spec.tls:
        raise MissingCapability(name, "tls", TLS_FIX)
    if not spec.driver.has("reload_tls"):
        raise MissingCapability(name, "reload_tls")
    before: TlsInfo | None = getattr(stack.endpoint(name), "tls", None)
    if before is None:
        raise ConfigError(f"{name} is not running with TLS in run {stack.run_id}")
    containers = stack.containers(name)
    if not containers:
        raise HarnessError(f"no running {name} container in run {stack.run_id}")
    tls = issue_tls(stack, name)
    install_tls(name, tls, containers)
    stack.record_tls(name, tls)
    how = reload_tls(name, stack.endpoint(name), containers[0], stack.ready_timeout)
    return Rotated(name, before.serial, tls.serial, how)
