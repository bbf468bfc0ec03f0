"""The handshake probes, against local servers: they can tell refusal from acceptance, and plain from TLS.

Every verdict is tried against a fake of the broken thing (a plaintext listener, a TLS-1.0-only server, a
server that accepts CBC suites, one that resets instead of alerting, one that accepts a suite outside the policy
when offered every TLS 1.2 suite in turn, one that accepts none) and of the healthy one."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stack.selfsigned import self_signed
from stack.tls_policy import OPENSSL_TLS12, TLS12_CIPHERS, WEAK_TLS12
from stack.tlsprobe import (
    ACCEPTS_LEGACY_VERSION,
    ACCEPTS_WEAK_SUITE,
    MODERN_HANDSHAKE_FAILED,
    NO_REFUSAL_ALERT,
    PG_SSL_REQUEST,
    REFUSED,
    RENEGOTIATION_SCSV,
    Offer,
    SuiteSweep,
    TlsProbeError,
    check_legacy,
    check_offer,
    check_tls12_suite,
    client_hello_suites,
    client_offers,
    client_speaks,
    handshake,
    int_to_serial,
    judge,
    legacy_context,
    mysql_greeting_capabilities,
    mysql_ssl_request,
    offerable_tls12_suites,
    refusal_alert,
    serial_to_int,
    server_picks,
    sweep_tls12,
    tls12_only,
    tls12_policy_problems,
    tls12_suites,
    unverified_context,
)

Handler = Callable[[socket.socket], None]


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory) -> tuple[str, str]:
    cert, key = self_signed("localhost")
    d = tmp_path_factory.mktemp("tls")
    (d / "c.pem").write_text(cert)
    (d / "k.pem").write_text(key)
    return str(d / "c.pem"), str(d / "k.pem")


@contextmanager
def server(*handlers: Handler) -> Iterator[int]:
    """A listener on 127.0.0.1 serving one connection per handler, in order (the last one serves any further
    connections): the probes' checks connect more than once."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def run() -> None:
        served = 0
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                handlers[min(served, len(handlers) - 1)](conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()
            served += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        listener.close()


def tls_context(cert_files, minimum=ssl.TLSVersion.TLSv1_2, legacy: str | None = None,
                ciphers: str | None = None, server_order: bool = False) -> ssl.SSLContext:
    if legacy:
        ctx = legacy_context(legacy, server=True)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = minimum
    if ciphers:
        ctx.set_ciphers(ciphers)
    if server_order:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(*cert_files)
    return ctx


def tls_handler(ctx: ssl.SSLContext, pre: Handler | None = None) -> Handler:
    def handler(conn: socket.socket) -> None:
        if pre:
            pre(conn)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    return handler


def tls_server(cert_files, minimum=ssl.TLSVersion.TLSv1_2, pre: Handler | None = None, legacy: str | None = None,
               ciphers: str | None = None, server_order: bool = False):
    return server(tls_handler(tls_context(cert_files, minimum, legacy, ciphers, server_order), pre))


def plaintext(conn: socket.socket) -> None:
    """A plaintext protocol listener (Redis' plain port, HTTP): reads the hello, answers in text, closes."""
    conn.recv(4096)
    conn.sendall(b"-ERR unknown command\r\n")


def reset(conn: socket.socket) -> None:
    """Reads the hello and resets the connection: no alert."""
    conn.recv(4096)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_serial_round_trip():
    assert serial_to_int("0a:ff") == 0x0AFF
    assert int_to_serial(0x0AFF) == "0a:ff"
    assert int_to_serial(serial_to_int("3c:c4:4e:96")) == "3c:c4:4e:96"


def test_mysql_ssl_request_packet_layout():
    packet = mysql_ssl_request(1)
    assert packet[:3] == (32).to_bytes(3, "little") and packet[3] == 1 and len(packet) == 36
    flags, max_packet, charset = struct.unpack_from("<IIB", packet, 4)
    assert flags & 0x0800 and flags & 0x0200 and max_packet == 16 * 1024 * 1024 and charset == 45


def _greeting(caps: int) -> bytes:
    return b"\x0a" + b"10.11.6-MariaDB\0" + b"\1\0\0\0" + b"12345678" + b"\0" + struct.pack("<H", caps) + b"\x21"


def test_mysql_greeting_parsing():
    assert mysql_greeting_capabilities(_greeting(0x0800 | 0x0200)) & 0x0800
    assert not mysql_greeting_capabilities(_greeting(0x0200)) & 0x0800
    with pytest.raises(TlsProbeError, match="error instead of a greeting"):
        mysql_greeting_capabilities(b"\xff\x15\x04#28000Access denied")


def test_legacy_client_really_offers_old_versions():
    assert client_speaks("TLSv1") == "TLSv1"
    assert client_speaks("TLSv1.1") == "TLSv1.1"


def test_client_really_offers_each_weak_suite():
    for cipher in WEAK_TLS12:
        result = client_offers(Offer("TLSv1.2", cipher))
        assert (result.version, result.cipher) == ("TLSv1.2", cipher)


def test_legacy_version_refused_by_a_modern_server(cert_files):
    with tls_server(cert_files) as port:  # TLS 1.2+ only
        verdicts = [check_legacy("127.0.0.1", port, "tls", version) for version in ("TLSv1", "TLSv1.1")]
    for verdict in verdicts:
        assert verdict.verdict == REFUSED and verdict.refused, str(verdict)
        assert verdict.detail.startswith("alert protocol_version; modern handshake: TLSv1.3 "), verdict.detail
        assert verdict.modern is not None and verdict.modern.version == "TLSv1.3"


def test_a_plaintext_listener_is_never_a_refusal():
    """The bug this replaces: WRONG_VERSION_NUMBER from a plaintext listener counted as "refused TLS 1.0"."""
    with server(plaintext) as port:
        legacy = check_legacy("127.0.0.1", port, "tls", "TLSv1")
        suite = check_tls12_suite("127.0.0.1", port, "tls", "ECDHE-RSA-AES128-SHA")
    for verdict in (legacy, suite):
        assert verdict.verdict == MODERN_HANDSHAKE_FAILED and not verdict.refused, str(verdict)
        assert verdict.detail.startswith("SSLError: [SSL: WRONG_VERSION_NUMBER]"), verdict.detail
        assert verdict.modern is None


def test_a_tls10_only_server_is_reported_as_accepting_and_never_as_refusing(cert_files):
    with tls_server(cert_files, legacy="TLSv1") as port:
        tls10 = check_legacy("127.0.0.1", port, "tls", "TLSv1")
        tls11 = check_legacy("127.0.0.1", port, "tls", "TLSv1.1")
        suite = check_tls12_suite("127.0.0.1", port, "tls", "ECDHE-RSA-AES128-SHA")
    assert tls10.verdict == ACCEPTS_LEGACY_VERSION and not tls10.refused, str(tls10)
    assert tls10.detail.startswith("negotiated TLSv1 "), tls10.detail
    # Both offers end in an alert, but nothing modern works there: no proof of a policy.
    for verdict in (tls11, suite):
        assert verdict.verdict == MODERN_HANDSHAKE_FAILED and not verdict.refused, str(verdict)
        assert verdict.detail.startswith("SSLError: [SSL: ") and verdict.detail.endswith(") proves nothing")
    assert "TLSV1_ALERT_PROTOCOL_VERSION" in tls11.detail


@pytest.mark.parametrize(("second", "error"), [(reset, "ConnectionResetError"),
                                               (plaintext, "SSLError: [SSL: WRONG_VERSION_NUMBER]")],
                         ids=["reset", "plaintext"])
def test_an_offer_ending_without_an_alert_is_not_a_refusal(cert_files, second: Handler, error: str):
    """The modern handshake works (first connection); the offer (second) gets no alert."""
    with server(tls_handler(tls_context(cert_files)), second) as port:
        verdict = check_legacy("127.0.0.1", port, "tls", "TLSv1")
    assert verdict.verdict == NO_REFUSAL_ALERT and not verdict.refused, str(verdict)
    assert verdict.detail.startswith(f"the offer failed without a refusal alert: {error}"), verdict.detail
    assert verdict.modern is not None


def test_weak_suites_refused_by_a_server_with_the_policy(cert_files):
    with tls_server(cert_files, ciphers=OPENSSL_TLS12) as port:
        verdicts = [check_tls12_suite("127.0.0.1", port, "tls", cipher) for cipher in WEAK_TLS12]
    for verdict in verdicts:
        assert verdict.verdict == REFUSED, str(verdict)
        assert verdict.detail.startswith("alert handshake_failure; modern handshake: TLSv1.2 "), verdict.detail
        assert verdict.modern is not None and verdict.modern.cipher in TLS12_CIPHERS


@pytest.mark.parametrize("cipher", ["ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256"])
def test_a_server_accepting_a_weak_suite_is_reported(cert_files, cipher):
    with tls_server(cert_files, ciphers=f"{OPENSSL_TLS12}:{cipher}") as port:
        verdict = check_tls12_suite("127.0.0.1", port, "tls", cipher)
    assert verdict.verdict == ACCEPTS_WEAK_SUITE and not verdict.refused, str(verdict)
    assert verdict.detail == f"negotiated TLSv1.2 {cipher}"


def _answer_s(conn: socket.socket) -> None:
    assert conn.recv(8) == PG_SSL_REQUEST
    conn.sendall(b"S")


def _greet(caps: int) -> Handler:
    def pre(conn: socket.socket) -> None:
        payload = _greeting(caps)
        conn.sendall(len(payload).to_bytes(3, "little") + b"\0" + payload)
        request = conn.recv(36)
        assert len(request) == 36 and request[3] == 1

    return pre


@pytest.mark.parametrize(("protocol", "pre"), [("postgres", _answer_s), ("mysql", _greet(0x0800 | 0x0200))],
                         ids=["postgres-sslrequest", "mysql-greeting"])
def test_refusals_behind_the_protocol_preambles(cert_files, protocol: str, pre: Handler):
    with tls_server(cert_files, pre=pre, ciphers=OPENSSL_TLS12) as port:
        legacy = check_legacy("127.0.0.1", port, protocol, "TLSv1")
        weak = check_tls12_suite("127.0.0.1", port, protocol, "ECDHE-RSA-AES128-SHA")
    assert legacy.verdict == REFUSED and legacy.detail.startswith("alert protocol_version;"), str(legacy)
    assert weak.verdict == REFUSED and weak.detail.startswith("alert handshake_failure;"), str(weak)
    with tls_server(cert_files, pre=pre, ciphers=f"{OPENSSL_TLS12}:ECDHE-RSA-AES128-SHA") as port:  # CBC on
        accepted = check_tls12_suite("127.0.0.1", port, protocol, "ECDHE-RSA-AES128-SHA")
    assert accepted.verdict == ACCEPTS_WEAK_SUITE, str(accepted)


def test_postgres_with_tls_off_is_no_verdict():
    def answer_n(conn: socket.socket) -> None:
        conn.recv(8)
        conn.sendall(b"N")

    with server(answer_n) as port:
        verdict = check_legacy("127.0.0.1", port, "postgres", "TLSv1")
    assert verdict.verdict == MODERN_HANDSHAKE_FAILED
    assert verdict.detail.startswith("TlsProbeError: PostgreSQL answered b'N' to SSLRequest"), verdict.detail


def test_refusal_alert_names_only_refusals():
    def ssl_error(reason: str) -> ssl.SSLError:
        exc = ssl.SSLError(1, f"[SSL: {reason}]")
        exc.reason = reason
        return exc

    assert refusal_alert(ssl_error("TLSV1_ALERT_PROTOCOL_VERSION")) == "protocol_version"
    assert refusal_alert(ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE")) == "handshake_failure"
    assert refusal_alert(ssl_error("TLSV1_ALERT_INSUFFICIENT_SECURITY")) == "insufficient_security"
    for other in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "SSLV3_ALERT_BAD_CERTIFICATE",
                  "NO_CIPHERS_AVAILABLE", "UNSUPPORTED_PROTOCOL"):
        assert refusal_alert(ssl_error(other)) is None, other
    assert refusal_alert(ConnectionResetError(104, "reset")) is None
    assert refusal_alert(TlsProbeError("closed")) is None


def test_judge_needs_the_modern_handshake_even_with_an_alert():
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION]")
    alert.reason = "TLSV1_ALERT_PROTOCOL_VERSION"
    verdict = judge(Offer("TLSv1"), None, alert, None, ConnectionRefusedError(111, "refused"))
    assert verdict.verdict == MODERN_HANDSHAKE_FAILED and not verdict.refused
    assert verdict.detail.startswith("ConnectionRefusedError: [Errno 111] refused; so the offer's outcome")


