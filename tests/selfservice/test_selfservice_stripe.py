"""The billing portal, cancel at period end and its undo, against the Prism mock serving
Stripe's own OpenAPI spec: each request is one Stripe accepts, carries an idempotency key made
from our row, and the Order follows Stripe's answer (and later Stripe's events)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Order
from billing.subscriptions import subscription_event_record
from tests.factories import BeaconFactory, CustomerFactory

pytestmark = pytest.mark.django_db

SUB = "sub_selfservice1"


@pytest.fixture
def beacon(stripe_mock, stripe_subscriptions):
    """Ada's active Beacon with a paid monthly subscription twenty days from its period end."""
    period_end = timezone.now() + timedelta(days=20)
    stripe_subscriptions[SUB] = {
        "id": SUB,
        "status": "active",
        "cancel_at_period_end": False,
        "current_period_end": int(period_end.timestamp()),
    }
    return BeaconFactory(
        order__customer=CustomerFactory(email="ada@example.com"),
        order__stripe_customer_id="cus_selfservice1",
        order__stripe_subscription_id=SUB,
        order__subscription_status="active",
        order__subscription_status_at=timezone.now() - timedelta(days=10),
        order__subscription_period_end=period_end,
    )


def post(client, url: str, headers: dict, body: str = "{}"):
    return client.post(url, body, content_type="application/json", **headers)


def url(beacon, action: str) -> str:
    return f"/api/v1/me/beacons/{beacon.pk}/{action}"


def test_the_billing_portal_opens_for_the_orders_stripe_customer(
    client, bearer, beacon, stripe_calls, settings
):
    settings.SELFSERVICE_RETURN_URL = "https://shop.example.com/account"
    response = post(client, url(beacon, "billing-portal"), bearer())
    assert response.status_code == 200, response.content
    assert response.json()["url"].startswith("https://")
    (call,) = stripe_calls.posts("/v1/billing_portal/sessions")
    assert call.status == 200 and call.violations == ""
    assert call.form == {
        "customer": "cus_selfservice1",
        "return_url": "https://shop.example.com/account",
    }
    assert call.idempotency_key.startswith(f"wopr-portal-{beacon.order.pk}-")


def test_cancel_at_period_end_and_undo_follow_stripe(client, bearer, beacon, stripe_calls):
    response = post(client, url(beacon, "cancel"), bearer())
    assert response.status_code == 200, response.content
    assert response.json()["cancel_at_period_end"] is True
    order = Order.objects.get(pk=beacon.order.pk)
    assert order.subscription_cancel_at_period_end is True
    assert order.subscription_status == "active"

    again = post(client, url(beacon, "cancel"), bearer())  # already so: Stripe is not asked
    assert again.status_code == 200 and again.json()["cancel_at_period_end"] is True

    undo = client.delete(url(beacon, "cancel"), **bearer())
    assert undo.status_code == 200, undo.content
    assert undo.json()["cancel_at_period_end"] is False
    assert not Order.objects.get(pk=beacon.order.pk).subscription_cancel_at_period_end

    cancel, keep = stripe_calls.posts(f"/v1/subscriptions/{SUB}")
    assert (cancel.form, keep.form) == (
        {"cancel_at_period_end": "true"},
        {"cancel_at_period_end": "false"},
    )
    assert cancel.status == keep.status == 200
    assert cancel.violations == keep.violations == ""
    assert cancel.idempotency_key.startswith(f"wopr-cancel-{order.pk}-on-")
    assert keep.idempotency_key.startswith(f"wopr-cancel-{order.pk}-off-")

    # Changing one's mind again is a new request to Stripe, not a replay of the first.
    assert post(client, url(beacon, "cancel"), bearer()).json()["cancel_at_period_end"] is True
    third = stripe_calls.posts(f"/v1/subscriptions/{SUB}")[2]
    assert third.idempotency_key != cancel.idempotency_key


