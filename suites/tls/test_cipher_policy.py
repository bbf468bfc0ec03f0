"""The TLS 1.2 cipher policy (``stack/tls_policy.py``) on every TLS listener of every service: offered every TLS 1.2
suite this machine's OpenSSL can offer alone (about 60: CBC, SHA-1, RSA key exchange, DHE, anonymous, CAMELLIA,
ARIA, CCM, ...), one handshake per suite, a listener accepts at least one and only policy suites, and every other
offer ends in a refusal alert; a default client still gets TLS 1.3. Where the server can enforce its own order,
its order wins.

The sweep is :func:`stack.tlsprobe.sweep_tls12`, judged by :func:`stack.tlsprobe.tls12_policy_problems`: each
ClientHello is checked in memory to carry exactly the one suite, and a local control server proves this client
completes TLS 1.2 with each suite of :data:`~stack.tls_policy.WEAK_TLS12`. Plaintext, resets and local errors never
count as refusals, and a listener that accepts nothing proves nothing (it fails).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from harness.plugin import service_params
from harness.trust.certs import served
from stack import registry
from stack.tls_policy import TLS12_CIPHERS, WEAK_TLS12
from stack.tlsprobe import Offer, client_offers, server_picks, sweep_tls12, tls12_policy_problems

SERVICES = registry.with_capability("tls")
pytestmark = pytest.mark.tls


@pytest.fixture(scope="module")
def client_offers_weak_suites() -> None:
    """Proof this client really offers each weak suite: a local server accepting only it completes TLS 1.2."""
    for cipher in WEAK_TLS12:
        result = client_offers(Offer("TLSv1.2", cipher))
        assert (result.version, result.cipher) == ("TLSv1.2", cipher)


@pytest.mark.parametrize("service", service_params(SERVICES))
def test_only_policy_suites_are_accepted_in_tls12(listeners, client_offers_weak_suites, service):
    for target in listeners:
        sweep = sweep_tls12(target.host, target.port, target.protocol)
        assert tls12_policy_problems(sweep) == [], f"{target.alias}: accepted {sorted(sweep.accepted)}"
        assert set(WEAK_TLS12) <= set(sweep.refused), f"{target.alias}: {sweep.refused}"
        # The weak samples are RSA-authenticated: against an ECDSA certificate their refusal would prove nothing.
        certificate = sweep.certificate
        assert certificate is not None and isinstance(certificate.public_key(), RSAPublicKey), (
            f"{target.alias} serves a non-RSA certificate: the RSA-authenticated offers prove nothing")


@pytest.mark.parametrize("service", service_params(SERVICES))
def test_tls12_gets_a_policy_suite_and_tls13_is_kept(listeners, service):
    for target in listeners:
        status = served(target)  # verified handshakes: the default one, then one capped at TLS 1.2
        assert status.tls12_cipher in TLS12_CIPHERS, f"{target.alias} chose {status.tls12_cipher} in TLS 1.2"
        assert status.version == "TLSv1.3", f"{target.alias} negotiated {status.version} with a default client"


@pytest.mark.parametrize("service", service_params([s for s in SERVICES if registry.get(s).tls12_server_order]))
def test_server_cipher_order_wins(listeners, service):
    rsa_suites = [c for c in TLS12_CIPHERS if c.startswith("ECDHE-RSA-")]
    pair = (rsa_suites[1], rsa_suites[0])  # the client prefers the server's second choice
    for target in listeners:
        picks = server_picks(target.host, target.port, target.protocol, pair)
        assert picks == (rsa_suites[0], rsa_suites[0]), (
            f"{target.alias} picked {picks} for the offers {pair} and reversed: the client's order won "
            f"({registry.get(service).tls12_server_order} should make the server's win)")
