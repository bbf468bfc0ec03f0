"""What a service declares about itself: the one record the harness reads instead of naming services.

A service module in ``stack/`` (``stack/postgres.py`` …) ends with ``SPEC = ServiceSpec(...)``: its facts as named
fields (name and marker, the user that owns its files in the container, its images, dependencies, compose service
names, the volumes its official image declares, its TLS 1.2 server-order option, the harness settings it reads,
its drills and backup operations) and its typed :class:`~stack.driver.ServiceDriver`, the operations the harness
calls. Capabilities that are code (a live password change, a TLS reload, sessions) are read from the driver
(:meth:`~stack.driver.ServiceDriver.has`), so a flag cannot claim what the code does not do. A capability a service
lacks raises :class:`~stack.driver.MissingCapability` naming service and method; the harness never falls through
to another service's behaviour.

:mod:`stack.registry` lists the modules in order and imports them lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stack.backup_ops import BackupOps
from stack.base import MakeRequest, PublishedService, TlsMaterial
from stack.drill_ops import ServiceDrill
from stack.driver import MissingCapability, ServiceDriver
from stack.images import ImageSpec

__all__ = ["MakeRequest", "MissingCapability", "PublishedService", "ServiceDriver", "ServiceSpec"]


@dataclass(frozen=True)
class ServiceSpec:
    """One service's facts and its driver.

    Attributes:
        name: the service name (``--services``, the pytest marker, ``<name>_service`` fixture, Vault paths).
        description: the pytest marker's help text.
        owner: the user in the container that owns the service's private files.
        image: where its image comes from (official pinned tag and Debian-built equivalent, release lines).
        driver: its operations (:class:`~stack.driver.ServiceDriver` subclass instance).
        official_volumes: the ``VOLUME`` paths its official image declares (the compose file names each one).
        compose_services: its service names in ``compose/docker-compose.yml`` (empty: not in the compose stack).
        depends_on: services that must be ready before it starts (Vault, the root of trust, for all others).
        tls: it serves TLS with a Vault-issued certificate.
        tls12_server_order: how its server makes its own TLS 1.2 cipher order win (the option, for messages), or
            "" where it cannot (the cipher-policy suite checks the order only where this is set).
        combined_pem: its server reads certificate chain and key from one file.
        backup: the backup CLI captures and restores it (with ``backup_ops``; Vault, the root of trust, is
            handled by the harness itself).
        backup_ops: its backup capture, restore and version (:class:`~stack.backup_ops.BackupOps`), or None.
        settings: names of the harness settings its container factory reads (passed as ``MakeRequest.options``).
        drills: the resilience drills it offers (:class:`~stack.drill_ops.ServiceDrill`; ``python -m harness drill``).
    """

    name: str
    description: str
    owner: str
    image: ImageSpec
    driver: ServiceDriver[Any]
    official_volumes: tuple[str, ...] = ()
    compose_services: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ("vault",)
    tls: bool = True
    tls12_server_order: str = ""
    combined_pem: bool = False
    backup: bool = False
    backup_ops: BackupOps | None = None
    settings: tuple[str, ...] = ()
    drills: tuple[ServiceDrill, ...] = ()

    def __post_init__(self) -> None:
        self.driver.bind(self.name)

    @property
    def image_optional(self) -> bool:
        return self.image.debian is None

    @property
    def rotatable_password(self) -> bool:
        """It can change its application password live (its driver implements ``change_password``)."""
        return self.driver.has("change_password")

    @property
    def marker(self) -> str:
        return self.name

    @property
    def fixture(self) -> str:
        return f"{self.name}_service"

    def tls_files(self, tls: TlsMaterial) -> dict[str, tuple[bytes, str]]:
        """The TLS files its server reads, ``path -> (content, owner)`` (one combined PEM too where declared)."""
        return tls.files(self.owner, combined=self.combined_pem)
