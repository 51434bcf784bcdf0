"""The asking side of a tier change, against Prism serving Stripe's own spec: the subscription
is read for its item, then updated with the new price, prorated and paid first, under an
idempotency key of our own; what cannot be done is refused before Stripe is asked. And the
customer endpoint POST /api/v1/me/beacons/<id>/tier over it."""

from __future__ import annotations

import json

import pytest

from billing.models import Order, Price, Tier
from billing.selfservice import NotPossible, StripeFailed
from billing.tier_change import TierRefused, tier_change_request
from provisioning.models import Beacon

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("priced")]


@pytest.fixture
def bought(buy):
    """A Beacon on starter/t1 whose subscription Stripe called active."""
    bought = buy("ask1")
    Order.objects.filter(pk=bought.order.pk).update(subscription_status="active")
    return bought.refresh()


def tier(slug: str) -> Tier:
    return Tier.objects.get(slug=slug)


def test_the_update_names_the_item_the_new_price_proration_and_pay_first(
    bought, stripe_mock, stripe_calls
):
    change = tier_change_request(beacon=bought.beacon, tier=tier("t2"))

    get, post = stripe_calls.calls
    assert (get.method, get.path) == ("GET", f"/v1/subscriptions/{bought.subscription_id}")
    assert (post.method, post.path) == ("POST", f"/v1/subscriptions/{bought.subscription_id}")
    assert post.status == 200 and post.violations == ""
    assert post.form == {
        "items[0][id]": get.body["items"]["data"][0]["id"],
        "items[0][price]": "price_starter_t2",
        "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete",
    }
    assert post.idempotency_key.startswith(f"wopr-tier-{bought.order.pk}-t2-")
    assert change.state == "paid"  # Prism's subscription has no pending_update
    order = Order.objects.get(pk=bought.order.pk)
    assert order.tier.slug == "t1" and order.tier_change_to.slug == "t2"  # moves once paid


def test_a_retried_request_replays_the_same_key_and_another_tier_waits(
    bought, stripe_mock, stripe_calls
):
    tier_change_request(beacon=bought.beacon, tier=tier("t2"))
    tier_change_request(beacon=bought.beacon, tier=tier("t2"))
    with pytest.raises(NotPossible):
        tier_change_request(beacon=bought.beacon, tier=tier("t3"))

    first, again = stripe_calls.posts(f"/v1/subscriptions/{bought.subscription_id}")
    assert first.idempotency_key == again.idempotency_key


def test_a_refusal_by_stripe_forgets_the_claim(bought, stripe_mock, stripe_calls):
    declined = {"error": {"type": "card_error", "code": "card_declined", "message": "declined"}}
    path = f"/v1/subscriptions/{bought.subscription_id}"
    stripe_calls.replies[f"POST {path}"] = (402, declined, {})

    with pytest.raises(StripeFailed):
        tier_change_request(beacon=bought.beacon, tier=tier("t2"))

    order = Order.objects.get(pk=bought.order.pk)
    assert order.tier_change_to is None and order.tier.slug == "t1"
    tier_change_request(beacon=bought.beacon, tier=tier("t2"))  # may be asked again
    assert len(stripe_calls.posts(path)) == 2


def test_a_subscription_that_cannot_change_here_forgets_the_claim(
    bought, stripe_mock, stripe_calls
):
    """A subscription of two items is refused after the claim (its item is only known from
    Stripe's answer); the claim goes with it, so the Order is not locked for 23 hours."""
    path = f"/v1/subscriptions/{bought.subscription_id}"
    items = [{"id": "si_a", "object": "subscription_item"}, {"id": "si_b"}]
    two_items = {"id": bought.subscription_id, "object": "subscription", "items": {"data": items}}
    stripe_calls.replies[f"GET {path}"] = (200, two_items, {})

    with pytest.raises(NotPossible, match="contact support"):
        tier_change_request(beacon=bought.beacon, tier=tier("t2"))

    assert stripe_calls.posts(path) == []
    assert Order.objects.get(pk=bought.order.pk).tier_change_to is None
    tier_change_request(beacon=bought.beacon, tier=tier("t3"))  # another change may be asked
    assert Order.objects.get(pk=bought.order.pk).tier_change_to.slug == "t3"


def refused(beacon: Beacon, slug: str, error: type[Exception]) -> str:
    beacon.refresh_from_db()
    beacon.order.refresh_from_db()
    with pytest.raises(error) as caught:
        tier_change_request(beacon=beacon, tier=tier(slug))
    return str(caught.value)


def test_what_cannot_be_done_is_refused_before_stripe_is_asked(bought, stripe_mock, stripe_calls):
    Price.objects.filter(bundle__slug="starter", tier__slug="t3").update(amount_cents=0)
    beacon = bought.beacon

    same = refused(beacon, "t1", TierRefused)
    unsellable = refused(beacon, "t3", TierRefused)
    Order.objects.filter(pk=beacon.order_id).update(subscription_status="past_due")
    overdue = refused(beacon, "t2", NotPossible)
    Order.objects.filter(pk=beacon.order_id).update(subscription_status="active")
    Beacon.objects.filter(pk=beacon.pk).update(status="suspended")
    suspended = refused(beacon, "t2", NotPossible)
    Beacon.objects.filter(pk=beacon.pk).update(status="active", server_size="cpx32")
    Order.objects.filter(pk=beacon.order_id).update(tier=tier("t2"))
    shrink = refused(beacon, "t1", TierRefused)

    assert "already" in same and "cannot be bought" in unsellable
    assert "active subscription" in overdue and "running Beacon" in suspended
    assert "disk cannot shrink" in shrink
    assert stripe_calls.calls == []


# --- the endpoint --------------------------------------------------------------------------------


def tier_url(beacon_id: object) -> str:
    return f"/api/v1/me/beacons/{beacon_id}/tier"


def post(client, url: str, body: object, headers: dict[str, str]):
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


def test_the_customer_asks_for_a_tier_and_gets_202_with_where_it_stands(
    client, bearer, bought, stripe_mock, stripe_calls
):
    headers = bearer(email=bought.order.email, sub="subject-buyer")

    response = post(client, tier_url(bought.beacon.pk), {"tier": "t2"}, headers)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["tier"] == "t2" and body["state"] == "paid"
    assert body["beacon"]["tier"] == "t1" and body["beacon"]["pending_tier_change"] == "t2"
    assert len(stripe_calls.posts(f"/v1/subscriptions/{bought.subscription_id}")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tier": "t9"}, "tier"),
        ({"tier": "t1"}, "tier"),
        ({"tier": "t2", "x": 1}, "x"),
        ({}, "tier"),
    ],
)
def test_bad_input_is_400_with_the_field_and_nothing_asked(
    client, bearer, bought, stripe_mock, stripe_calls, body, field
):
    headers = bearer(email=bought.order.email, sub="subject-buyer")

    response = post(client, tier_url(bought.beacon.pk), body, headers)

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert stripe_calls.calls == []


def test_another_customers_beacon_is_404(client, bearer, bought, stripe_mock, stripe_calls):
    headers = bearer(email="someone-else@example.com", sub="subject-else")

    response = post(client, tier_url(bought.beacon.pk), {"tier": "t2"}, headers)

    assert response.status_code == 404
    assert stripe_calls.calls == []
