"""DEFAULT_REGION: a paid session whose metadata names a valid bundle and tier but no region is
honoured in the default region (SPEC §3), and a default outside the catalogue stops start-up."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

from billing.models import Order
from billing.simulation import checkout_completed_event, encode, sign
from provisioning.models import Beacon

pytestmark = pytest.mark.django_db


def _deliver_session_without_region(client, settings, name: str) -> Order:
    event = checkout_completed_event(beacon_name=name)
    del event["data"]["object"]["metadata"]["wopr_region"]
    payload = encode(event)
    response = client.post(
        "/api/webhook/stripe",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, settings.STRIPE_TEST_WEBHOOK_SECRET),
    )
    assert response.status_code == 200, response.content
    return Order.objects.get(stripe_checkout_session_id=event["data"]["object"]["id"])


def test_a_session_without_a_region_is_provisioned_in_the_default_region(client, settings):
    settings.DEFAULT_REGION = "us-west"

    order = _deliver_session_without_region(client, settings, "noregion1")

    assert (order.needs_attention, order.attention_reason) == (False, "")
    assert order.region == "us-west"
    assert Beacon.objects.get(order=order).region == "us-west"


def test_without_a_default_region_such_a_session_is_flagged_for_staff(client, settings):
    settings.DEFAULT_REGION = ""

    order = _deliver_session_without_region(client, settings, "noregion2")

    assert order.needs_attention
    assert "unknown region" in order.attention_reason
    assert not Beacon.objects.filter(order=order).exists()


def test_a_default_region_outside_the_catalogue_stops_start_up(settings):
    settings.DEFAULT_REGION = "mars-north"

    errors = [m for m in run_checks(tags=["wopr"]) if m.id == "wopr.E060"]

    assert len(errors) == 1
    assert "DEFAULT_REGION" in errors[0].msg
    assert "eu-central" in errors[0].msg


@pytest.mark.parametrize("region", ["eu-central", "us-east", ""])
def test_a_catalogue_region_or_none_passes_the_check(settings, region):
    settings.DEFAULT_REGION = region

    assert not [m for m in run_checks(tags=["wopr"]) if m.id == "wopr.E060"]
