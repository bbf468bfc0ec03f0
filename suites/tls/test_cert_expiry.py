"""Expiry: every listener's served certificate has at least ``HARNESS_TLS_MIN_DAYS_LEFT`` days left and no
more than the PKI role allows."""

from __future__ import annotations

import pytest

from harness.plugin import service_params
from harness.trust.bootstrap import ttl_seconds
from harness.trust.certs import status, tls_row
from stack import registry

pytestmark = pytest.mark.tls

SERVICES = registry.with_capability("tls")


@pytest.mark.parametrize("service", service_params(SERVICES))
def test_days_left_within_bounds(request, harness_stack, tls_results, service):
    request.getfixturevalue(f"{service}_service")
    settings = harness_stack.settings
    rows = status({service: harness_stack.endpoint(service)})
    tls_results.extend(tls_row(row, settings.tls_min_days_left) for row in rows)  # the HTML report's TLS table
    assert rows, f"{service} has no TLS listener"
    max_days = ttl_seconds(settings.pki_leaf_max_ttl) / 86400
    for row in rows:
        assert not isinstance(row, tuple), f"{row[0].alias}: {row[1]}"
        assert row.matches
        assert settings.tls_min_days_left <= row.days_left <= max_days, (
            f"{row.target.alias}: {row.days_left:.2f} days left (minimum {settings.tls_min_days_left}, "
            f"role maximum {max_days:.0f})")
