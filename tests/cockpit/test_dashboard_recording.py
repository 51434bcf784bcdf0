"""The facts the dashboard's money panels read are recorded where they happen: the server's
monthly price when a Beacon is placed, and what the buyer paid when the session is paid."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings

from billing.models import Order
from billing.simulation import checkout_completed_event
from provisioning.models import Beacon, Provider, ProviderHealthCheck
from tests.factories import OrderFactory
from tests.test_flow import post_event

pytestmark = pytest.mark.django_db

SIZE_1 = "cpx22"  # the fake provider borrows Hetzner's names: size 1 (starter, t1)
LOCATION = "fake-eu-central"


def _buy(client, django_capture_on_commit_callbacks, **event):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(
            client, checkout_completed_event(**event), secret=settings.STRIPE_TEST_WEBHOOK_SECRET
        )
    assert response.status_code == 200


def test_placement_records_the_server_price_from_the_latest_priced_health_sweep(
    client, django_capture_on_commit_callbacks
):
    provider = Provider.objects.create(name="fake", kind="fake", health_status="healthy")
    ProviderHealthCheck.objects.create(
        provider=provider, status="healthy", prices={f"{SIZE_1}@{LOCATION}": "9.0000"}
    )
    ProviderHealthCheck.objects.create(
        provider=provider, status="healthy", prices={f"{SIZE_1}@{LOCATION}": "7.5900"}
    )
    ProviderHealthCheck.objects.create(provider=provider, status="critical")  # priced nothing

    _buy(client, django_capture_on_commit_callbacks, beacon_name="priced1")

    beacon = Beacon.objects.get(name="priced1")
    assert (beacon.server_size, beacon.provider_location) == (SIZE_1, LOCATION)
    assert beacon.server_monthly_cost == Decimal("7.5900")


def test_placement_without_a_priced_sweep_leaves_the_server_cost_unknown(
    client, django_capture_on_commit_callbacks
):
    provider = Provider.objects.create(name="fake", kind="fake", health_status="healthy")
    ProviderHealthCheck.objects.create(
        provider=provider, status="healthy", prices={f"cpx42@{LOCATION}": "30.0000"}
    )

    _buy(client, django_capture_on_commit_callbacks, beacon_name="unpriced1")

    beacon = Beacon.objects.get(name="unpriced1")
    assert beacon.status == "active"
    assert beacon.server_monthly_cost is None


def test_a_paid_session_records_its_amount_on_a_new_order(
    client, django_capture_on_commit_callbacks
):
    _buy(client, django_capture_on_commit_callbacks, beacon_name="paid1")

    order = Order.objects.get(beacon_name="paid1")
    assert (order.amount_cents, order.currency) == (1599, "usd")


def test_a_paid_session_records_its_amount_on_the_storefront_order(
    client, django_capture_on_commit_callbacks
):
    order = OrderFactory(
        beacon_name="shop1", status="pending", stripe_checkout_session_id=None, amount_cents=None
    )

    _buy(
        client,
        django_capture_on_commit_callbacks,
        beacon_name="shop1",
        order_id=str(order.pk),
    )

    order.refresh_from_db()
    assert (order.status, order.amount_cents, order.currency) == ("paid", 1599, "usd")


def test_the_order_changelist_shows_the_amount(admin_client):
    OrderFactory(beacon_name="amount1", amount_cents=1599, currency="usd")
    OrderFactory(beacon_name="amount2", amount_cents=None)

    body = admin_client.get("/admin/billing/order/").content.decode()

    assert "<th" in body and "Amount" in body
    assert "$15.99" in body
