"""Fixtures of the Stripe-is-the-source-of-truth tests: Stripe's Prism mock (and its spec for
the paths the mock does not serve), a key per mode, and the order a dropped webhook was about."""

from __future__ import annotations

import pytest
import stripe

from tests.api.conftest import stripe_mock_url  # noqa: F401  (the session's Prism, shared)
from tests.stripetruth.stripe_wire import StripeWire, stripe_fixture, wire_install

TEST_KEY = "sk_test_" + "T" * 24
LIVE_KEY = "sk_live_" + "L" * 24


@pytest.fixture
def wire(settings, stripe_mock_url, monkeypatch) -> StripeWire:  # noqa: F811
    """Test mode with its key, every Stripe request checked against Stripe's spec.

    dj-stripe's own calls (the objects it syncs while processing an event) go through
    stripe-python's global client: pointed at the mock too. dj-stripe asks Stripe once per key
    which account it belongs to (`GET /v1/account`, a path the mock does not serve): Stripe's
    own example account answers, checked against the spec like every answer given here.
    """
    settings.STRIPE_API_BASE = stripe_mock_url
    settings.STRIPE_TEST_SECRET_KEY = TEST_KEY
    settings.STRIPE_LIVE_SECRET_KEY = LIVE_KEY
    settings.STRIPE_LIVE_MODE = False
    monkeypatch.setattr(stripe, "api_base", stripe_mock_url)
    recorder = StripeWire()
    recorder.standing["GET /v1/account"] = stripe_fixture("account")
    wire_install(monkeypatch, recorder)
    return recorder
