"""What every running stack offers: the one protocol the plugin, certificates, credentials and backup use.

Three kinds of stack run services, and each implements :class:`RunningStack` directly (each module ends with the
function that makes mypy prove it; this module imports none of them):

* :class:`harness.stacks.engine.Stack`, the test stack the engine starts (the pytest session's,
  ``backup restore --fresh``);
* :class:`harness.stacks.attach.AttachedStack`, the long-lived compose stack (attach mode, ``certs --stack compose``);
* :class:`harness.stacks.kept.KeptStack`, a stack left running by ``python -m harness up``, found again through its
  state file and container labels (``certs``, ``backup create``/``restore``).

A stack answers for its services (endpoints, containers, logs, the version they must report) and keeps its own
record of what changes while they run: a certificate rotated by :func:`harness.trust.certs.rotate_certificate`, a
password changed by :func:`harness.trust.credentials.rotate_password`, Vault's keys and tokens after a backup restore.
The operations themselves (issuing, installing, reloading, changing a password, capture and restore) are done
once, outside the stacks, through each service's ``SPEC``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stack import registry

if TYPE_CHECKING:
    from docker.models.containers import Container

    from harness.trust.bootstrap import BootstrapResult
    from harness.trust.pki import CaChain
    from stack.base import TlsMaterial

#: A service's endpoint: the frozen dataclass its module defines (``PostgresEndpoint`` …). Its type depends on the
#: service, so the protocol cannot name it; the attributes the harness reads across services are ``tls``
#: (:class:`~stack.base.TlsInfo` or None) and, for services with a password, ``password``.
Endpoint = Any


class RunningStack(Protocol):
    """A stack whose services run (see the module docstring for the three kinds)."""

    @property
    def run_id(self) -> str:
        """The run's id (``compose:<project>`` for the compose stack)."""

    @property
    def state_dir(self) -> Path:
        """The run's private state directory (0700): Vault's keys, bootstrap record, exported PKI."""

    @property
    def vault_bootstrap(self) -> BootstrapResult | None:
        """Vault's bootstrap record (admin token, AppRoles, certificate names), once Vault is bootstrapped."""

    @property
    def ca(self) -> CaChain | None:
        """Vault's CA chain (root and intermediate), once exported."""

    @property
    def ready_timeout(self) -> float:
        """How long a wait on one of its services may take (a certificate reload, a restart)."""

    def running(self) -> list[str]:
        """The services that run in it, in start order."""

    def unavailable_reason(self, name: str) -> str | None:
        """Why a service is not part of it (its image is missing here), or None."""

    def endpoint(self, name: str) -> Endpoint:
        """The service's endpoint as it is now (current credentials and certificate serial)."""

    def containers(self, name: str) -> list[Container]:
        """The service's running containers (every node of a cluster)."""

    def logs(self, name: str, tail: int = 200) -> str:
        """The last ``tail`` lines of the service's container logs."""

    def expected_version(self, name: str) -> str | None:
        """The version prefix the service's server must report, or None for an override image."""

    def record_tls(self, name: str, tls: TlsMaterial) -> None:
        """A new certificate was installed in the service's containers: keep it (its endpoint reports the new
        serial; the compose stack also writes it to ``certs/compose/``)."""

    def record_password(self, name: str, new: str) -> None:
        """The running server's password was changed to ``new``: keep it (its endpoint reports it; the compose
        stack also writes it to ``certs/compose/`` and the running containers' copies)."""

    def adopt_vault(self, init: dict[str, Any], bootstrap: dict[str, Any]) -> None:
        """After a Vault restore: the backup's unseal keys, admin token and AppRole credentials are current."""


def containers_logs(containers: list[Container], tail: int) -> str:
    """The last ``tail`` lines of each container's output, each under a ``--- <name> ---`` header."""
    parts = []
    for container in containers:
        raw: bytes = container.logs(tail=tail, stdout=True, stderr=True)
        parts.append(f"--- {container.name} ---\n{raw.decode(errors='replace')}")
    return "\n".join(parts)


def recorded_version(name: str, record: Mapping[str, Any], source_key: str, version_key: str) -> str | None:
    """The version prefix recorded with a running image (its release line's), or, for a record written before
    release lines existed, the one its ``source`` implies on the default line."""
    if version_key in record:
        return None if record[version_key] is None else str(record[version_key])
    return expected_version(name, record.get(source_key))


def expected_version(name: str, image_source: str | None) -> str | None:
    """The version prefix a service's server must report for an image of ``image_source`` (``official`` or
    ``debian``; None for an override image or one not resolved)."""
    if image_source not in ("official", "debian"):
        return None
    spec = registry.get(name).image
    return spec.official_version if image_source == "official" else spec.debian_version


if TYPE_CHECKING:  # mypy proves here that every running stack offers what certificate and password rotation use
    from harness.trust.certs import RotatableStack
    from harness.trust.credentials import PasswordStack

    def _is_rotatable(stack: RunningStack) -> tuple[RotatableStack, PasswordStack]:
        return stack, stack