def test_check_offer_refuses_nothing_on_a_closed_port():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    verdict = check_offer("127.0.0.1", port, "tls", Offer("TLSv1"))
    assert verdict.verdict == MODERN_HANDSHAKE_FAILED and "ConnectionRefusedError" in verdict.detail


def test_server_picks_tells_server_order_from_client_order(cert_files):
    pair = ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256")
    with tls_server(cert_files, ciphers=OPENSSL_TLS12, server_order=True) as port:
        assert server_picks("127.0.0.1", port, "tls", pair) == ("ECDHE-RSA-AES128-GCM-SHA256",) * 2
    with tls_server(cert_files, ciphers=OPENSSL_TLS12, server_order=False) as port:
        assert server_picks("127.0.0.1", port, "tls", pair) == pair


def test_tls12_only_context_negotiates_tls12(cert_files):
    with tls_server(cert_files, ciphers=OPENSSL_TLS12) as port:
        result = handshake("127.0.0.1", port, "tls", tls12_only(unverified_context()), None)
    assert result.version == "TLSv1.2" and result.cipher in TLS12_CIPHERS


def test_served_records_the_tls12_suite(cert_files):
    from harness.trust.certs import TlsTarget, served
    from stack.tlsprobe import int_to_serial as to_serial

    with tls_server(cert_files, ciphers=OPENSSL_TLS12, server_order=True) as port:
        first = handshake("127.0.0.1", port, "tls", unverified_context(), None)
        status = served(TlsTarget("svc", "svc-1", port, "tls", to_serial(first.serial), cert_files[0]))
    assert status.matches and status.version == "TLSv1.3"
    assert status.tls12_cipher == "ECDHE-RSA-AES128-GCM-SHA256"  # the policy's first RSA suite: server order


