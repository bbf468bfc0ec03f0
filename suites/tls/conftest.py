"""Shared by the TLS suites: the TLS listeners of the service a test is parametrized with."""

from __future__ import annotations

import pytest

from harness.trust.certs import targets


@pytest.fixture
def listeners(request, harness_stack, service):
    request.getfixturevalue(f"{service}_service")  # skips with the reason if the service is unavailable here
    found = targets({service: harness_stack.endpoint(service)})
    assert found, f"{service} has no TLS listener: Vault's tls_enabled flag or the TLS wiring is broken"
    return found
