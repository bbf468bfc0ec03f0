"""The example service's own suite: what is memcached's alone (the cross-service suites in suites/ cover its TLS
identity and policy, dual mode, strict mode, rotation and secret hygiene through its driver)."""

from __future__ import annotations

import secrets

import pytest
from pymemcache.exceptions import MemcacheClientError

pytestmark = pytest.mark.memcached


def test_values_round_trip_over_plain_and_tls(memcached_service):
    key, value = f"k-{secrets.token_hex(4)}", secrets.token_hex(16).encode()
    plain = memcached_service.client(tls=False)
    secure = memcached_service.client(tls=True)
    try:
        assert plain.set(key, value, noreply=False) is True
        assert secure.get(key) == value  # one server behind both listeners
    finally:
        plain.close()
        secure.close()


def test_a_command_before_authentication_is_refused(memcached_service):
    """With ``-Y`` nothing but the authenticating ``set`` is served to a fresh connection."""
    from pymemcache.client.base import Client

    bare = Client((memcached_service.host, memcached_service.port), connect_timeout=3, timeout=5)
    try:
        with pytest.raises(MemcacheClientError, match="unauthenticated"):
            bare.get("anything")
    finally:
        bare.close()