def test_postgres_upgrade_reads_the_certificate(cert_files):
    with tls_server(cert_files, pre=_answer_s) as port:
        result = handshake("127.0.0.1", port, "postgres", unverified_context(), None)
    assert result.version in ("TLSv1.2", "TLSv1.3")
    assert result.certificate.serial_number == result.serial


def test_postgres_without_tls_is_reported_not_handshaken():
    def answer_n(conn: socket.socket) -> None:
        conn.recv(8)
        conn.sendall(b"N")

    with server(answer_n) as port, pytest.raises(TlsProbeError, match="TLS is off"):
        handshake("127.0.0.1", port, "postgres", unverified_context(), None)


def test_mysql_upgrade_and_missing_tls(cert_files):
    with tls_server(cert_files, pre=_greet(0x0800 | 0x0200)) as port:
        assert handshake("127.0.0.1", port, "mysql", unverified_context(), None).version

    def no_tls(conn: socket.socket) -> None:
        payload = _greeting(0x0200)
        conn.sendall(len(payload).to_bytes(3, "little") + b"\0" + payload)

    with server(no_tls) as port, pytest.raises(TlsProbeError, match="does not offer TLS"):
        handshake("127.0.0.1", port, "mysql", unverified_context(), None)


def test_verified_handshake_refuses_wrong_name_and_unknown_ca(cert_files, tmp_path: Path):
    trusting = ssl.create_default_context(cafile=cert_files[0])
    with tls_server(cert_files) as port:
        assert handshake("127.0.0.1", port, "tls", trusting, "localhost").version
    with tls_server(cert_files) as port, pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake("127.0.0.1", port, "tls", trusting, "elsewhere.invalid")
    other, _ = self_signed("other-ca.invalid")
    (tmp_path / "other.pem").write_text(other)
    with tls_server(cert_files) as port, pytest.raises(ssl.SSLCertVerificationError):
        handshake("127.0.0.1", port, "tls", ssl.create_default_context(cafile=str(tmp_path / "other.pem")),
                  "localhost")


