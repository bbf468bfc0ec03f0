"""Real TLS handshakes from the host: what a server presents, what it agrees to, and what it refuses.

``protocol`` says how a connection becomes TLS: ``tls`` (TLS from the first byte: Redis' tls-port, AMQPS,
HTTPS, MongoDB), ``postgres`` (the SSLRequest message, then TLS on the same port) or ``mysql`` (the server
greeting, an SSL request packet, then TLS on the same port). Nothing here trusts a client library's word:
the certificate is read off the wire and the version/cipher come from the handshake itself.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import struct
import tempfile
import threading
import warnings
from dataclasses import dataclass

from cryptography import x509

from harness.errors import HarnessError
from harness.pki import self_signed

PROTOCOLS = ("tls", "postgres", "mysql")
PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_MYSQL_CLIENT_SSL = 0x0800
# CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
_MYSQL_SSL_REQUEST_FLAGS = 0x0001 | 0x0200 | _MYSQL_CLIENT_SSL | 0x8000 | 0x80000
LEGACY_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}


class TlsProbeError(HarnessError):
    """The server did not get as far as a TLS handshake (TLS off, wrong protocol, error packet)."""


@dataclass(frozen=True)
class Handshake:
    """One completed handshake: negotiated version and cipher, and the leaf the server presented."""

    version: str
    cipher: str
    certificate_der: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    @property
    def serial(self) -> int:
        return int(self.certificate.serial_number)

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc


def serial_to_int(serial: str) -> int:
    """Vault's ``aa:bb:cc`` serial (or plain hex) as an integer, to compare with a presented certificate."""
    return int(serial.replace(":", "").replace("-", ""), 16)


def int_to_serial(value: int) -> str:
    """An integer serial in Vault's notation: lower-case hex bytes joined by colons."""
    text = f"{value:x}"
    text = "0" * (len(text) % 2) + text
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


def mysql_ssl_request(sequence: int) -> bytes:
    """The SSL request packet a MySQL client sends after the greeting to switch the connection to TLS."""
    payload = struct.pack("<IIB23x", _MYSQL_SSL_REQUEST_FLAGS, 16 * 1024 * 1024, 45)
    return len(payload).to_bytes(3, "little") + bytes([sequence & 0xFF]) + payload


def mysql_greeting_capabilities(payload: bytes) -> int:
    """Capability flags (lower 16 bits, where CLIENT_SSL lives) from a protocol-10 server greeting."""
    if not payload or payload[0] == 0xFF:
        message = payload[3:].decode(errors="replace") if payload else "empty greeting"
        raise TlsProbeError(f"MySQL server sent an error instead of a greeting: {message}")
    if payload[0] != 10:
        raise TlsProbeError(f"not a MySQL protocol-10 greeting (first byte {payload[0]})")
    end = payload.index(b"\0", 1)  # server version, NUL-terminated
    offset = end + 1 + 4 + 8 + 1  # connection id, auth data part 1, filler
    lower: int = struct.unpack_from("<H", payload, offset)[0]
    return lower


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise TlsProbeError(f"the server closed the connection after {len(data)} of {count} bytes")
        data += chunk
    return data


def _upgrade(sock: socket.socket, protocol: str) -> None:
    if protocol == "tls":
        return
    if protocol == "postgres":
        sock.sendall(PG_SSL_REQUEST)
        answer = _recv_exact(sock, 1)
        if answer != b"S":
            raise TlsProbeError(f"PostgreSQL answered {answer!r} to SSLRequest, so TLS is off on this server")
        return
    if protocol == "mysql":
        header = _recv_exact(sock, 4)
        payload = _recv_exact(sock, int.from_bytes(header[:3], "little"))
        if not mysql_greeting_capabilities(payload) & _MYSQL_CLIENT_SSL:
            raise TlsProbeError("the MySQL server does not offer TLS (CLIENT_SSL missing from its greeting)")
        sock.sendall(mysql_ssl_request(header[3] + 1))
        return
    raise ValueError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")


def open_tls(host: str, port: int, protocol: str, context: ssl.SSLContext, server_hostname: str | None,
             timeout: float = 5.0) -> ssl.SSLSocket:
    """Connect, upgrade as the protocol requires and complete a TLS handshake (the caller closes)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        _upgrade(sock, protocol)
        return context.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def handshake(host: str, port: int, protocol: str, context: ssl.SSLContext, server_hostname: str | None,
              timeout: float = 5.0) -> Handshake:
    """Handshake and report version, cipher and the presented leaf certificate."""
    with open_tls(host, port, protocol, context, server_hostname, timeout) as tls:
        der = tls.getpeercert(binary_form=True)
        cipher = tls.cipher()
        version = tls.version()
    if der is None or cipher is None or version is None:
        raise TlsProbeError(f"{host}:{port}: handshake finished without a peer certificate")
    return Handshake(version=version, cipher=cipher[0], certificate_der=der)


def unverified_context() -> ssl.SSLContext:
    """A context that accepts any certificate: only for reading what a server presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def legacy_context(version: str, server: bool = False) -> ssl.SSLContext:
    """A context pinned to exactly one old version at OpenSSL security level 0 (so the local OpenSSL is
    willing to speak it); certificates are not checked, so a failure can only come from the protocol."""
    pinned = LEGACY_VERSIONS[version]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = pinned
        ctx.maximum_version = pinned
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    if not server:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_speaks(version: str, timeout: float = 5.0) -> str:
    """Prove the pinned legacy client really offers ``version``: handshake with a local control server
    pinned to the same version and return what was negotiated. Raises if this machine's OpenSSL cannot."""
    cert_pem, key_pem = self_signed("legacy-control.invalid", days=1)
    server_ctx = legacy_context(version, server=True)
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = f"{tmp}/cert.pem", f"{tmp}/key.pem"
        with open(cert_file, "w") as fh:
            fh.write(cert_pem)
        with open(key_file, "w") as fh:
            fh.write(key_pem)
        server_ctx.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(timeout)
        try:
            with server_ctx.wrap_socket(conn, server_side=True):
                pass
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = handshake("127.0.0.1", listener.getsockname()[1], "tls", legacy_context(version), None, timeout)
    finally:
        thread.join(timeout)
        listener.close()
    if errors:
        raise TlsProbeError(f"the local control server failed the {version} handshake: {errors[0]}")
    return result.version


@dataclass(frozen=True)
class Refusal:
    """The outcome of offering one legacy version to a server."""

    version: str
    refused: bool
    detail: str  # the handshake error (refused) or the negotiated version/cipher (accepted)


def offer_legacy(host: str, port: int, protocol: str, version: str, timeout: float = 5.0) -> Refusal:
    """Offer only ``version`` to the server. The pre-TLS part (TCP, SSLRequest, MySQL greeting) must work,
    so a refusal can only be the TLS handshake itself."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        _upgrade(sock, protocol)
        try:
            with legacy_context(version).wrap_socket(sock, server_hostname=None) as tls:
                return Refusal(version, refused=False, detail=f"{tls.version()} {tls.cipher()}")
        except (ssl.SSLError, ConnectionResetError) as exc:
            return Refusal(version, refused=True, detail=f"{type(exc).__name__}: {exc}")
    finally:
        sock.close()
