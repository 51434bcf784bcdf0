"""The cockpit tests' purchase: a signed checkout through dj-stripe's real webhook view
(tests/test_flow.post_event), its enqueued work run inline, the Beacon active on the fake cloud."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings

from billing.simulation import checkout_completed_event
from provisioning.models import Beacon, BeaconStatus
from tests.test_flow import post_event


@pytest.fixture
def buy(client, django_capture_on_commit_callbacks) -> Callable[..., Beacon]:
    """A Beacon bought through a signed checkout event and provisioned on the fake cloud."""

    def _buy(name: str, **kwargs) -> Beacon:
        event = checkout_completed_event(beacon_name=name, **kwargs)
        with django_capture_on_commit_callbacks(execute=True):
            response = post_event(client, event, secret=settings.STRIPE_TEST_WEBHOOK_SECRET)
        assert response.status_code == 200, response.content[:300]
        beacon = Beacon.objects.select_related("order").get(name=name)
        assert beacon.status == BeaconStatus.ACTIVE
        return beacon

    return _buy