def test_a_retry_after_a_stripe_failure_repeats_the_same_idempotency_key(
    client, bearer, beacon, stripe_calls
):
    error = {"error": {"type": "invalid_request_error", "message": "try later"}}
    stripe_calls.replies[f"POST /v1/subscriptions/{SUB}"] = (400, error, {})
    first = post(client, url(beacon, "cancel"), bearer())
    assert first.status_code == 502
    assert "nothing changed" in first.json()["error"]["message"]
    assert not Order.objects.get(pk=beacon.order.pk).subscription_cancel_at_period_end
    assert post(client, url(beacon, "cancel"), bearer()).status_code == 200
    failed, retried = stripe_calls.posts(f"/v1/subscriptions/{SUB}")
    # Our row did not change in between: the same key, so Stripe applies the update once
    # even if the first request had reached it.
    assert failed.idempotency_key == retried.idempotency_key


def test_an_ended_subscription_is_refused_without_asking_stripe(
    client, bearer, beacon, stripe_calls
):
    Order.objects.filter(pk=beacon.order.pk).update(
        subscription_status="canceled", subscription_ended_at=timezone.now()
    )
    for response in [
        post(client, url(beacon, "cancel"), bearer()),
        client.delete(url(beacon, "cancel"), **bearer()),
    ]:
        assert response.status_code == 409
        assert response.json()["error"]["message"] == "The subscription has already ended."
    assert stripe_calls.calls == []


def test_undo_is_refused_once_the_period_is_over(client, bearer, beacon, stripe_calls):
    Order.objects.filter(pk=beacon.order.pk).update(
        subscription_cancel_at_period_end=True,
        subscription_period_end=timezone.now() - timedelta(minutes=1),
    )
    response = client.delete(url(beacon, "cancel"), **bearer())
    assert response.status_code == 409
    assert "period is over" in response.json()["error"]["message"]
    assert stripe_calls.calls == []


def test_a_beacon_without_subscription_or_stripe_customer_is_409(client, bearer, beacon):
    Order.objects.filter(pk=beacon.order.pk).update(
        stripe_subscription_id=None, stripe_customer_id=""
    )
    assert post(client, url(beacon, "cancel"), bearer()).status_code == 409
    assert post(client, url(beacon, "billing-portal"), bearer()).status_code == 409


def test_without_a_stripe_key_the_stripe_operations_are_503(client, bearer, beacon, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""
    assert post(client, url(beacon, "billing-portal"), bearer()).status_code == 503
    assert post(client, url(beacon, "cancel"), bearer()).status_code == 503


def test_a_stripe_refusal_is_502_and_changes_nothing(client, bearer, beacon, stripe_calls):
    error = {"error": {"type": "invalid_request_error", "message": "No such customer"}}
    stripe_calls.replies["POST /v1/billing_portal/sessions"] = (400, error, {})
    response = post(client, url(beacon, "billing-portal"), bearer())
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_gateway"
    assert "No such customer" not in response.content.decode()


def test_unknown_input_is_400_with_field_errors(client, bearer, beacon, stripe_calls):
    response = post(client, url(beacon, "cancel"), bearer(), body='{"at_once": true}')
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"at_once": ["Unknown field."]}
    assert post(client, url(beacon, "cancel"), bearer(), body="[1]").status_code == 400
    assert post(client, url(beacon, "cancel"), bearer(), body="{").status_code == 400
    assert stripe_calls.calls == []


def test_subscription_events_carry_cancel_at_period_end_to_the_order(beacon, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""  # offline: the event's own object counts
    subscription = {"id": SUB, "status": "active", "cancel_at_period_end": True}
    subscription_event_record(
        subscription=subscription, deleted=False, event_created=timezone.now(), livemode=False
    )
    assert Order.objects.get(pk=beacon.order.pk).subscription_cancel_at_period_end is True
    old = {**subscription, "cancel_at_period_end": False}
    subscription_event_record(  # older than what we hold: ignored
        subscription=old,
        deleted=False,
        event_created=timezone.now() - timedelta(days=1),
        livemode=False,
    )
    assert Order.objects.get(pk=beacon.order.pk).subscription_cancel_at_period_end is True
