"""Real TLS handshakes from the host: what a server presents, what it agrees to, and what it refuses.

``protocol`` says how a connection becomes TLS: ``tls`` (TLS from the first byte: Redis' tls-port, AMQPS,
HTTPS, MongoDB), ``postgres`` (the SSLRequest message, then TLS on the same port) or ``mysql`` (the server
greeting, an SSL request packet, then TLS on the same port). Nothing here trusts a client library's word:
the certificate is read off the wire and the version/cipher come from the handshake itself.

A refusal is only believed with evidence: an offer (a legacy version, or one TLS 1.2 suite) counts as refused
when, in the same check, a modern handshake with the same listener succeeds *and* the offer ends in a TLS
refusal alert from the server (:data:`REFUSAL_ALERTS`). A plaintext listener, a reset, an EOF or a local error
is never a refusal (:func:`check_offer`).

:func:`sweep_tls12` offers a listener every TLS 1.2 suite this machine's OpenSSL can put alone in a ClientHello,
one handshake per suite, and returns what it accepted; :func:`tls12_policy_problems` judges that against
:mod:`stack.tls_policy`.
"""

from __future__ import annotations

import datetime as dt
import functools
import socket
import ssl
import struct
import tempfile
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509

from stack.errors import HarnessError
from stack.selfsigned import self_signed
from stack.tls_policy import TLS12_CIPHERS

PROTOCOLS = ("tls", "postgres", "mysql")
PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_MYSQL_CLIENT_SSL = 0x0800
# CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
_MYSQL_SSL_REQUEST_FLAGS = 0x0001 | 0x0200 | _MYSQL_CLIENT_SSL | 0x8000 | 0x80000
LEGACY_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}
OFFER_VERSIONS = {**LEGACY_VERSIONS, "TLSv1.2": ssl.TLSVersion.TLSv1_2}


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
    """A context that accepts any certificate: only for reading what a server presents (TLS 1.2 or newer)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def tls12_only(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """``ctx`` limited to TLS 1.2 (what a TLS 1.2 client negotiates: the suite in ``certs status``)."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass(frozen=True)
class Offer:
    """What a probe offers: exactly one protocol version and, optionally, exactly one TLS 1.2 suite."""

    version: str  # "TLSv1", "TLSv1.1" or "TLSv1.2"
    cipher: str | None = None  # OpenSSL name of the only suite offered; None: everything OpenSSL knows

    def __str__(self) -> str:
        return f"{self.version} {self.cipher}" if self.cipher else self.version

    def context(self, server: bool = False) -> ssl.SSLContext:
        """Pinned to the version (and suite) at OpenSSL security level 0, so this machine's OpenSSL is willing
        to speak it; certificates are not checked, so a failure can only come from the protocol."""
        pinned = OFFER_VERSIONS[self.version]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = pinned
            ctx.maximum_version = pinned
        ctx.set_ciphers(f"{self.cipher or 'ALL'}:@SECLEVEL=0")
        if not server:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def legacy_context(version: str, server: bool = False) -> ssl.SSLContext:
    """A context pinned to exactly one old version (see :meth:`Offer.context`)."""
    if version not in LEGACY_VERSIONS:
        raise ValueError(f"{version!r} is not a legacy version; one of {', '.join(LEGACY_VERSIONS)}")
    return Offer(version).context(server)


#: Received TLS alerts that mean "the server will not do what was offered", by the reason OpenSSL gives them
#: (RFC 5246 7.2.2 / RFC 8446 6.2): protocol_version (version refused), handshake_failure (no acceptable
#: parameters, e.g. no shared suite) and insufficient_security (RFC 5246: sent "instead of handshake_failure"
#: when the server requires stronger suites than offered; Erlang's ssl answers a refused suite with it).
REFUSAL_ALERTS = {"TLSV1_ALERT_PROTOCOL_VERSION": "protocol_version",
                  "SSLV3_ALERT_HANDSHAKE_FAILURE": "handshake_failure",
                  "TLSV1_ALERT_INSUFFICIENT_SECURITY": "insufficient_security"}

REFUSED = "refused"
ACCEPTS_LEGACY_VERSION = "accepts legacy version"
ACCEPTS_WEAK_SUITE = "accepts weak suite"
NO_REFUSAL_ALERT = "no refusal alert"
MODERN_HANDSHAKE_FAILED = "modern handshake failed"


def refusal_alert(exc: BaseException) -> str | None:
    """The refusal alert the server sent (``protocol_version``, ...), or None when ``exc`` is anything else: a
    local error, a plaintext answer (WRONG_VERSION_NUMBER), a reset or EOF without an alert, another alert."""
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLCertVerificationError):
        return REFUSAL_ALERTS.get(str(getattr(exc, "reason", "") or ""))
    return None