# ------------------------------------------------------------------- every TLS 1.2 suite against the policy


def test_each_suite_is_offered_alone_and_only_psk_suites_cannot_be():
    """The proof that the sweep offers what it says: each ClientHello (built in memory) carries exactly the one
    suite; what this OpenSSL cannot offer alone is the PSK and SRP families, which need a pre-shared key or an SRP
    login (no server could negotiate them with this client either). The CBC/SHA-1 suites that OpenSSL labels
    SSLv3 or TLSv1 are TLS 1.2 suites too and are offered (the first sweep left them out, so the sample
    ECDHE-RSA-AES128-SHA was never offered to a real server), and so are the NULL-encryption ones."""
    alone, not_offered = offerable_tls12_suites()
    names = {s.name for s in alone}
    assert len(alone) + len(not_offered) == len(tls12_suites()) and len(alone) >= 80
    assert set(TLS12_CIPHERS) <= names and "ECDHE-RSA-AES128-SHA256" in names
    assert {"ECDHE-RSA-AES128-SHA", "AES128-SHA", "NULL-SHA"} <= names and set(WEAK_TLS12) <= names
    assert all("PSK" in name or name.startswith("SRP-") for name in not_offered), sorted(not_offered)
    for suite in alone[:3]:
        assert [c for c in client_hello_suites(Offer("TLSv1.2", suite.name).context())
                if c != RENEGOTIATION_SCSV] == [suite.code]


