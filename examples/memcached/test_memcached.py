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


def test_a_server_that_hangs_up_reads_as_the_plaintext_refusal():
    """The strict suite's refusal for this service is "the server hung up on a plaintext command". A local fake that
    accepts and closes without a word must surface as that one error, whichever way the close reaches the client."""
    import socket
    import threading

    from memcached_service import MemcachedEndpoint

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    fake = MemcachedEndpoint(host="127.0.0.1", port=port, user="u", password="not-a-secret", container_name="fake",
                             alias="fake-memcached")
    try:
        with pytest.raises(ConnectionAbortedError, match="fake-memcached: the server closed the connection"):
            fake.client(tls=False)
    finally:
        listener.close()
