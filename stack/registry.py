"""The ordered list of service modules, imported lazily.

``MODULES`` maps each service name to the module in ``stack/`` that declares its :class:`~stack.service.ServiceSpec`
as ``SPEC``; the order is the order the harness lists, starts (within the dependency graph) and backs up
services. A user adds a service by writing its module and adding one line here (or, without editing this file,
by calling :func:`register` from a pytest plugin or conftest before the session starts).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from stack.images import TOOL_IMAGES, ImageSpec
from stack.service import ServiceSpec

#: service name -> module path. Vault first: it is the root of trust every other service depends on.
MODULES: dict[str, str] = {
    "vault": "stack.vault",
    "postgres": "stack.postgres",
    "mysql": "stack.mysql",
    "mongodb": "stack.mongodb",
    "redis": "stack.redis_cluster",
    "rabbitmq": "stack.rabbitmq",
}

_loaded: dict[str, ServiceSpec] = {}
_V = TypeVar("_V")


class UnknownService(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown service {name!r}; valid services: {', '.join(names())}")
        self.name = name


def names() -> tuple[str, ...]:
    """Every registered service, in order."""
    return tuple(MODULES)


def get(name: str) -> ServiceSpec:
    """The spec of one service (its module is imported on first use)."""
    if name not in MODULES:
        raise UnknownService(name)
    if name not in _loaded:
        spec = importlib.import_module(MODULES[name]).SPEC
        if not isinstance(spec, ServiceSpec) or spec.name != name:
            raise TypeError(f"{MODULES[name]}.SPEC must be a ServiceSpec named {name!r}")
        _loaded[name] = spec
    return _loaded[name]


def specs() -> list[ServiceSpec]:
    """Every spec, in order."""
    return [get(name) for name in MODULES]


def with_capability(flag: str) -> list[str]:
    """Names of the services whose spec sets the boolean capability ``flag`` (``tls``, ``backup`` …)."""
    return [spec.name for spec in specs() if getattr(spec, flag) is True]


def register(module: str, name: str | None = None) -> ServiceSpec:
    """Add a service from a module path (its ``SPEC``), after the built-in ones; returns its spec."""
    spec = importlib.import_module(module).SPEC
    if not isinstance(spec, ServiceSpec) or (name is not None and spec.name != name):
        raise TypeError(f"{module}.SPEC must be a ServiceSpec" + (f" named {name!r}" if name else ""))
    MODULES[spec.name] = module
    _loaded[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a service added with :func:`register` (self-tests)."""
    MODULES.pop(name, None)
    _loaded.pop(name, None)


class _View(Mapping[str, _V]):
    """A read-only view over every registered service's spec, read at each access so a service registered later is
    seen. The facts live in each service module's ``SPEC``."""

    def __init__(self, read: Callable[[ServiceSpec], _V]) -> None:
        self._read = read

    def __getitem__(self, name: str) -> _V:
        if name not in MODULES:
            raise KeyError(name)
        return self._read(get(name))

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(MODULES)


def view(read: Callable[[ServiceSpec], _V]) -> Mapping[str, _V]:
    """A read-only mapping ``service -> read(spec)`` over every registered service, read at each access (so a
    service registered later is seen)."""
    return _View(read)


#: service -> where its image comes from (each service module's ``SPEC.image``).
CATALOGUE: Mapping[str, ImageSpec] = view(lambda spec: spec.image)

#: service -> the ``VOLUME`` paths its pinned official image declares (each module's ``SPEC.official_volumes``).
#: Docker gives each declared path that nothing mounts an anonymous volume, which ``compose down --volumes``
#: does not remove: the compose file names every one, and the Debian images declare the same
#: (tests/test_compose_file.py checks the file, the Dockerfiles and, with Docker, the images).
OFFICIAL_VOLUMES: Mapping[str, tuple[str, ...]] = view(lambda spec: spec.official_volumes)


def image_spec(name: str) -> ImageSpec:
    """The image entry of a service or a tool image (:data:`stack.images.TOOL_IMAGES`; KeyError when neither)."""
    return TOOL_IMAGES[name] if name in TOOL_IMAGES else CATALOGUE[name]
