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
from typing import Any

from stack.images import ImageSpec


class MissingCapability(LookupError):
    """A service was asked for an operation its spec declares it does not have."""

    def __init__(self, service: str, capability: str) -> None:
        super().__init__(f"service {service!r} declares no {capability!r} capability (see its SPEC in stack/)")
        self.service = service
        self.capability = capability


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
        backup: the backup CLI captures and restores it (``backup_capture`` / ``backup_restore``).
        initial_secret: the KV document for the service: random credentials and TLS flags.
        login: the login probe on an endpoint (readiness, compose health, attach checks).
        change_password: change the application password live, or None.
        ops: further per-service operations by name (container factory, endpoint builder, TLS reload, version,
            backup capture/restore …), each looked up with :meth:`op` so a missing one names itself.
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
    initial_secret: Callable[[bool], dict[str, Any]] | None = None
    login: Callable[[Any], bool] | None = None
    change_password: Callable[[Any, str], None] | None = None
    ops: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    @property
    def image_optional(self) -> bool:
        return self.image.debian is None

    @property
    def marker(self) -> str:
        return self.name

    @property
    def fixture(self) -> str:
        return f"{self.name}_service"

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
