"""Paying subscriptions for our catalogue that no Order knows are reported for a human, never
cancelled; the subscriptions list requests conform to Stripe's spec (the Prism mock)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from billing.models import Price
from billing.stripe_sync import subscriptions_unmatched
from operations.reconcile import reconcile_run
from tests.factories import OrderFactory
from tests.stripetruth.stripe_wire import event_list, stripe_fixture

pytestmark = pytest.mark.django_db
SUBSCRIPTIONS = "GET /v1/subscriptions"
OUR_PRICE = "price_wopr_starter_t1_monthly_test"


def subscription(sub_id: str, *, price: str, status: str = "active", **metadata: str):
    """Stripe's own example subscription, with one item on `price`."""
    body = copy.deepcopy(stripe_fixture("subscription", id=sub_id, status=status))
    body["metadata"] = metadata
    body["items"]["data"][0]["price"]["id"] = price
    body["items"]["data"][0]["subscription"] = sub_id
    return body


def page(*subscriptions: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(subscriptions),
        "has_more": has_more,
        "url": "/v1/subscriptions",
    }


@pytest.fixture
def our_price(db) -> str:
    Price.objects.filter(
        bundle__slug="starter", tier__slug="t1", period="monthly", mode="test"
    ).update(stripe_price_id=OUR_PRICE)
    return OUR_PRICE


def test_a_subscription_for_our_price_without_an_order_is_reported(wire, our_price):
    OrderFactory(stripe_subscription_id="sub_known")
    wire.answer(
        SUBSCRIPTIONS,
        page(
            subscription("sub_known", price=our_price),
            subscription("sub_lonely", price=our_price),
            has_more=True,
        ),
    )
    wire.answer(SUBSCRIPTIONS, page(subscription("sub_foreign", price="price_someone_elses")))
    wire.answer(
        SUBSCRIPTIONS,
        page(
            subscription("sub_named", price="price_inline", status="trialing", wopr_order_id="o1")
        ),
    )

    unmatched = subscriptions_unmatched()

    assert [(s.id, s.status) for s in unmatched] == [
        ("sub_lonely", "active"),
        ("sub_named", "trialing"),
    ]
    assert "wopr order o1" in unmatched[1].why_ours
    active, active_next, trialing = wire.to("GET", "/v1/subscriptions")
    assert [c.param("status") for c in (active, active_next, trialing)] == [
        "active",
        "active",
        "trialing",
    ]
    assert active_next.param("starting_after") == "sub_lonely"
    assert wire.problems() == []


def test_reconcile_reports_it_for_a_human_and_cancels_nothing(wire, our_price):
    wire.answer("GET /v1/events", event_list())
    wire.answer(SUBSCRIPTIONS, page(subscription("sub_lonely", price=our_price)))
    wire.answer(SUBSCRIPTIONS, page())

    run = reconcile_run(fix=True)

    [finding] = [f for f in run.findings if f["kind"] == "unmatched_subscription"]
    assert (finding["id"], finding["status"]) == ("sub_lonely", "open")
    assert run.needs_human
    assert [c.method for c in wire.calls] == ["GET"] * len(wire.calls)  # nothing cancelled


def test_the_subscriptions_list_request_conforms_to_stripes_spec(wire, our_price):
    """Prism's own answer (its example subscription, on a price that is not ours)."""
    assert subscriptions_unmatched() == []

    calls = wire.to("GET", "/v1/subscriptions")
    assert [(c.status, c.problems, c.param("status")) for c in calls] == [
        (200, [], "active"),
        (200, [], "trialing"),
    ]