@dataclass(frozen=True)
class Verdict:
    """The outcome of one offer to one listener, judged together with a modern handshake to the same
    listener in the same check.

    ``verdict`` is :data:`REFUSED` only when the modern handshake succeeded *and* the offer ended in a
    refusal alert; :data:`ACCEPTS_LEGACY_VERSION` / :data:`ACCEPTS_WEAK_SUITE` when the offer was accepted;
    otherwise the check proves nothing (:data:`MODERN_HANDSHAKE_FAILED`, :data:`NO_REFUSAL_ALERT`).
    """

    offer: Offer
    verdict: str
    detail: str
    modern: Handshake | None

    @property
    def refused(self) -> bool:
        return self.verdict == REFUSED

    def __str__(self) -> str:
        return f"{self.offer}: {self.verdict} ({self.detail})"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _attempt(host: str, port: int, protocol: str, context: ssl.SSLContext,
             timeout: float) -> tuple[Handshake | None, BaseException | None]:
    try:
        return handshake(host, port, protocol, context, None, timeout), None
    except (ssl.SSLError, OSError, TlsProbeError) as exc:
        return None, exc


def judge(offer: Offer, accepted: Handshake | None, offer_error: BaseException | None, modern: Handshake | None,
          modern_error: BaseException | None) -> Verdict:
    """The verdict from what the offer and the modern handshake did (see :class:`Verdict`)."""
    if accepted is not None:
        kind = ACCEPTS_WEAK_SUITE if offer.cipher else ACCEPTS_LEGACY_VERSION
        return Verdict(offer, kind, f"negotiated {accepted.version} {accepted.cipher}", modern)
    if offer_error is None or modern_error is not None or modern is None:
        why = _describe(modern_error) if modern_error is not None else "no modern handshake"
        offered = _describe(offer_error) if offer_error is not None else "no outcome"
        return Verdict(offer, MODERN_HANDSHAKE_FAILED, f"{why}; so the offer's outcome ({offered}) proves nothing",
                       None)
    alert = refusal_alert(offer_error)
    if alert is None:
        return Verdict(offer, NO_REFUSAL_ALERT, f"the offer failed without a refusal alert: {_describe(offer_error)}",
                       modern)
    return Verdict(offer, REFUSED, f"alert {alert}; modern handshake: {modern.version} {modern.cipher}", modern)


def check_offer(host: str, port: int, protocol: str, offer: Offer, timeout: float = 5.0) -> Verdict:
    """Offer only ``offer`` to the listener, and in the same check complete a modern handshake there: TLS 1.2
    or newer for a version offer, TLS 1.2 with this machine's default suites for a suite offer (so a refused
    suite is refused by a listener that does speak TLS 1.2). The pre-TLS part (TCP, SSLRequest, MySQL greeting)
    runs for both, so a refusal can only be the TLS handshake itself."""
    modern_context = tls12_only(unverified_context()) if offer.cipher else unverified_context()
    modern, modern_error = _attempt(host, port, protocol, modern_context, timeout)
    accepted, offer_error = _attempt(host, port, protocol, offer.context(), timeout)
    return judge(offer, accepted, offer_error, modern, modern_error)


def check_legacy(host: str, port: int, protocol: str, version: str, timeout: float = 5.0) -> Verdict:
    """Offer only the legacy ``version`` (``TLSv1``/``TLSv1.1``); see :func:`check_offer`."""
    if version not in LEGACY_VERSIONS:
        raise ValueError(f"{version!r} is not a legacy version; one of {', '.join(LEGACY_VERSIONS)}")
    return check_offer(host, port, protocol, Offer(version), timeout)


def check_tls12_suite(host: str, port: int, protocol: str, cipher: str, timeout: float = 5.0) -> Verdict:
    """Offer TLS 1.2 with only ``cipher`` (OpenSSL name); see :func:`check_offer`."""
    return check_offer(host, port, protocol, Offer("TLSv1.2", cipher), timeout)


def server_picks(host: str, port: int, protocol: str, ciphers: tuple[str, str],
                 timeout: float = 5.0) -> tuple[str, str]:
    """The TLS 1.2 suite the listener chooses when offered ``ciphers`` in that order and in reverse. The same
    suite both times means the server's order wins; each side's first suite means the client's does."""
    picked = []
    for order in (ciphers, ciphers[::-1]):
        ctx = tls12_only(unverified_context())
        ctx.set_ciphers(":".join(order))
        picked.append(handshake(host, port, protocol, ctx, None, timeout).cipher)
    return picked[0], picked[1]


# ------------------------------------------------------------------ proof that this client offers what it claims


#: The 1024-bit MODP group of RFC 2409 (Oakley group 2; a safe prime, generator 2): finite-field DH parameters for
#: the local control server (Python's ssl has no built-in DHE groups). 1024 bits: the least OpenSSL accepts even at
#: security level 0. A fixed, published group instead of one generated per process (about a second of CPU, more
#: or less at random): the control server only has to negotiate a DHE suite, not to keep anything secret.
DH_GROUP_1024 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF", 16)


