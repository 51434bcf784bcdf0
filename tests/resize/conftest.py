"""Shared set-up of the resize tests: the lifecycle tests' signed Stripe events and bought
Beacons, the Stripe mock and its recorder, and Hetzner's spec with change_type grafted in."""

from __future__ import annotations

import pytest

from billing.models import Price
from tests.api.conftest import stripe_calls, stripe_mock, stripe_mock_url  # noqa: F401
from tests.clock import clock_fixture  # noqa: F401  (the `clock` fixture, shared)
from tests.lifecycle.conftest import buy, deliver, post, sweep  # noqa: F401
from tests.selfservice.conftest import _provider_server, bearer, provider  # noqa: F401
from tests.vendor_spec import hetzner_spec_with

CHANGE_TYPE = "/servers/{id}/actions/change_type"


@pytest.fixture
def hetzner_spec(monkeypatch) -> None:
    """Validate Hetzner exchanges against the spec with change_type grafted in."""
    hetzner_spec_with(monkeypatch, CHANGE_TYPE)


@pytest.fixture
def priced(db) -> None:
    """Stripe price ids on the monthly test prices of the bundles these tests buy:
    `price_<bundle>_<tier>`."""
    for price in Price.objects.filter(
        bundle__slug__in=["starter", "creator"], period="monthly", mode="test"
    ).select_related("bundle", "tier"):
        price.stripe_price_id = f"price_{price.bundle.slug}_{price.tier.slug}"
        price.save(update_fields=["stripe_price_id"])
