"""The one TLS policy every listener of every service serves (test stacks and the compose stack).

TLS 1.2 and 1.3 only. In TLS 1.2: ECDHE key exchange with AEAD ciphers only (AES-GCM, ChaCha20-Poly1305) --
the "intermediate" server profile of Mozilla's server-side TLS guidelines without its finite-field DHE
suites. No CBC/SHA-1 or SHA-2 HMAC suites, no static RSA key exchange (no forward secrecy), no DHE, and
nothing outside AES/ChaCha20 (CAMELLIA, ARIA, CCM). TLS 1.3 suites stay each server's defaults, except where a
server has one list for every version (Erlang): there the TLS 1.3 suites it offered before are listed.
The server's order wins where the server can enforce it (each service's ``ServiceSpec.tls12_server_order``).

Each server spells the list its own way; every spelling is derived here, so the stack modules, the compose
file's test and the suites cannot disagree.
"""

from __future__ import annotations

#: The TLS 1.2 suites, OpenSSL names, in the server's order of preference.
TLS12_CIPHERS: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)

#: The same suites by their IANA names, as Go (Vault/OpenBao ``tls_cipher_suites``) spells them.
IANA_NAMES: dict[str, str] = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

#: OpenSSL cipher string (PostgreSQL ``ssl_ciphers``, MariaDB/MySQL ``--ssl-cipher``, Redis ``tls-ciphers``,
#: MongoDB ``opensslCipherConfig``). Only affects TLS 1.2 and older in all four.
OPENSSL_TLS12 = ":".join(TLS12_CIPHERS)

#: Go's comma-separated list for Vault/OpenBao's listener ``tls_cipher_suites`` (TLS 1.2 only: Go's TLS 1.3
#: suites are not configurable).
GO_TLS12 = ",".join(IANA_NAMES[name] for name in TLS12_CIPHERS)

#: TLS 1.3 suites for Erlang (RabbitMQ), whose ``ciphers`` option covers every version: without them TLS 1.3
#: would stop working. These are the five RabbitMQ 3.10 on Erlang 25 offered before this policy (measured with
#: ``openssl s_client -tls1_3 -ciphersuites``), so TLS 1.3 is unchanged.
ERLANG_TLS13: tuple[str, ...] = (
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
)

#: Suites a listener must refuse in TLS 1.2, one per class the policy removes (the suites check them).
WEAK_TLS12: dict[str, str] = {
    "ECDHE-RSA-AES128-SHA": "CBC with SHA-1",
    "AES128-GCM-SHA256": "RSA key exchange (no forward secrecy)",
    "DHE-RSA-AES128-GCM-SHA256": "finite-field DHE",
}
