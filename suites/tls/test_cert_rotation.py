"""Rotation: a new leaf from Vault is served after ``rotate_certificate`` without a restart, TLS clients
verify it, and a session opened before the rotation keeps working (the server still answers it as the same user).

What counts is what the listeners present on the wire: a verified handshake with every TLS listener of the
service before and after, and the served certificate compared with Vault's record of the new serial. Nothing
the rotation call returns about itself is taken as proof."""

from __future__ import annotations

import pytest
import requests
from cryptography import x509

from harness.plugin import service_params
from harness.trust.certs import rotate_certificate, targets
from stack import registry
from stack.base import client_tls_context
from stack.tlsprobe import handshake, int_to_serial

pytestmark = [pytest.mark.tls, pytest.mark.destructive]
#: every service that rotates live and opens sessions is covered without an edit here (Vault has its own case)
SESSIONS = [name for name in registry.with_capability("tls")
            if registry.get(name).driver.has("session") and registry.get(name).driver.has("reload_tls")]


def _served(harness_stack, name) -> dict[str, x509.Certificate]:
    """listener -> the leaf it presents, from a handshake verified against the root CA (chain and name)."""
    found = {}
    for target in targets({name: harness_stack.endpoint(name)}):
        result = handshake(target.host, target.port, target.protocol, client_tls_context(target.ca_file),
                           target.server_name)
        found[target.alias] = x509.load_der_x509_certificate(result.certificate_der)
    assert found, f"{name} has no TLS listener"
    return found


def _rotate(harness_stack, name):
    started = {c.id: c.attrs["State"]["StartedAt"] for c in harness_stack.containers(name)}
    before = _served(harness_stack, name)
    assert len({c.serial_number for c in before.values()}) == 1, f"{name}'s listeners serve different leaves"
    new = rotate_certificate(harness_stack, name).new_serial
    after = _served(harness_stack, name)
    assert set(after) == set(before)
    vault = harness_stack.endpoint("vault")
    record = requests.get(f"{vault.url}/v1/pki_int/cert/{new}", timeout=5)
    assert record.status_code == 200, f"Vault has no record of the new serial {new}"
    issued = x509.load_pem_x509_certificate(record.json()["data"]["certificate"].encode())
    for alias, cert in after.items():
        assert cert.serial_number != before[alias].serial_number, f"{alias} still serves the old certificate"
        assert cert == issued, (f"{alias} serves {int_to_serial(cert.serial_number)}, not the certificate Vault "
                                f"issued as {new}")
    for container in harness_stack.containers(name):  # reloaded, not restarted
        container.reload()
        assert container.attrs["State"]["StartedAt"] == started[container.id]
    return new


@pytest.mark.parametrize("name", service_params(SESSIONS))
def test_rotation_serves_the_new_leaf_and_keeps_open_sessions(harness_stack, request, name):
    request.getfixturevalue(f"{name}_service")  # skips naming the image where it is unavailable
    driver = registry.get(name).driver
    with driver.session(harness_stack.endpoint(name), tls=True) as before:
        user = before.whoami()
        _rotate(harness_stack, name)
        assert before.whoami() == user, f"{name}: a session opened before the rotation stopped working"
    with driver.session(harness_stack.endpoint(name), tls=True) as after:
        assert after.is_tls() is True


@pytest.mark.vault
def test_vault_rotation(harness_stack, vault_service):
    _rotate(harness_stack, "vault")
    assert harness_stack.endpoint("vault").client(tls=True).lookup_token()["data"]["policies"]
