"""The handshake probes, against local servers: they can tell refusal from acceptance, and plain from TLS."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.pki import self_signed
from harness.tlsprobe import (
    PG_SSL_REQUEST,
    TlsProbeError,
    client_speaks,
    handshake,
    int_to_serial,
    legacy_context,
    mysql_greeting_capabilities,
    mysql_ssl_request,
    offer_legacy,
    serial_to_int,
    unverified_context,
)


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory) -> tuple[str, str]:
    cert, key = self_signed("localhost")
    d = tmp_path_factory.mktemp("tls")
    (d / "c.pem").write_text(cert)
    (d / "k.pem").write_text(key)
    return str(d / "c.pem"), str(d / "k.pem")


@contextmanager
def server(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        try:
            handler(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(5)
        listener.close()


def tls_server(cert_files, minimum=ssl.TLSVersion.TLSv1_2, pre: Callable[[socket.socket], None] | None = None,
               legacy: str | None = None):
    if legacy:
        ctx = legacy_context(legacy, server=True)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = minimum
    ctx.load_cert_chain(*cert_files)

    def handler(conn: socket.socket) -> None:
        if pre:
            pre(conn)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    return server(handler)


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


def test_offer_legacy_detects_refusal_and_acceptance(cert_files):
    with tls_server(cert_files) as port:  # TLS 1.2+ only
        refused = offer_legacy("127.0.0.1", port, "tls", "TLSv1")
    assert refused.refused and "PROTOCOL_VERSION" in refused.detail.upper()
    with tls_server(cert_files, legacy="TLSv1") as port:  # a server that still speaks TLS 1.0
        accepted = offer_legacy("127.0.0.1", port, "tls", "TLSv1")
    assert not accepted.refused, accepted.detail


def test_postgres_upgrade_reads_the_certificate(cert_files):
    def answer_s(conn: socket.socket) -> None:
        assert conn.recv(8) == PG_SSL_REQUEST
        conn.sendall(b"S")

    with tls_server(cert_files, pre=answer_s) as port:
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
    def greet(caps: int) -> Callable[[socket.socket], None]:
        def pre(conn: socket.socket) -> None:
            payload = _greeting(caps)
            conn.sendall(len(payload).to_bytes(3, "little") + b"\0" + payload)
            request = conn.recv(36)
            assert len(request) == 36 and request[3] == 1

        return pre

    with tls_server(cert_files, pre=greet(0x0800 | 0x0200)) as port:
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
