"""POST /api/v1/checkout: validation, the Stripe Checkout Session (against Stripe's own spec,
served by Prism), repeats that create nothing twice, and expiry freeing the name."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Customer, Order, OrderStatus, Price
from billing.simulation import checkout_completed_event, encode, sign
from provisioning.models import HealthStatus, Provider
from tests.factories import BeaconFactory, OrderFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/checkout"
SESSIONS = "/v1/checkout/sessions"
CUSTOMERS = "/v1/customers"


def field_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    return error["fields"]


# --- validation (no Stripe needed: field errors come first) -------------------------------


def _name_held_by_pending_order() -> None:
    OrderFactory(beacon_name="held", status=OrderStatus.PENDING)


def _name_taken_by_beacon() -> None:
    BeaconFactory(name="taken1", order__beacon_name="taken1")


def _fake_provider_critical() -> None:
    Provider.objects.update_or_create(
        name="fake", defaults={"kind": "fake", "health_status": HealthStatus.CRITICAL}
    )


@pytest.mark.parametrize(
    ("changes", "setup", "field"),
    [
        ({"bundle": "no_such_bundle"}, None, "bundle"),
        ({"tier": "t4"}, None, "tier"),
        ({"bundle": "enterprise", "tier": "t3"}, None, "tier"),
        ({"bundle": "enterprise", "tier": "t3", "period": "yearly"}, None, "tier"),
        ({"period": "weekly"}, None, "period"),
        ({"beacon_name": "admin"}, None, "beacon_name"),
        ({"beacon_name": "taken1"}, _name_taken_by_beacon, "beacon_name"),
        ({"beacon_name": "held"}, _name_held_by_pending_order, "beacon_name"),
        ({"beacon_name": "Not_A_Label"}, None, "beacon_name"),
        ({"beacon_name": "ab"}, None, "beacon_name"),
        ({"email": "not-an-email"}, None, "email"),
        ({"email": None}, None, "email"),
        ({"region": "mars-north"}, None, "region"),
        ({"region": "eu-central"}, _fake_provider_critical, "region"),
        ({"custom_domain": "not a host"}, None, "custom_domain"),
        ({"custom_domain": "localhost"}, None, "custom_domain"),
        ({"custom_domain": "x.beacons.test"}, None, "custom_domain"),
        ({"order_id": "not-a-uuid"}, None, "order_id"),
    ],
    ids=[
        "unknown-bundle",
        "tier-t4",
        "enterprise-t3-not-sellable",
        "enterprise-t3-yearly-not-sellable",
        "unknown-period",
        "reserved-name",
        "name-of-a-beacon",
        "name-held-by-a-pending-order",
        "invalid-name",
        "too-short-name",
        "bad-email",
        "missing-email",
        "unknown-region",
        "region-without-healthy-provider",
        "bad-custom-domain",
        "single-label-custom-domain",
        "custom-domain-under-our-base-domain",
        "bad-order-id",
    ],
)
def test_bad_checkout_is_refused_with_the_field_named(
    post_json, checkout_payload, settings, changes, setup, field
):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_123"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # never reached: validation fails first
    if setup:
        setup()
    orders = Order.objects.count()

    response = post_json(URL, checkout_payload(**changes))

    fields = field_errors(response)
    assert field in fields, fields
    assert all(isinstance(message, str) and message for message in fields[field])
    assert Order.objects.count() == orders


def test_every_bad_field_is_reported_at_once(post_json, checkout_payload):
    response = post_json(URL, checkout_payload(bundle="nope", email="x", beacon_name="www"))

    assert set(field_errors(response)) == {"bundle", "email", "beacon_name"}


def test_body_that_is_not_an_object_is_refused(post_json):
    response = post_json(URL, ["starter"])

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_malformed_json_is_refused_with_the_error_body(api):
    response = api.post(URL, b"{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_a_name_held_by_an_expired_or_stale_order_is_free(post_json, checkout_payload, settings):
    OrderFactory(beacon_name="old1", status=OrderStatus.EXPIRED)
    stale = OrderFactory(
        beacon_name="old2", status=OrderStatus.PENDING, stripe_checkout_session_id=None
    )
    Order.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    day_old = OrderFactory(beacon_name="old3", status=OrderStatus.PENDING)
    Order.objects.filter(pk=day_old.pk).update(created_at=timezone.now() - timedelta(hours=25))

    for name in ("old1", "old2", "old3"):
        response = post_json(URL, checkout_payload(beacon_name=name))
        assert response.status_code == 503, (name, response.content)  # valid; checkout is off


# --- checkout disabled ---------------------------------------------------------------------


def test_checkout_without_a_stripe_key_is_disabled(post_json, checkout_payload, stripe_calls):
    response = post_json(URL, checkout_payload())

    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "code": "checkout_disabled",
            "message": "Checkout is disabled: no Stripe key is configured.",
            "fields": {},
        }
    }
    assert not Order.objects.exists()
    assert stripe_calls.calls == []


def test_live_mode_without_the_live_key_is_disabled(post_json, checkout_payload, settings):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_123"
    settings.STRIPE_LIVE_MODE = True

    assert post_json(URL, checkout_payload()).status_code == 503


# --- against Stripe's spec (Prism) ---------------------------------------------------------


def test_checkout_creates_a_session_that_stripes_spec_accepts(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    order_id = str(uuid.uuid4())

    response = post_json(
        URL, checkout_payload(order_id=order_id, custom_domain="Cloud.Example.org.")
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"order_id", "checkout_url", "session_id"}
    assert body["order_id"] == order_id
    assert body["checkout_url"].startswith("https://checkout.stripe.com/")
    order = Order.objects.get(pk=order_id)
    assert order.status == OrderStatus.PENDING
    assert order.stripe_checkout_session_id == body["session_id"]
    assert order.stripe_mode == "test"
    assert order.custom_domain == "cloud.example.org"
    # Every request passed the spec's validation.
    assert [(call.path, call.status, call.violations) for call in stripe_calls.calls] == [
        (CUSTOMERS, 200, ""),
        (SESSIONS, 200, ""),
    ]
    customer_call, session_call = stripe_calls.calls
    customer = Customer.objects.get(email="ada@example.com")
    assert order.customer == customer
    assert customer.email_verified_at is None  # nobody has proven they own the address
    assert customer_call.idempotency_key == f"wopr-customer-{customer.pk}-test"
    assert customer_call.form == {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "metadata[wopr_customer_id]": str(customer.pk),
    }
    assert customer.stripe_test_customer_id == customer_call.body["id"]
    assert customer.stripe_live_customer_id == ""
    assert order.stripe_customer_id == customer.stripe_test_customer_id
    expires_at = int(order.checkout_expires_at.timestamp())
    assert session_call.idempotency_key == f"wopr-checkout-{order_id}-{expires_at}"
    form = session_call.form
    assert form["mode"] == "subscription"
    assert form["client_reference_id"] == order_id
    assert form["customer"] == customer.stripe_test_customer_id
    assert form["expires_at"] == str(expires_at)
    assert "customer_email" not in form
    expected = {
        "wopr_order_id": order_id,
        "wopr_bundle": "starter",
        "wopr_tier": "t1",
        "wopr_period": "monthly",
        "wopr_beacon_name": "ada-lab",
        "wopr_region": "eu-central",
        "wopr_custom_domain": "cloud.example.org",
    }
    for key, value in expected.items():
        assert form[f"metadata[{key}]"] == value
        assert form[f"subscription_data[metadata][{key}]"] == value
    # No Stripe price id set by staff: the price is described inline.
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][unit_amount]"] == "1599"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][price_data][recurring][interval]"] == "month"
    assert "Starter" in form["line_items[0][price_data][product_data][name]"]
    assert form["success_url"] == f"http://127.0.0.1:8001/api/v1/orders/{order_id}"
    assert form["cancel_url"] == f"http://127.0.0.1:8001/api/v1/orders/{order_id}"


def test_repeating_a_checkout_creates_no_second_session(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    payload = checkout_payload(order_id=str(uuid.uuid4()))

    first = post_json(URL, payload)
    second = post_json(URL, payload)
    third = post_json(URL, payload)

    assert first.status_code == second.status_code == third.status_code == 201
    assert first.json() == second.json() == third.json()
    assert len(stripe_calls.posts(SESSIONS)) == 1
    assert len(stripe_calls.posts(CUSTOMERS)) == 1
    assert Order.objects.count() == 1


def test_without_an_order_id_each_checkout_is_a_new_order(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    first = post_json(URL, checkout_payload(beacon_name="first1"))
    # Prism answers every create with the same fixture session; a real Stripe would not.
    Order.objects.update(stripe_checkout_session_id="cs_test_elsewhere")
    second = post_json(URL, checkout_payload(beacon_name="second2"))

    assert first.status_code == second.status_code == 201
    assert first.json()["order_id"] != second.json()["order_id"]
    assert len(stripe_calls.posts(SESSIONS)) == 2
    # The same e-mail proves nothing: each checkout has its own Customer and Stripe customer.
    assert len(stripe_calls.posts(CUSTOMERS)) == 2
    assert Customer.objects.count() == 2


def test_a_repeat_with_other_details_is_refused(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    order_id = str(uuid.uuid4())
    assert post_json(URL, checkout_payload(order_id=order_id)).status_code == 201

    response = post_json(URL, checkout_payload(order_id=order_id, email="mallory@example.com"))

    assert "order_id" in field_errors(response)
    assert len(stripe_calls.posts(SESSIONS)) == 1


def test_a_repeat_of_a_paid_order_is_refused(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    order_id = str(uuid.uuid4())
    assert post_json(URL, checkout_payload(order_id=order_id)).status_code == 201
    Order.objects.filter(pk=order_id).update(status=OrderStatus.PAID)

    response = post_json(URL, checkout_payload(order_id=order_id))

    assert "order_id" in field_errors(response)


def test_a_staff_set_stripe_price_is_used(post_json, checkout_payload, stripe_mock, stripe_calls):
    Price.objects.filter(
        bundle__slug="starter", tier__slug="t2", period="yearly", mode="test"
    ).update(stripe_price_id="price_starter_t2_yearly")

    response = post_json(URL, checkout_payload(tier="t2", period="yearly"))

    assert response.status_code == 201, response.content
    (session_call,) = stripe_calls.posts(SESSIONS)
    assert session_call.form["line_items[0][price]"] == "price_starter_t2_yearly"
    assert not any("price_data" in key for key in session_call.form)


def test_a_checkout_with_a_known_email_never_uses_that_customers_stripe_customer(
    post_json, checkout_payload, stripe_mock, stripe_calls
):
    known = Customer.objects.create(
        email="Ada@Example.com", stripe_test_customer_id="cus_known", email_verified_at=None
    )

    response = post_json(URL, checkout_payload(email="ada@example.COM"))

    assert response.status_code == 201
    (customer_call,) = stripe_calls.posts(CUSTOMERS)
    assert stripe_calls.posts(SESSIONS)[0].form["customer"] == customer_call.body["id"]
    assert customer_call.body["id"] != "cus_known"
    order = Order.objects.get(pk=response.json()["order_id"])
    assert order.customer != known
    assert not known.orders.exists()


def test_a_stripe_failure_answers_502_and_a_repeat_uses_the_same_idempotency_key(
    post_json, checkout_payload, stripe_mock, stripe_calls, caplog
):
    stripe_calls.replies[f"POST {SESSIONS}"] = (
        400,
        {"error": {"type": "invalid_request_error", "message": "No such price: 'sk_test_123'"}},
        {"request-id": "req_failing_1"},
    )
    payload = checkout_payload(order_id=str(uuid.uuid4()))

    with caplog.at_level(logging.WARNING, logger="billing.checkout"):
        failed = post_json(URL, payload)

    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "payment_provider_error"
    assert "price" not in failed.json()["error"]["message"]
    assert "req_failing_1" in caplog.text
    assert "sk_test_123" not in caplog.text
    order = Order.objects.get(pk=payload["order_id"])
    assert (order.status, order.stripe_checkout_session_id) == ("pending", None)

    retried = post_json(URL, payload)

    assert retried.status_code == 201
    keys = [call.idempotency_key for call in stripe_calls.posts(SESSIONS)]
    expires_at = int(Order.objects.get(pk=payload["order_id"]).checkout_expires_at.timestamp())
    assert keys == [f"wopr-checkout-{payload['order_id']}-{expires_at}"] * 2


def test_a_name_in_checkout_is_taken_for_others_but_free_for_the_repeat(
    post_json, checkout_payload, stripe_mock, api
):
    order_id = str(uuid.uuid4())
    assert post_json(URL, checkout_payload(order_id=order_id)).status_code == 201

    other = post_json(URL, checkout_payload(email="bob@example.com"))

    assert "beacon_name" in field_errors(other)
    assert api.get("/api/v1/beacon-names/ada-lab").json()["reason"] == "taken"
    assert post_json(URL, checkout_payload(order_id=order_id)).status_code == 201


# --- expiry --------------------------------------------------------------------------------


def test_an_expired_session_expires_the_order_and_frees_the_name(
    client, settings, post_json, checkout_payload, stripe_mock, api
):
    order_id = str(uuid.uuid4())
    started = post_json(URL, checkout_payload(order_id=order_id)).json()
    settings.STRIPE_TEST_SECRET_KEY = ""  # the webhook's offline path: no Stripe re-fetch
    event = checkout_completed_event(
        event_type="checkout.session.expired",
        session_id=started["session_id"],
        order_id=order_id,
        beacon_name="ada-lab",
        payment_status="unpaid",
    )
    payload = encode(event)

    for _ in range(2):  # a redelivery changes nothing
        response = client.post(
            "/api/webhook/stripe",
            payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sign(payload, settings.STRIPE_TEST_WEBHOOK_SECRET),
        )
        assert response.status_code == 200

    assert Order.objects.get(pk=order_id).status == OrderStatus.EXPIRED
    assert api.get("/api/v1/beacon-names/ada-lab").json() == {
        "name": "ada-lab",
        "available": True,
        "reason": None,
    }


def test_an_expired_session_never_expires_a_paid_order():
    from billing.checkout import checkout_session_expired

    order = OrderFactory(status=OrderStatus.PAID, stripe_checkout_session_id="cs_test_paid")

    assert checkout_session_expired(session={"id": "cs_test_paid", "metadata": {}}) is False
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
