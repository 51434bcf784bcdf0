"""Fixtures of the drift tests (issue 13, item 6): the life-after-purchase story fixtures
(clock, deliver, buy, sweep), the storefront's API client and Stripe mock, and `reconcile`."""

from __future__ import annotations

from tests.api.conftest import (  # noqa: F401  (fixtures, shared)
    _fresh_throttle,
    api,
    checkout_payload,
    post_json,
    stripe_calls,
    stripe_mock,
    stripe_mock_url,
)
from tests.clock import clock_fixture  # noqa: F401  (the `clock` fixture, shared)
from tests.lifecycle.conftest import buy, deliver, post, reconcile, sweep  # noqa: F401  (fixtures, shared)
