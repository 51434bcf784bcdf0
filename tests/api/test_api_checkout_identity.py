"""Whose order is it: a typed e-mail proves nothing, so a checkout never borrows another
person's Customer or Stripe customer; Stripe customer ids are kept per mode; and a pending
order's beacon name is free again once its 30-minute Checkout Session can no longer be paid."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing import services
from billing.checkout import _stripe_customer_id, stripe_client
from billing.models import Order
from billing.simulation import checkout_completed_event, encode, sign
from provisioning.models import Beacon
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/checkout"
SESSIONS = "/v1/checkout/sessions"
CUSTOMERS = "/v1/customers"


# --- item 7: a typed e-mail borrows nothing ----------------------------------------------------


def test_two_people_typing_one_email_get_separate_customers_and_stripe_customers(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    first = post_json(URL, checkout_payload(beacon_name="ada-lab", name="Ada Lovelace"))
    # Prism answers every create with the same fixture session; a real Stripe would not.
    Order.objects.update(stripe_checkout_session_id="cs_test_first")
    second = post_json(
        URL, checkout_payload(beacon_name="mallory1", email="ADA@example.com", name="Mallory")
    )

    assert first.status_code == second.status_code == 201, second.content
    ada = Order.objects.get(pk=first.json()["order_id"])
    mallory = Order.objects.get(pk=second.json()["order_id"])
    assert mallory.customer_id != ada.customer_id
    assert list(ada.customer.orders.all()) == [ada]
    assert mallory.email == "ADA@example.com"  # the order keeps what was typed, for its e-mails
    first_session, second_session = stripe_calls.posts(SESSIONS)
    assert first_session.form["customer"] != second_session.form["customer"]
    assert [ada.stripe_customer_id, mallory.stripe_customer_id] == [
        first_session.form["customer"],
        second_session.form["customer"],
    ]
    assert ada.customer.stripe_test_customer_id == ada.stripe_customer_id
    assert mallory.customer.stripe_test_customer_id == mallory.stripe_customer_id
    assert len(stripe_calls.posts(CUSTOMERS)) == 2


def test_a_verified_customers_stripe_customer_is_not_lent_to_a_checkout_with_their_email(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    verified = CustomerFactory(
        email="ada@example.com",
        email_verified_at=timezone.now(),
        stripe_test_customer_id="cus_verified_ada",
    )

    response = post_json(URL, checkout_payload(email="ada@example.com"))

    assert response.status_code == 201, response.content
    order = Order.objects.get(pk=response.json()["order_id"])
    assert order.customer != verified
    assert order.customer.email_verified_at is None
    (session,) = stripe_calls.posts(SESSIONS)
    assert session.form["customer"] != "cus_verified_ada"
    assert order.stripe_customer_id == session.form["customer"]


def test_a_paid_session_sold_outside_the_storefront_does_not_join_a_customer_by_email(
    client, settings
):
    known = CustomerFactory(email="ada@example.com", email_verified_at=timezone.now())
    event = checkout_completed_event(beacon_name="outside1", email="ada@example.com")
    payload = encode(event)

    response = client.post(
        "/api/webhook/stripe",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, settings.STRIPE_TEST_WEBHOOK_SECRET),
    )

    assert response.status_code == 200
    beacon = Beacon.objects.select_related("order", "owner").get(name="outside1")
    assert beacon.owner != known
    assert beacon.order.customer == beacon.owner
    assert not known.orders.exists()
    stripe_customer = event["data"]["object"]["customer"]
    assert beacon.owner.stripe_test_customer_id == stripe_customer
    assert beacon.order.stripe_customer_id == stripe_customer


def test_stripe_customer_ids_are_kept_per_mode(settings, stripe_mock, stripe_calls):
    customer = CustomerFactory(stripe_test_customer_id="cus_test_side")
    settings.STRIPE_LIVE_MODE = True
    settings.STRIPE_LIVE_SECRET_KEY = "sk_live_123"

    live_id = _stripe_customer_id(stripe_client(), customer, mode="live")

    (created,) = stripe_calls.posts(CUSTOMERS)
    assert created.idempotency_key == f"wopr-customer-{customer.pk}-live"
    assert live_id == created.body["id"] != "cus_test_side"
    customer.refresh_from_db()
    assert (customer.stripe_test_customer_id, customer.stripe_live_customer_id) == (
        "cus_test_side",
        live_id,
    )
    # Each mode answers from its own column, without asking Stripe again.
    assert _stripe_customer_id(stripe_client(), customer, mode="test") == "cus_test_side"
    assert _stripe_customer_id(stripe_client(), customer, mode="live") == live_id
    assert len(stripe_calls.posts(CUSTOMERS)) == 1


def test_a_live_event_never_lands_on_the_customer_holding_that_id_in_test_mode():
    """Test and live are different Stripe accounts' objects: an id seen in one means nothing
    in the other."""
    test_side = CustomerFactory(stripe_test_customer_id="cus_same_string")

    live_side = services.customer_for_stripe_customer(
        stripe_customer_id="cus_same_string", mode="live", email="someone@example.com"
    )
    again = services.customer_for_stripe_customer(
        stripe_customer_id="cus_same_string", mode="test", email="other@example.com"
    )

    assert live_side != test_side
    assert live_side.stripe_live_customer_id == "cus_same_string"
    assert live_side.stripe_test_customer_id == ""
    assert again == test_side


# --- item 8: the name is held only while the 30-minute session can be paid ---------------------


def test_a_checkout_session_expires_thirty_minutes_after_it_is_created(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    before = timezone.now()

    response = post_json(URL, checkout_payload())

    assert response.status_code == 201, response.content
    (session,) = stripe_calls.posts(SESSIONS)
    assert session.violations == ""  # Stripe's spec accepts the parameter
    expires_at = int(session.form["expires_at"])
    # Stripe's minimum is 30 minutes after it creates the session; a minute more absorbs skew.
    expires = datetime.fromtimestamp(expires_at, tz=UTC)
    assert before + timedelta(minutes=30) < expires <= timezone.now() + timedelta(minutes=31)
    order = Order.objects.get(pk=response.json()["order_id"])
    assert int(order.checkout_expires_at.timestamp()) == expires_at


@pytest.fixture
def later(monkeypatch):
    """Move `timezone.now` forward by the given timedelta."""
    real_now = timezone.now

    def _later(delta: timedelta) -> None:
        monkeypatch.setattr(timezone, "now", lambda: real_now() + delta)

    return _later


def test_a_name_is_free_once_its_session_expired_even_if_the_expired_event_is_lost(
    post_json, checkout_payload, stripe_mock, api, later
):
    assert post_json(URL, checkout_payload(order_id=str(uuid.uuid4()))).status_code == 201

    later(timedelta(minutes=29))
    assert api.get("/api/v1/beacon-names/ada-lab").json()["reason"] == "taken"

    later(timedelta(minutes=32))  # no checkout.session.expired arrived
    assert api.get("/api/v1/beacon-names/ada-lab").json() == {
        "name": "ada-lab",
        "available": True,
        "reason": None,
    }
    Order.objects.update(stripe_checkout_session_id="cs_test_first")  # Prism's one fixture id
    other = post_json(URL, checkout_payload(email="bob@example.com", name="Bob"))
    assert other.status_code == 201, other.content


def test_a_repeat_after_the_session_window_asks_stripe_for_a_fresh_session(
    post_json, checkout_payload, stripe_mock, stripe_calls, later
):
    """A session whose answer was lost cannot be replayed once its expiry is too close: the
    repeat asks for a new one (new expiry, new idempotency key) instead of failing forever."""
    stripe_calls.replies[f"POST {SESSIONS}"] = (
        400,
        {"error": {"type": "invalid_request_error", "message": "try again"}},
        {"request-id": "req_failing_2"},
    )
    payload = checkout_payload(order_id=str(uuid.uuid4()))
    assert post_json(URL, payload).status_code == 502
    first_expiry = Order.objects.get(pk=payload["order_id"]).checkout_expires_at

    later(timedelta(minutes=5))
    retried = post_json(URL, payload)

    assert retried.status_code == 201, retried.content
    keys = [call.idempotency_key for call in stripe_calls.posts(SESSIONS)]
    order = Order.objects.get(pk=payload["order_id"])
    assert order.checkout_expires_at > first_expiry
    assert keys[-1] == f"wopr-checkout-{order.pk}-{int(order.checkout_expires_at.timestamp())}"
    assert keys[0] != keys[-1]
