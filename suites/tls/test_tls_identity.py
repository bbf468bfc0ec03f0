"""Every TLS listener, every service: the certificate served is the one Vault issued to the harness, it is
verified by name against the exported root CA, other names and other CAs are refused, and the server refuses
TLS 1.0/1.1 from a client proven to offer them (with a refusal alert, while a modern handshake succeeds).

Each check has a counterpart that must succeed on the same path (the correct name, the right CA, TLS 1.2+),
so a listener that is not there, not TLS, or serving a self-generated certificate fails here.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import DNSName, IPAddress, SubjectAlternativeName

from harness.plugin import service_params
from harness.trust.certs import served
from stack import registry
from stack.selfsigned import self_signed
from stack.tlsprobe import LEGACY_VERSIONS, check_legacy, client_speaks, handshake, serial_to_int

SERVICES = registry.with_capability("tls")
pytestmark = pytest.mark.tls


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> Path:
    cert, _ = self_signed("not-the-harness-ca.invalid")
    path = tmp_path_factory.mktemp("other-ca") / "ca.pem"
    path.write_text(cert)
    return path


@pytest.mark.parametrize("service", service_params(SERVICES))
def test_served_certificate_is_the_vault_issued_one(listeners, harness_stack, service):
    for target in listeners:
        status = served(target)  # a verified handshake: chain to the exported root, hostname checked
        assert status.matches, (f"{target.alias} serves serial {status.served_serial}, but Vault issued "
                                f"{target.expected_serial}: the server is not using its Vault certificate")
        assert status.version in ("TLSv1.2", "TLSv1.3")
        sans = status_sans(target)
        assert "localhost" in sans and "127.0.0.1" in sans


def status_sans(target) -> set[str]:
    result = handshake(target.host, target.port, target.protocol, ssl.create_default_context(cafile=target.ca_file),
                       target.server_name)
    ext = result.certificate.extensions.get_extension_for_class(SubjectAlternativeName).value
    return {*ext.get_values_for_type(DNSName), *(str(ip) for ip in ext.get_values_for_type(IPAddress))}


@pytest.mark.parametrize("service", service_params(SERVICES))
def test_wrong_hostname_is_refused(listeners, service):
    for target in listeners:
        context = ssl.create_default_context(cafile=target.ca_file)
        with pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname mismatch"):
            handshake(target.host, target.port, target.protocol, context, "not-in-the-certificate.invalid")


@pytest.mark.parametrize("service", service_params(SERVICES))
def test_other_ca_is_refused(listeners, other_ca, service):
    for target in listeners:
        context = ssl.create_default_context(cafile=str(other_ca))
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            handshake(target.host, target.port, target.protocol, context, target.server_name)


@pytest.mark.parametrize("version", sorted(LEGACY_VERSIONS))
@pytest.mark.parametrize("service", service_params(SERVICES))
def test_legacy_tls_versions_are_refused(listeners, service, version):
    # Proof the client really offers this version: a local server pinned to it completes the handshake.
    assert client_speaks(version) == version
    for target in listeners:
        # Refused only with proof: a modern handshake to the same listener succeeds in the same check and the
        # legacy offer ends in a refusal alert (a plaintext listener or a reset is not a refusal).
        verdict = check_legacy(target.host, target.port, target.protocol, version)
        assert verdict.refused, f"{target.alias}: {verdict}"


@pytest.mark.parametrize("service", service_params(SERVICES))
def test_expected_serial_is_what_vault_recorded(listeners, harness_stack, service):
    """The serial the harness compares against is the one Vault itself lists as issued."""
    vault = harness_stack.endpoint("vault").client()
    for target in listeners:
        data = vault.read(f"pki_int/cert/{target.expected_serial}")
        assert data is not None, f"Vault has no record of serial {target.expected_serial}"
        pem = data["data"]["certificate"]
        assert x509.load_pem_x509_certificate(pem.encode()).serial_number == serial_to_int(target.expected_serial)