def _sweep(port: int) -> SuiteSweep:
    return sweep_tls12("127.0.0.1", port, "tls", timeout=2.0)


def test_sweep_names_an_accepted_suite_outside_the_policy(cert_files):
    with tls_server(cert_files, ciphers=f"{OPENSSL_TLS12}:ECDHE-RSA-AES128-SHA256") as port:
        sweep = _sweep(port)
    assert sweep.accepted == {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                              "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-SHA256"}
    assert tls12_policy_problems(sweep) == [
        f"127.0.0.1:{port} accepts TLS 1.2 suites outside the policy: ECDHE-RSA-AES128-SHA256"]
    assert set(sweep.refused.values()) == {"alert handshake_failure"} and sweep.unproven == {}


def test_sweep_of_a_listener_with_the_policy_has_no_problem(cert_files):
    with tls_server(cert_files, ciphers=OPENSSL_TLS12) as port:
        sweep = _sweep(port)
    assert tls12_policy_problems(sweep) == []
    assert sweep.accepted == {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                              "ECDHE-RSA-CHACHA20-POLY1305"}  # the ECDSA ones need an ECDSA certificate
    assert len(sweep.refused) == len(sweep.offered) - 3 and sweep.certificate is not None
    assert all("PSK" in name or name.startswith("SRP-") for name in sweep.not_offered) and sweep.not_offered


@pytest.mark.parametrize(("listener", "first"), [
    ("plaintext", "SSLError WRONG_VERSION_NUMBER"),
    ("tls13-only", "alert protocol_version"),
], ids=["plaintext", "tls13-only"])
def test_sweep_of_a_listener_accepting_nothing_fails(cert_files, listener: str, first: str):
    handler = plaintext if listener == "plaintext" else tls_handler(tls_context(cert_files, ssl.TLSVersion.TLSv1_3))
    with server(handler) as port:
        sweep = _sweep(port)
    alone, _ = offerable_tls12_suites()
    assert sweep.accepted == frozenset()
    assert tls12_policy_problems(sweep) == [
        f"127.0.0.1:{port} accepted none of the {len(alone)} TLS 1.2 suites offered one at a time; the first, "
        f"{alone[0].name}, ended with {first}"]


def test_sweep_does_not_count_a_reset_as_a_refusal(cert_files):
    """A listener that takes the policy suites and resets every other offer: accepted only policy suites, yet the
    refusals are not proven."""
    policy = tls_handler(tls_context(cert_files, ciphers=OPENSSL_TLS12))
    with server(policy) as port:
        sweep = sweep_tls12("127.0.0.1", port, "tls", suites=["ECDHE-RSA-AES128-GCM-SHA256"])
    with server(reset) as port2:
        reset_sweep = sweep_tls12("127.0.0.1", port2, "tls", suites=["AES128-GCM-SHA256", "AES128-SHA256"])
    combined = SuiteSweep("fake", (*sweep.offered, *reset_sweep.offered), sweep.accepted,
                          unproven=reset_sweep.unproven)
    assert tls12_policy_problems(combined) == [
        "fake: 2 offer(s) ended without a refusal alert, so their refusal is not proven: AES128-GCM-SHA256 "
        "(ConnectionResetError: [Errno 104] Connection reset by peer), AES128-SHA256 (ConnectionResetError: "
        "[Errno 104] Connection reset by peer)"]


@pytest.mark.parametrize(("protocol", "pre"), [("postgres", _answer_s), ("mysql", _greet(0x0800 | 0x0200))],
                         ids=["postgres-sslrequest", "mysql-greeting"])
def test_sweep_behind_the_protocol_preambles(cert_files, protocol: str, pre: Handler):
    offered = ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA256", "AES128-GCM-SHA256"]
    with tls_server(cert_files, pre=pre, ciphers=f"{OPENSSL_TLS12}:ECDHE-RSA-AES128-SHA256") as port:
        sweep = sweep_tls12("127.0.0.1", port, protocol, suites=offered)
    assert tls12_policy_problems(sweep) == [
        f"127.0.0.1:{port} accepts TLS 1.2 suites outside the policy: ECDHE-RSA-AES128-SHA256"]
    assert sweep.refused == {"AES128-GCM-SHA256": "alert handshake_failure"}
