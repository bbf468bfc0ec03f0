"""A service for the self-tests that is declared and never started: the smallest complete driver and spec.

Imported by the self-tests (``tests/`` is on ``sys.path`` under pytest's default import mode) and by the modules
they write for ``registry.register``."""

from __future__ import annotations

import dataclasses
from typing import Any

from stack.base import TlsInfo
from stack.driver import ServiceDriver
from stack.images import ImageSpec
from stack.service import ServiceSpec


@dataclasses.dataclass(frozen=True)
class FakeEndpoint:
    alias: str
    port: int
    tls: TlsInfo | None = None


class MinimalDriver(ServiceDriver[FakeEndpoint]):
    """Only what every driver must have; nothing optional (no reload_tls, no sessions, no compose files)."""

    endpoint_type = FakeEndpoint

    def make(self, req: Any) -> Any:
        raise AssertionError(f"{self.service} is a declared-only self-test service: it is never started")

    def compose_endpoint(self, pub: Any) -> FakeEndpoint:
        raise AssertionError(f"{self.service} is a declared-only self-test service: it has no compose entry")

    def login(self, endpoint: FakeEndpoint) -> bool:
        return True

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        return {"password": "x", "tls_enabled": False, "tls_strict": strict}


def fake_spec(name: str, **facts: Any) -> ServiceSpec:
    """A spec for ``name`` with :class:`MinimalDriver` and a declared-only image; ``facts`` override fields."""
    image = ImageSpec(service=name, official=f"example/{name}:1.0", debian=None, context=None, product=name,
                      official_version="1.0", debian_version=None)
    return ServiceSpec(**{"name": name, "description": f"needs the self-test service {name} (and Vault)",
                          "owner": name, "image": image, "driver": MinimalDriver(), "compose_services": (name,),
                          **facts})
