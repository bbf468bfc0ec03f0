"""Strict mode (``tls_strict``, stored in Vault): a second stack whose services serve TLS only. The server itself
says it serves TLS only, refuses plaintext with its own transport error (not a login refusal: that would mean a
plaintext listener read the credentials), and the same client over TLS (full verification) still works.

Every service whose driver has sessions and TLS-only evidence (:class:`stack.driver.ServiceDriver`) is covered
without an edit here."""

from __future__ import annotations

import pytest

from harness.plugin import service_params
from stack import registry

pytestmark = [pytest.mark.tls, pytest.mark.own_stack]
STRICT = [name for name in registry.with_capability("tls")
          if registry.get(name).driver.has("session") and registry.get(name).driver.has("tls_only_evidence")]


def _strict(strict_stack, name):
    reason = strict_stack.unavailable_reason(name)
    if reason is not None:
        pytest.skip(reason=f"{name} unavailable here: {reason}")
    endpoint = strict_stack.endpoint(name)
    assert endpoint.tls is not None and endpoint.tls.strict, f"{name} did not start in strict mode"
    secret = strict_stack.endpoint("vault").client().secrets.kv.v2.read_secret_version(
        path=name, mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    assert secret["tls_strict"] is True, "the strict stack's Vault does not record tls_strict for the service"
    return endpoint


@pytest.mark.parametrize("name", service_params(STRICT))
def test_strict_refuses_plaintext(strict_stack, name):
    endpoint = _strict(strict_stack, name)
    driver = registry.get(name).driver
    # Evidence first: the server is alive over TLS and says it serves TLS only, so the refusal below is the policy
    # and not a dead server.
    print(f"{name}: {driver.tls_only_evidence(endpoint)}")
    with driver.session(endpoint, tls=True) as secure:
        assert secure.is_tls() is True
    refusal = driver.plaintext_refusal
    assert refusal is not None, f"{name}: its driver names no plaintext_refusal"
    with pytest.raises(refusal.error, match=refusal.match) as refused, driver.session(endpoint, tls=False) as plain:
        plain.whoami()
    assert not isinstance(refused.value, refusal.not_as), f"{name}: refused as {type(refused.value).__name__}"


@pytest.mark.redis
def test_redis_strict_cluster_client_works_over_tls(strict_stack):
    """The Redis cluster's own: a cluster client follows the TLS ports the nodes announce."""
    ep = _strict(strict_stack, "redis")
    cluster = ep.client(tls=True)
    try:
        cluster.set("strict-probe", "1", ex=60)
        assert cluster.get("strict-probe") == "1"
        assert cluster.cluster_info()["cluster_state"] == "ok"
    finally:
        cluster.close()
