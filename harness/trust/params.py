"""The root of trust's parameters: PKI names, key type and lifetimes, AppRole lifetimes.

Plain frozen dataclasses without a client library, so :mod:`harness.settings` (imported by every pytest process the
plugin loads into, xdist workers included) builds them without importing hvac, requests and testcontainers, which
only the bootstrap itself needs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PkiSettings:
    """PKI names, keys and lifetimes.

    Defaults: RSA 2048 keys, because every client and server in the stack (Erlang/RabbitMQ, MariaDB, libpq,
    redis-py, OpenSSL at the default security level) accepts it, as the reference project's setup does;
    root 10 years and intermediate 5 years like the reference; leaves at most 30 days (default 7) so expiry
    and rotation are exercised rather than theoretical.
    """

    root_common_name: str = "devstack-harness Root CA"
    intermediate_common_name: str = "devstack-harness Intermediate CA"
    key_type: str = "rsa"
    key_bits: int = 2048
    root_ttl: str = "87600h"
    intermediate_ttl: str = "43800h"
    leaf_max_ttl: str = "720h"
    leaf_ttl: str = "168h"


@dataclass(frozen=True)
class AppRoleSettings:
    """AppRole token and secret-id lifetimes (reference: 1 h / 24 h / 30 d)."""

    token_ttl: str = "1h"
    token_max_ttl: str = "24h"
    secret_id_ttl: str = "720h"
