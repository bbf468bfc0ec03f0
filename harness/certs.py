"""Certificate status and rotation: what each TLS listener really serves, and replacing it live.

Status reads the certificate off the wire (a verified handshake against the exported root CA), so it reports
what clients get, not what a file on disk says. Rotation issues a new leaf with the service's own AppRole,
installs it as 0600 files owned by the service user and makes the server reload it (see each ``stack``
module's ``reload_tls``). Both work on a pytest session's :class:`~harness.engine.Stack` and on a stack left
running by ``python -m harness up`` (found through its state file and container labels).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path
from typing import Any

from harness.pki import write_service_pem
from harness.vault_bootstrap import BootstrapResult, ServiceMaterial, fetch_material
from stack import registry
from stack.base import LABEL_RUN_ID, LABEL_SERVICE, TlsInfo, client_tls_context, put_private_files
from stack.errors import ConfigError, HarnessError
from stack.files import write_file
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


def targets(endpoints: Mapping[str, Any]) -> list[TlsTarget]:
    """Every TLS listener of the given endpoints, as each service's ``tls_targets`` lists them (each Redis node
    is its own listener). A service with TLS on but no ``tls_targets`` raises :class:`MissingCapability`."""
    found: list[TlsTarget] = []
    for name, ep in endpoints.items():
        tls: TlsInfo | None = getattr(ep, "tls", None)
        if tls is None:
            continue
        listeners = registry.get(name).op("tls_targets")(ep)
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


# ------------------------------------------------------------------------------ a stack left by `up`


def endpoint_from_json(service: str, data: Mapping[str, Any]) -> Any:
    """Rebuild a service endpoint from the JSON in a stack state file (its module's ``endpoint_from_json``)."""
    return registry.get(service).op("endpoint_from_json")(data)


@dataclass
class UpStack:
    """A stack left running by ``python -m harness up``: its state file and endpoints."""

    state_file: Path
    data: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @property
    def state_dir(self) -> Path:
        return self.state_file.parent

    def endpoints(self) -> dict[str, Any]:
        return {name: endpoint_from_json(name, ep) for name, ep in self.data["endpoints"].items()}

    def save(self, endpoints: Mapping[str, Any]) -> None:
        self.data["endpoints"] = {name: asdict(ep) for name, ep in endpoints.items()
                                  if is_dataclass(ep) and not isinstance(ep, type)}
        write_file(self.state_file, json.dumps(self.data, indent=2, default=str))


def find_up_stack(state_root: Path, live_run_ids: Iterable[str]) -> UpStack:
    """The newest ``up`` stack whose containers still exist."""
    live = set(live_run_ids)
    candidates = sorted((state_root / "runs").glob("*/stack.json"), reverse=True)
    for path in candidates:
        data = json.loads(path.read_text())
        if data.get("run_id") in live:
            return UpStack(path, data)
    raise ConfigError(f"no running stack started by `python -m harness up` (looked in {state_root / 'runs'}); "
                      "start one with: python -m harness up")


def rotate_up_stack(stack: UpStack, client: Any, service: str) -> tuple[str, str, str]:
    """Rotate one service's certificate on an ``up`` stack: (old serial, new serial, how applied)."""
    endpoints = stack.endpoints()
    ep = endpoints.get(service)
    if ep is None or ep.tls is None:
        raise ConfigError(f"{service} is not running with TLS in run {stack.run_id}")
    bootstrap = BootstrapResult.load(stack.state_dir / "vault-bootstrap.json")
    material: ServiceMaterial = fetch_material(endpoints["vault"].url, service, bootstrap.approles[service],
                                               bootstrap.names[service])
    root = Path(ep.tls.ca_file).read_text()
    tls = material.tls(root, root)
    containers = client.containers.list(filters={"label": [f"{LABEL_RUN_ID}={stack.run_id}",
                                                           f"{LABEL_SERVICE}={service}"]})
    if not containers:
        raise HarnessError(f"no running {service} container in run {stack.run_id}")
    for container in containers:
        put_private_files(container, registry.get(service).tls_files(tls), what=service)
    write_service_pem(stack.state_dir / "pki" / service, material)
    new_ep = _with_serial(ep, material.serial)
    how = reload_server(service, new_ep, containers[0], 60)
    endpoints[service] = new_ep
    stack.save(endpoints)
    return ep.tls.serial, material.serial, how


def reload_server(service: str, endpoint: Any, container: Any, timeout: float) -> str:
    """Make a running server use the certificate files just installed, without a restart, through its module's
    ``reload_tls``. ``endpoint`` carries the new serial (Vault's reload is asynchronous: it is awaited);
    ``container`` is one of the service's containers (RabbitMQ and Vault are reloaded from inside). An unknown
    service raises :class:`~stack.registry.UnknownService`; one without TLS :class:`MissingCapability`."""
    spec = registry.get(service)
    if not spec.tls:
        raise MissingCapability(service, "tls")
    reload: Any = spec.op("reload_tls")
    return str(reload(endpoint, container, timeout))


def _with_serial(ep: Any, serial: str) -> Any:
    return replace(ep, tls=replace(ep.tls, serial=serial))
