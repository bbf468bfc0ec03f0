"""What a service declares about itself: the one record the harness reads instead of naming services.

A service module in ``stack/`` (``stack/postgres.py`` …) ends with ``SPEC = ServiceSpec(...)``. Everything the
harness needs to know about the service is there: its name and marker, the user that owns its files in the
container, its images (official and Debian), its dependencies, its compose service names and the volumes its
official image declares, its capabilities, and the per-service operations the harness calls. A capability a
service lacks is declared as such (``None`` for an operation, ``False`` for a flag): the harness asks the spec
and fails loudly naming the missing capability; it never falls through to another service's behaviour.

:mod:`stack.registry` lists the modules in order and imports them lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack.backup_ops import BackupOps
from stack.base import RunContext, TlsMaterial
from stack.drill_ops import ServiceDrill
from stack.images import ImageSpec


class MissingCapability(LookupError):
    """A service was asked for an operation its spec declares it does not have."""

    def __init__(self, service: str, capability: str) -> None:
        super().__init__(f"service {service!r} declares no {capability!r} capability (see its SPEC in stack/)")
        self.service = service
        self.capability = capability


@dataclass(frozen=True)
class MakeRequest:
    """What a service's container factory (``ops["make"]``) gets: plain values, no harness objects.

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
    """A service's running compose containers as its compose operations (``ops["endpoint"]``,
    ``ops["compose_ready"]``) see them: keyed by compose service name, each answering its published 127.0.0.1
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


@dataclass(frozen=True)
class ServiceSpec:
    """One service's facts, capabilities and operations.

    Attributes:
        name: the service name (``--services``, the pytest marker, ``<name>_service`` fixture, Vault paths).
        description: the pytest marker's help text.
        owner: the user in the container that owns the service's private files.
        image: where its image comes from (official pinned tag and Debian-built equivalent).
        official_volumes: the ``VOLUME`` paths its official image declares (the compose file names each one).
        compose_services: its service names in ``compose/docker-compose.yml``.
        depends_on: services that must be ready before it starts (Vault, the root of trust, for all others).
        tls: it serves TLS with a Vault-issued certificate.
        combined_pem: its server reads certificate chain and key from one file.
        image_optional: no image may be obtainable (no Debian build): its tests skip naming the image.
        rotatable_password: it can change its application password live (``change_password``).
        backup: the backup CLI captures and restores it (with ``backup_ops``; Vault, the root of trust, is
            handled by the harness itself).
        backup_ops: its backup capture, restore and version (:class:`~stack.backup_ops.BackupOps`), or None.
        initial_secret: the KV document for the service: random credentials and TLS flags.
        login: the login probe on an endpoint (readiness, compose health, attach checks).
        change_password: change the application password live, or None.
        ops: further per-service operations by name (container factory, endpoint builder, TLS reload, version,
            backup capture/restore …), each looked up with :meth:`op` so a missing one names itself. Those the
            harness calls: ``make(MakeRequest)`` -> container; ``endpoint(PublishedService)`` -> endpoint of a
            compose stack; ``endpoint_from_json(dict)`` -> endpoint saved by ``up``; ``reload_tls(endpoint,
            container, timeout)`` -> how the running server took the certificate just installed;
            ``tls_targets(endpoint)`` -> ``(alias, port, protocol)`` of every TLS listener; ``compose_files(secret,
            options)`` -> the container's files besides TLS; ``compose_env(secret)`` -> compose variables;
            ``compose_ready(PublishedService, endpoint, timeout, log)`` -> bool, what ``compose up`` must do once
            the containers are healthy (the Redis cluster's creation), True when it did something;
            ``aliases(options)`` -> the network aliases of its test-stack containers (default: its name), the
            DNS names its certificate carries besides ``localhost``; ``backup_seed(endpoint, tag)`` -> the
            probe value the per-service backup round trip writes and finds again (``suites/backup/``).
        settings: names of the harness settings its container factory reads (passed as ``MakeRequest.options``).
        drills: the resilience drills it offers (:class:`~stack.drill_ops.ServiceDrill`; ``python -m harness drill``).
    """

    name: str
    description: str
    owner: str
    image: ImageSpec
    official_volumes: tuple[str, ...]
    compose_services: tuple[str, ...]
    depends_on: tuple[str, ...] = ("vault",)
    tls: bool = True
    combined_pem: bool = False
    rotatable_password: bool = False
    backup: bool = False
    backup_ops: BackupOps | None = None
    initial_secret: Callable[[bool], dict[str, Any]] | None = None
    login: Callable[[Any], bool] | None = None
    change_password: Callable[[Any, str], None] | None = None
    ops: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    settings: tuple[str, ...] = ()
    drills: tuple[ServiceDrill, ...] = ()

    @property
    def image_optional(self) -> bool:
        return self.image.debian is None

    @property
    def marker(self) -> str:
        return self.name

    @property
    def fixture(self) -> str:
        return f"{self.name}_service"

    def tls_files(self, tls: TlsMaterial) -> dict[str, tuple[bytes, str]]:
        """The TLS files its server reads, ``path -> (content, owner)`` (one combined PEM too where declared)."""
        return tls.files(self.owner, combined=self.combined_pem)

    def op(self, capability: str) -> Callable[..., Any]:
        """The named per-service operation, or :class:`MissingCapability` naming service and capability."""
        found: Callable[..., Any] | None
        if capability in ("initial_secret", "login", "change_password"):
            found = getattr(self, capability)
        else:
            found = self.ops.get(capability)
        if found is None:
            raise MissingCapability(self.name, capability)
        return found
