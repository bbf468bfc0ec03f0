"""PKI: Vault's root -> intermediate -> every service's leaf verifies with `cryptography`, names, keys and
lifetimes are as configured, the roles refuse names outside them, and the CRL is served and signed."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl

import hvac.exceptions
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.plugin import service_params
from harness.stacks.engine import network_aliases
from harness.trust.bootstrap import approle_login, service_names, ttl_seconds
from harness.trust.certs import targets
from stack import registry
from stack.tlsprobe import handshake, int_to_serial

# No module-wide `vault` marker: a case about another service's leaf or PKI role carries that service's marker
# (service_params) and runs under `-m <service>`; the tests about Vault alone carry `vault` themselves.
SERVICES = [name for name in registry.with_capability("tls") if name != "vault"]


def _load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """Raises if ``cert`` was not signed by ``issuer``'s key (RSA PKCS#1 v1.5 or ECDSA)."""
    key = issuer.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    else:
        raise AssertionError(f"unexpected issuer key type {type(key)}")
    assert cert.issuer == issuer.subject


def _cn(name: x509.Name) -> str:
    return name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


@pytest.fixture
def ca(harness_stack):
    return _load(harness_stack.ca.root), _load(harness_stack.ca.intermediate)


def _check_key(cert, settings):
    key = cert.public_key()
    if settings.pki_key_type == "rsa":
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == settings.pki_key_bits
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)


@pytest.mark.vault
def test_root_and_intermediate(ca, harness_stack):
    root, intermediate = ca
    settings = harness_stack.settings
    now = dt.datetime.now(dt.UTC)
    _verify_signed_by(root, root)
    _verify_signed_by(intermediate, root)
    for cert, cn in ((root, settings.pki_root_common_name), (intermediate, settings.pki_intermediate_common_name)):
        assert _cn(cert.subject) == cn
        assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
        _check_key(cert, settings)
    assert _cn(intermediate.issuer) == settings.pki_root_common_name
    assert intermediate.not_valid_after_utc <= root.not_valid_after_utc


def _vault_ca(vault_service) -> tuple[str, str]:
    """Root and intermediate as Vault's API serves them (unauthenticated endpoints), not the harness's export."""
    root = requests.get(f"{vault_service.url}/v1/pki/ca/pem", timeout=5)
    intermediate = requests.get(f"{vault_service.url}/v1/pki_int/ca/pem", timeout=5)
    assert root.status_code == intermediate.status_code == 200, (root.status_code, intermediate.status_code)
    return root.text, intermediate.text


@pytest.mark.vault
def test_exported_ca_is_the_one_vault_serves(vault_service, ca):
    root, intermediate = ca
    served_root, served_intermediate = _vault_ca(vault_service)
    assert _load(served_intermediate) == intermediate
    assert _load(served_root) == root
    _verify_signed_by(_load(served_intermediate), _load(served_root))


@pytest.mark.tls
@pytest.mark.parametrize("name", service_params(["vault", *SERVICES]))
def test_served_certificates_chain_to_the_ca_vault_serves(name, harness_stack, vault_service, request):
    """What every TLS listener of the service presents: a handshake that trusts only the root fetched from
    Vault's API verifies (chain and name), the leaf is signed by the intermediate from Vault's API, and it is
    the very certificate Vault has on record for its serial."""
    endpoint = request.getfixturevalue(f"{name}_service")
    root_pem, intermediate_pem = _vault_ca(vault_service)
    intermediate = _load(intermediate_pem)
    context = ssl.create_default_context(cadata=root_pem)  # nothing from the harness's files
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    listeners = targets({name: endpoint})
    assert listeners, f"{name} has no TLS listener"
    for target in listeners:
        served = handshake(target.host, target.port, target.protocol, context, target.server_name)
        leaf = x509.load_der_x509_certificate(served.certificate_der)
        _verify_signed_by(leaf, intermediate)
        record = requests.get(f"{vault_service.url}/v1/pki_int/cert/{int_to_serial(leaf.serial_number)}",
                              timeout=5)
        assert record.status_code == 200, f"Vault has no record of {target.alias}'s serial: {record.status_code}"
        assert _load(record.json()["data"]["certificate"]) == leaf, f"{target.alias} serves a certificate Vault " \
            "did not issue under that serial"


@pytest.mark.parametrize("name", service_params(SERVICES))
def test_service_leaf(name, ca, harness_stack, request):
    request.getfixturevalue(f"{name}_service")
    root, intermediate = ca
    settings = harness_stack.settings
    pem_dir = harness_stack.state_dir / "pki" / name
    leaf = _load((pem_dir / "cert.pem").read_text())
    _verify_signed_by(leaf, intermediate)
    _verify_signed_by(intermediate, root)
    now = dt.datetime.now(dt.UTC)
    assert leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc
    max_ttl = dt.timedelta(seconds=ttl_seconds(settings.pki_leaf_max_ttl))
    assert leaf.not_valid_after_utc <= now + max_ttl, "leaf outlives the role's max TTL"
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    _check_key(leaf, settings)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    aliases = network_aliases(settings).get(name, ())
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(service_names(name, aliases))
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    crl_points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name[0].value for p in crl_points] == ["http://vault:8200/v1/pki_int/crl"]
    assert (pem_dir / "key.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name", service_params(SERVICES))
def test_role_refuses_names_outside_it(name, harness_stack, vault_service, request):
    request.getfixturevalue(f"{name}_service")
    creds = harness_stack.vault_bootstrap.approles[name]
    client = approle_login(vault_service.url, creds["role_id"], creds["secret_id"])
    own = harness_stack.vault_bootstrap.names[name][0]  # the role's first name, as bootstrapped
    for bad in ("evil.example.com", f"sub.{own}", "*.localhost"):
        with pytest.raises(hvac.exceptions.InvalidRequest, match=f"common name {re.escape(bad)} not allowed"):
            client.write_data(f"pki_int/issue/{name}", data={"common_name": bad})
    # and the role does issue its own name, so the refusals above are about the name
    ok = client.write_data(f"pki_int/issue/{name}", data={"common_name": own, "ttl": "1h"})
    assert ok["data"]["serial_number"]


@pytest.mark.vault
def test_crl_is_served_and_signed_by_the_intermediate(vault_service, ca):
    _, intermediate = ca
    resp = requests.get(f"{vault_service.url}/v1/pki_int/crl/pem", timeout=5)
    assert resp.status_code == 200
    crl = x509.load_pem_x509_crl(resp.content)
    assert crl.issuer == intermediate.subject
    assert crl.is_signature_valid(intermediate.public_key())
    urls = vault_service.client().read("pki_int/config/urls")["data"]
    assert urls["crl_distribution_points"] == [f"{vault_service.internal_url}/v1/pki_int/crl"]