@functools.cache
def _dh_params_pem() -> bytes:
    """:data:`DH_GROUP_1024` as PKCS#3 PEM (what ``SSLContext.load_dh_params`` reads)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dh

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography deprecates FFDH: exactly why servers must refuse it
        params = dh.DHParameterNumbers(DH_GROUP_1024, 2).parameters()
    return params.parameter_bytes(serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3)


@functools.cache
def _control_identity() -> tuple[str, str]:
    """The local control server's self-signed certificate and key (PEM), made once per process (an RSA key each
    time cost about a tenth of a second per offer)."""
    return self_signed("offer-control.invalid", days=1)


def client_offers(offer: Offer, timeout: float = 5.0) -> Handshake:
    """Prove the pinned client really offers ``offer``: handshake with a local control server that accepts
    exactly that version (and suite) and return what was negotiated. Raises if this machine's OpenSSL cannot."""
    cert_pem, key_pem = _control_identity()
    server_ctx = offer.context(server=True)
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = f"{tmp}/cert.pem", f"{tmp}/key.pem"
        with open(cert_file, "w") as fh:
            fh.write(cert_pem)
        with open(key_file, "w") as fh:
            fh.write(key_pem)
        server_ctx.load_cert_chain(cert_file, key_file)
        if offer.cipher and offer.cipher.startswith("DHE-"):
            with open(f"{tmp}/dh.pem", "wb") as dh_file:
                dh_file.write(_dh_params_pem())
            server_ctx.load_dh_params(f"{tmp}/dh.pem")
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
        result = handshake("127.0.0.1", listener.getsockname()[1], "tls", offer.context(), None, timeout)
    finally:
        thread.join(timeout)
        listener.close()
    if errors:
        raise TlsProbeError(f"the local control server failed the {offer} handshake: {errors[0]}")
    return result


def client_speaks(version: str, timeout: float = 5.0) -> str:
    """The version the pinned legacy client negotiates with a control server pinned to ``version``."""
    return client_offers(Offer(version), timeout).version


# ------------------------------------------------------------------------- every TLS 1.2 suite, one at a time

#: TLS_EMPTY_RENEGOTIATION_INFO_SCSV: not a suite, a signal OpenSSL adds to every TLS 1.2 ClientHello.
RENEGOTIATION_SCSV = 0x00FF


@dataclass(frozen=True)
class Tls12Suite:
    """A TLS 1.2 suite by OpenSSL name and IANA code (the two bytes a ClientHello carries)."""

    name: str
    code: int


