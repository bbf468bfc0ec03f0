"""Finding the Docker engine and configuring testcontainers for this harness.

testcontainers reads some of its configuration at import time and guesses its connection mode from
``/.dockerenv``; the harness sets what it needs explicitly instead of relying on the user's shell.
"""

from __future__ import annotations

import os
from functools import cache

import docker
import docker.errors
from docker import DockerClient

from harness.images import image_present
from stack.errors import DockerUnavailable

RYUK_IMAGE = "testcontainers/ryuk:0.8.1"
_FIX_HINT = (
    "start one: as root run `bash scripts/setup.sh` (installs Debian's docker.io and starts dockerd), "
    "or point DOCKER_HOST at a running engine"
)


@cache
def docker_client() -> DockerClient:
    """A docker-py client for the engine (DOCKER_HOST, else /var/run/docker.sock); pinged once.

    Raises:
        DockerUnavailable: nothing answered; the message says what was tried and how to fix it.
    """
    target = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(f"no Docker engine answers at {target} ({_short(exc)}); {_FIX_HINT}") from None
    return client


def _short(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "No such file or directory", "Permission denied"):
        if marker in text:
            return marker
    return text[:160]


def configure_testcontainers(client: DockerClient) -> None:
    """Point testcontainers at 127.0.0.1 and disable Ryuk unless its image is present locally.

    Must run before the first container is created. Explicit user settings win, except that Ryuk is only
    enabled when its image is available (pulling it fails without a registry).
    """
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    os.environ.setdefault("TC_HOST", "127.0.0.1")
    if testcontainers_config.connection_mode_override is None:
        testcontainers_config.connection_mode_override = ConnectionMode(os.environ["TESTCONTAINERS_CONNECTION_MODE"])
    if testcontainers_config.tc_host_override is None:
        testcontainers_config.tc_host_override = os.environ["TC_HOST"]
    ryuk_present = image_present(client, testcontainers_config.ryuk_image)
    if not ryuk_present:
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
        testcontainers_config.ryuk_disabled = True
