"""The typed driver every service module implements: what the harness and the cross-service suites ask a service.

A service module in ``stack/`` subclasses :class:`ServiceDriver` with its endpoint dataclass as the type parameter
and overrides what its server needs. Four methods are required (:meth:`~ServiceDriver.make`,
:meth:`~ServiceDriver.compose_endpoint`, :meth:`~ServiceDriver.login`, :meth:`~ServiceDriver.initial_secret`) and
one class attribute (``endpoint_type``); everything else has a default that fits the common shape (one port, one
TLS listener, an endpoint dataclass with ``port``, ``alias``, ``user`` and ``tls`` fields) or is an optional
capability that raises :class:`MissingCapability` until the service overrides it. Whether a service *has* a
capability is read from the class itself (:meth:`ServiceDriver.has`: the method is overridden), so a flag can never
disagree with the code behind it.

mypy strict checks every override's signature against this class; a misspelled method is caught by
:func:`unknown_methods` (a self-test runs it over every registered driver), so it cannot be silently ignored.

What the cross-service suites (dual mode, strict mode, certificate and password rotation, the compose attach suite)
ask a driver: :meth:`~ServiceDriver.session` opens a session whose :class:`Session` answers, *from the server*,
which user it is and whether it is TLS; :attr:`~ServiceDriver.password_refusal` and
:attr:`~ServiceDriver.plaintext_refusal` name the server's own error for a wrong password and for plaintext sent
to a TLS-only server; :meth:`~ServiceDriver.tls_only_evidence` is the server's own word that it serves TLS only.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from stack.base import (
    MakeRequest,
    PublishedService,
    Service,
    TlsListener,
    describe_endpoint,
    endpoint_from_json,
    main_tls_listener,
)

E = TypeVar("E")


class MissingCapability(LookupError):
    """A service was asked for something it does not have; the message says what to add, and where."""

    def __init__(self, service: str, capability: str, fix: str | None = None) -> None:
        fix = fix or f"override {capability}() in the service's ServiceDriver subclass (stack.driver.ServiceDriver)"
        super().__init__(f"service {service!r} has no {capability!r} capability; to add it: {fix}")
        self.service = service
        self.capability = capability


class Session(Protocol):
    """One open client session, answering from the server."""

    def whoami(self) -> str:
        """The user the server says this session belongs to (where the server cannot say, the user it accepted)."""

    def is_tls(self) -> bool:
        """Whether the server saw this session as TLS (the server's own record, not the client's setting)."""


@dataclass(frozen=True)
class Refusal:
    """A server's own refusal: the client exception it surfaces as and a regex its text must match (None: the
    exception type says it all); ``not_as`` are subclasses of ``error`` that would mean something else (a login
    refusal where a transport refusal is due)."""

    error: type[BaseException]
    match: str | None
    not_as: tuple[type[BaseException], ...] = ()


#: The capabilities a driver may leave out; :meth:`ServiceDriver.has` says whether it implements one.
OPTIONAL = ("reload_tls", "change_password", "session", "tls_only_evidence", "compose_ready")


class ServiceDriver(abc.ABC, Generic[E]):
    """One service's operations, typed by its endpoint ``E``.

    Attributes:
        endpoint_type: the endpoint dataclass (rebuilt from the JSON ``up`` saves by :meth:`endpoint_from_json`).
        password_refusal: the server's own error for a wrong password (the credentials and compose suites); None
            where the service has no password login.
        plaintext_refusal: the server's own error for a plaintext client of a strict (TLS-only) server.
        compose_password_file: the file in the compose container that carries the application password (the
            compose attach suite compares it with what Vault holds); None where no compose entry exists.
        service: the service name, set by the :class:`~stack.service.ServiceSpec` that holds the driver.
    """

    endpoint_type: ClassVar[type[Any]]
    password_refusal: ClassVar[Refusal | None] = None
    plaintext_refusal: ClassVar[Refusal | None] = None
    compose_password_file: ClassVar[str | None] = None
    service: str = "?"

    def bind(self, service: str) -> None:
        """Called by the :class:`~stack.service.ServiceSpec` holding the driver: names the service in errors and
        checks the class attributes every driver must declare."""
        if not hasattr(type(self), "endpoint_type"):
            raise TypeError(f"{type(self).__name__} (service {service!r}) must declare endpoint_type = <its endpoint "
                            "dataclass>: the endpoint `up` saves as JSON is rebuilt from it")
        self.service = service

    # ------------------------------------------------------------------------------------------------ required

    @abc.abstractmethod
    def make(self, req: MakeRequest) -> Service:
        """The test stack's container (or containers: a cluster): credentials from Vault's KV, certificate and
        strict flag as Vault says."""

    @abc.abstractmethod
    def compose_endpoint(self, pub: PublishedService) -> E:
        """The endpoint of the compose stack's containers (published ports, Vault's credentials)."""

    @abc.abstractmethod
    def login(self, endpoint: E) -> bool:
        """The readiness probe: a real login with the endpoint's credentials (also compose health, attach)."""

    @abc.abstractmethod
    def initial_secret(self, strict: bool) -> dict[str, Any]:
        """The KV document Vault holds for the service: random credentials and TLS switches (JSON booleans)."""

    # -------------------------------------------------------------------------------- defaults (override if needed)

    def endpoint_from_json(self, data: Mapping[str, Any]) -> E:
        """The endpoint ``up`` saved as JSON (``dataclasses.asdict``)."""
        found: E = endpoint_from_json(self.endpoint_type, data)
        return found

    def describe(self, endpoint: E) -> tuple[str, str]:
        """(plain address, TLS address) for the CLI's endpoint table; default: one port and one TLS listener."""
        return describe_endpoint(endpoint)

    def tls_targets(self, endpoint: E) -> list[TlsListener]:
        """``(alias, port, protocol)`` of every TLS listener; default: the endpoint's one ``tls`` listener."""
        return main_tls_listener(endpoint)

    def login_user(self, endpoint: E) -> str:
        """The user a password login names (default: the endpoint's ``user``)."""
        return str(getattr(endpoint, "user"))  # noqa: B009 - the common shape; drivers without a user override

    def aliases(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The network aliases of its test-stack containers (the names its certificate carries besides
        ``localhost``); default: the service name."""
        return (self.service,)

    def compose_files(self, secret: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, bytes]:
        """The compose container's files besides TLS (``destination -> content``); default: none."""
        return {}

    def compose_env(self, secret: Mapping[str, Any]) -> dict[str, str]:
        """Variables its compose entry interpolates from Vault's KV; default: none."""
        return {}

    # ------------------------------------------------------------------------------------- optional capabilities

    def compose_ready(self, pub: PublishedService, endpoint: E, timeout: float, log: Callable[[str], None]) -> bool:
        """What ``compose up`` must do once the containers are healthy (a cluster's creation); True when it did
        something. Without it nothing is done (:meth:`has` says False)."""
        return False

    def reload_tls(self, endpoint: E, container: Any, timeout: float) -> str:
        """Make the running server take the certificate just installed; returns how (``live: …``)."""
        raise MissingCapability(self.service, "reload_tls")

    def change_password(self, endpoint: E, new: str) -> None:
        """Change the application password live."""
        raise MissingCapability(self.service, "change_password")

    def session(self, endpoint: E, *, tls: bool | None = None, user: str | None = None,
                password: str | None = None) -> AbstractContextManager[Session]:
        """A session as ``user`` with ``password`` (default: the endpoint's), over TLS (verified against the root
        CA, checking the name) or plain (``tls=None``: TLS where the endpoint is strict). Connects and
        authenticates on entry: a refused login raises the server's error (:attr:`password_refusal`)."""
        raise MissingCapability(self.service, "session")

    def tls_only_evidence(self, endpoint: E) -> str:
        """The server's own word that it serves TLS only (asked over TLS); raises AssertionError if it says it
        still serves plaintext."""
        raise MissingCapability(self.service, "tls_only_evidence")

    # ---------------------------------------------------------------------------------------------- reflection

    def has(self, capability: str) -> bool:
        """Whether this driver implements an optional capability (its class overrides the method)."""
        if capability not in OPTIONAL:
            raise ValueError(f"{capability!r} is not an optional capability; those are {', '.join(OPTIONAL)}")
        return getattr(type(self), capability) is not getattr(ServiceDriver, capability)


def unknown_methods(cls: type[ServiceDriver[Any]]) -> list[str]:
    """Public methods a driver class defines that :class:`ServiceDriver` does not know: a misspelled override
    (``compose_env`` written ``compose_envs``) would otherwise be silently ignored. Helpers a driver keeps for
    itself start with ``_``."""
    known = set(dir(ServiceDriver)) | set(ServiceDriver.__annotations__)
    found = []
    for klass in cls.__mro__:
        if klass is ServiceDriver or not issubclass(klass, ServiceDriver):
            continue
        found += [name for name, value in vars(klass).items()
                  if not name.startswith("_") and callable(value) and name not in known]
    return sorted(set(found))