def tls12_suites() -> tuple[Tls12Suite, ...]:
    """Every suite this machine's OpenSSL knows that TLS 1.2 can negotiate, at security level 0 (so nothing is held
    back for being weak), NULL encryption included, in OpenSSL's order. OpenSSL labels a suite with the protocol
    that introduced it: the CBC/SHA-1 suites of SSLv3 and TLS 1.0 (``ECDHE-RSA-AES128-SHA``, ``DES-CBC3-SHA``) are
    TLS 1.2 suites too; only the TLS 1.3 ones are not."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return tuple(Tls12Suite(c["name"], c["id"] & 0xFFFF) for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3")


def client_hello_suites(ctx: ssl.SSLContext) -> list[int]:
    """The suite codes of the ClientHello ``ctx`` would send, built in memory (nothing is sent anywhere).
    Raises :class:`ssl.SSLError` when OpenSSL will not build one (``NO_CIPHERS_AVAILABLE``)."""
    outgoing = ssl.MemoryBIO()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:  # the ClientHello is written; the server's answer would come next
        pass
    else:
        raise TlsProbeError("an in-memory handshake completed without a server")
    record = outgoing.read()
    # record header (5) + handshake header (4) + client_version (2) + random (32), then session id, then suites
    if len(record) < 44 or record[0] != 22 or record[5] != 1:
        raise TlsProbeError(f"not a TLS ClientHello record ({record[:6].hex()})")
    at = 43 + 1 + record[43]
    (length,) = struct.unpack_from("!H", record, at)
    return [struct.unpack_from("!H", record, at + 2 + i)[0] for i in range(0, length, 2)]


@functools.cache
def offerable_tls12_suites() -> tuple[tuple[Tls12Suite, ...], dict[str, str]]:
    """The suites of :func:`tls12_suites` this client can offer alone, each proven by its ClientHello (exactly that
    suite, plus OpenSSL's renegotiation signal), and the others with the reason: the PSK and SRP suites, which
    OpenSSL offers only with a pre-shared key or an SRP login (no server could negotiate them with this client
    either)."""
    alone: list[Tls12Suite] = []
    not_offered: dict[str, str] = {}
    for suite in tls12_suites():
        try:
            codes = client_hello_suites(Offer("TLSv1.2", suite.name).context())
        except ssl.SSLError as exc:
            not_offered[suite.name] = f"OpenSSL builds no ClientHello with it alone ({exc.reason or exc})"
            continue
        if [c for c in codes if c != RENEGOTIATION_SCSV] != [suite.code]:
            raise TlsProbeError(f"the ClientHello for {suite.name} alone offers "
                                f"{', '.join(f'0x{c:04x}' for c in codes)}, not 0x{suite.code:04x}")
        alone.append(suite)
    return tuple(alone), not_offered


@dataclass(frozen=True)
class SuiteSweep:
    """What one listener did with every TLS 1.2 suite offered alone.

    ``accepted`` holds the suites a handshake completed with (TLS 1.2, that suite negotiated), ``refused`` the
    offers that ended in a refusal alert (:data:`REFUSAL_ALERTS`), ``unproven`` those that failed any other way (a
    reset, EOF, timeout, another alert, a plaintext answer: no proof of a refusal); ``not_offered`` the suites this
    OpenSSL knows but cannot offer alone. ``certificate_der`` is the leaf of the first accepted handshake."""

    listener: str
    offered: tuple[str, ...]
    accepted: frozenset[str]
    refused: dict[str, str] = field(default_factory=dict)
    unproven: dict[str, str] = field(default_factory=dict)
    not_offered: dict[str, str] = field(default_factory=dict)
    certificate_der: bytes | None = None

    @property
    def certificate(self) -> x509.Certificate | None:
        return x509.load_der_x509_certificate(self.certificate_der) if self.certificate_der else None


def sweep_tls12(host: str, port: int, protocol: str, timeout: float = 3.0,
                suites: Iterable[str] | None = None) -> SuiteSweep:
    """Offer the listener each TLS 1.2 suite alone (``suites``, default :func:`offerable_tls12_suites`), one
    handshake per suite pinned to TLS 1.2 at OpenSSL security level 0, and record what it did with each. A refused
    offer costs one round trip (the server's alert ends it); ``timeout`` bounds a listener that answers nothing."""
    known, not_offered = offerable_tls12_suites()
    names = tuple(suites) if suites is not None else tuple(s.name for s in known)
    accepted: list[str] = []
    refused: dict[str, str] = {}
    unproven: dict[str, str] = {}
    leaf: bytes | None = None
    for name in names:
        result, error = _attempt(host, port, protocol, Offer("TLSv1.2", name).context(), timeout)
        if result is not None and (result.version, result.cipher) == ("TLSv1.2", name):
            accepted.append(name)
            leaf = leaf or result.certificate_der
        elif result is not None:
            unproven[name] = f"negotiated {result.version} {result.cipher} instead"
        elif error is not None:
            alert = refusal_alert(error)
            (refused if alert else unproven)[name] = f"alert {alert}" if alert else _briefly(error)
    return SuiteSweep(f"{host}:{port}", names, frozenset(accepted), refused, unproven,
                      {} if suites is not None else dict(not_offered), leaf)


def _briefly(exc: BaseException) -> str:
    """An offer's failure in few words: OpenSSL's reason code alone for an SSL error (no source line numbers)."""
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    return f"{type(exc).__name__} {reason}" if reason else _describe(exc)


def _listed(names: Iterable[str], limit: int = 5) -> str:
    shown = list(names)
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def tls12_policy_problems(sweep: SuiteSweep, policy: Iterable[str] = TLS12_CIPHERS) -> list[str]:
    """What is wrong with a sweep against the TLS 1.2 policy (empty when nothing is): the listener must accept at
    least one suite (else it proves nothing: TLS off, a plaintext port, TLS 1.2 disabled), accept only policy
    suites, and refuse every other offer with a refusal alert (anything else does not prove a refusal)."""
    if not sweep.accepted:
        ended = {**sweep.refused, **sweep.unproven}
        first = next((name for name in sweep.offered if name in ended), None)
        how = f"; the first, {first}, ended with {ended[first]}" if first else ""
        return [f"{sweep.listener} accepted none of the {len(sweep.offered)} TLS 1.2 suites offered one at a time"
                f"{how}"]
    allowed = set(policy)
    problems = []
    outside = [name for name in sweep.offered if name in sweep.accepted and name not in allowed]
    if outside:
        problems.append(f"{sweep.listener} accepts TLS 1.2 suites outside the policy: {', '.join(outside)}")
    if sweep.unproven:
        problems.append(f"{sweep.listener}: {len(sweep.unproven)} offer(s) ended without a refusal alert, so their "
                        "refusal is not proven: "
                        + _listed(f"{name} ({why})" for name, why in sweep.unproven.items()))
    return problems
