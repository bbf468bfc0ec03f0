"""The TLS 1.2 cipher policy (``stack/tls_policy.py``) on every TLS listener of every service: a TLS 1.2 offer of
only a CBC/SHA-1 suite, only a suite without forward secrecy (RSA key exchange) or only a finite-field DHE suite
is refused, while a TLS 1.2 handshake with the same listener succeeds on a policy suite and a default client
still gets TLS 1.3. Where the server can enforce its own order, its order wins.

Each refusal is a :func:`stack.tlsprobe.check_tls12_suite` verdict: believed only when the modern handshake in
the same check succeeded and the weak offer ended in a refusal alert from the server, after a local control
server proved this client really offers the weak suite. Plaintext, resets and local errors never count.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from harness.certs import served
from harness.plugin import service_params
from stack import registry
from stack.tls_policy import SERVER_ORDER, TLS12_CIPHERS, WEAK_TLS12
from stack.tlsprobe import Offer, check_tls12_suite, client_offers, server_picks

SERVICES = registry.with_capability("tls")
pytestmark = pytest.mark.tls


@pytest.fixture(scope="module")
def client_offers_weak_suites() -> None:
    """Proof this client really offers each weak suite: a local server accepting only it completes TLS 1.2."""
    for cipher in WEAK_TLS12:
        result = client_offers(Offer("TLSv1.2", cipher))
        assert (result.version, result.cipher) == ("TLSv1.2", cipher)


@pytest.mark.parametrize("cipher", list(WEAK_TLS12))
@pytest.mark.parametrize("service", service_params(SERVICES))
def test_weak_tls12_suite_is_refused(listeners, client_offers_weak_suites, service, cipher):
    for target in listeners:
        verdict = check_tls12_suite(target.host, target.port, target.protocol, cipher)
        assert verdict.refused, f"{target.alias} ({WEAK_TLS12[cipher]}): {verdict}"
        assert verdict.modern is not None and verdict.modern.cipher in TLS12_CIPHERS, verdict.modern
        # The weak suites are RSA-authenticated: against an ECDSA certificate their refusal would prove nothing.
        assert isinstance(verdict.modern.certificate.public_key(), RSAPublicKey), (
            f"{target.alias} serves a non-RSA certificate: the RSA-authenticated offer {cipher} proves nothing")


@pytest.mark.parametrize("service", service_params(SERVICES))
def test_tls12_gets_a_policy_suite_and_tls13_is_kept(listeners, service):
    for target in listeners:
        status = served(target)  # verified handshakes: the default one, then one capped at TLS 1.2
        assert status.tls12_cipher in TLS12_CIPHERS, f"{target.alias} chose {status.tls12_cipher} in TLS 1.2"
        assert status.version == "TLSv1.3", f"{target.alias} negotiated {status.version} with a default client"


@pytest.mark.parametrize("service", service_params([s for s in SERVICES if SERVER_ORDER[s]]))
def test_server_cipher_order_wins(listeners, service):
    rsa_suites = [c for c in TLS12_CIPHERS if c.startswith("ECDHE-RSA-")]
    pair = (rsa_suites[1], rsa_suites[0])  # the client prefers the server's second choice
    for target in listeners:
        picks = server_picks(target.host, target.port, target.protocol, pair)
        assert picks == (rsa_suites[0], rsa_suites[0]), (
            f"{target.alias} picked {picks} for the offers {pair} and reversed: the client's order won "
            f"({SERVER_ORDER[service]} should make the server's win)")
