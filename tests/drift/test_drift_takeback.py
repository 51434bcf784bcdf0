"""A new checkout for the same Beacon name during the cancellation grace period takes the Beacon
back for the same customer (as a resubscription naming the Order does): the Beacon moves to the
new Order, its decommission is cancelled, its server powered on, no second server made. Anyone
else is refused at checkout, and a paid stranger gets nothing of it."""

from __future__ import annotations

import pytest
from django.core import mail

from billing.models import Bundle, Order
from billing.simulation import checkout_completed_event
from provisioning.models import Beacon, FakeServer, Job, JobEvent
from tests.lifecycle.stripe_events import subscription_event

pytestmark = pytest.mark.django_db

CHECKOUT = "/api/v1/checkout"


def cancel(bought, clock, deliver) -> Job:
    """The subscription ends: the Beacon is powered off and waits out its grace period."""
    now = clock.stamp()
    deliver(
        subscription_event(
            bought.subscription_id,
            status="canceled",
            created=now,
            event_type="customer.subscription.deleted",
            ended_at=now,
        )
    )
    job = Job.objects.get(beacon=bought.beacon, kind="decommission")
    assert (job.state, job.step) == ("waiting", "wait_grace")
    assert FakeServer.objects.get(pk=bought.beacon.provider_server_id).powered_on is False
    return job


def name_errors(response) -> list[str]:
    assert response.status_code == 400, response.content
    return response.json()["error"]["fields"]["beacon_name"]


def servers_of(beacon: Beacon) -> list[FakeServer]:
    rows = FakeServer.objects.filter(deleted=False)
    return [row for row in rows if row.labels.get("wopr-beacon") == str(beacon.pk)]


def test_a_new_storefront_checkout_of_the_same_customer_takes_the_beacon_back(
    buy, deliver, clock, sweep, post_json, checkout_payload, stripe_mock_url, stripe_calls, settings
):
    bought = buy("back1")  # bought by buyer@example.com
    server_id = bought.beacon.provider_server_id
    decommission = cancel(bought, clock, deliver)
    clock.advance(days=3)
    # Checkout talks to the Stripe mock; the webhooks stay offline (no dj-stripe sync from it).
    settings.STRIPE_API_BASE, settings.STRIPE_TEST_SECRET_KEY = stripe_mock_url, "sk_test_123"

    response = post_json(CHECKOUT, checkout_payload(beacon_name="back1", email="Buyer@Example.COM"))
    assert response.status_code == 201, response.content
    started = response.json()
    assert [call.status for call in stripe_calls.posts("/v1/checkout/sessions")] == [200]
    settings.STRIPE_TEST_SECRET_KEY = ""
    deliver(
        checkout_completed_event(
            beacon_name="back1",
            email="Buyer@Example.COM",
            order_id=started["order_id"],
            session_id=started["session_id"],
        )
    )

    beacon = Beacon.objects.get(name="back1")
    assert str(beacon.order_id) == started["order_id"]  # moved to the new Order
    assert beacon.status == "active"
    decommission.refresh_from_db()
    assert decommission.state == "cancelled"
    assert [server.pk for server in servers_of(beacon)] == [int(server_id)]  # no second server
    assert FakeServer.objects.get(pk=server_id).powered_on is True
    old = Order.objects.get(pk=bought.order.pk)
    assert old.stripe_metadata["beacon_taken_back_by"] == started["order_id"]
    events = JobEvent.objects.filter(job__beacon=beacon)
    timeline = " | ".join(events.values_list("message", flat=True))
    assert f"it was order {old.pk}'s" in timeline
    assert f"Beacon moved from order {old.pk} to order {started['order_id']}" in timeline
    assert any(m.subject == "Your Beacon back1.beacons.test is running again" for m in mail.outbox)

    clock.advance(days=6)  # past the old grace period: nothing is deleted
    sweep()
    assert FakeServer.objects.get(pk=server_id).deleted is False
    assert Beacon.objects.get(pk=beacon.pk).status == "active"


def test_a_payment_link_checkout_with_the_same_email_takes_it_back_too(buy, deliver, clock):
    bought = buy("back2")
    decommission = cancel(bought, clock, deliver)

    deliver(checkout_completed_event(beacon_name="back2", email="BUYER@example.com"))

    beacon = Beacon.objects.get(name="back2")
    new_order = Order.objects.exclude(pk=bought.order.pk).get(beacon_name="back2")
    assert beacon.order_id == new_order.pk
    assert not new_order.needs_attention
    assert beacon.status == "active"
    decommission.refresh_from_db()
    assert decommission.state == "cancelled"
    assert len(servers_of(beacon)) == 1


def test_a_stranger_is_refused_at_checkout_with_a_400(
    buy, deliver, clock, post_json, checkout_payload, stripe_calls
):
    bought = buy("back3")
    cancel(bought, clock, deliver)

    response = post_json(CHECKOUT, checkout_payload(beacon_name="back3", email="eve@example.com"))

    assert name_errors(response) == ["This name is taken."]
    assert stripe_calls.calls == []
    assert not Order.objects.filter(email="eve@example.com").exists()


def test_the_same_email_with_another_bundle_is_told_to_choose_the_same_bundle(
    buy, deliver, clock, post_json, checkout_payload
):
    bought = buy("back4")
    cancel(bought, clock, deliver)
    other = Bundle.objects.filter(active=True).exclude(slug="starter").first()
    assert other is not None

    payload = checkout_payload(beacon_name="back4", email="buyer@example.com", bundle=other.slug)
    response = post_json(CHECKOUT, payload)

    (message,) = name_errors(response)
    assert "choose the same bundle to take it back" in message


def test_a_paid_stranger_gets_nothing_and_the_beacon_is_still_deleted_after_the_grace(
    buy, deliver, clock, sweep
):
    bought = buy("back5")
    server_id = bought.beacon.provider_server_id
    decommission = cancel(bought, clock, deliver)

    deliver(checkout_completed_event(beacon_name="back5", email="eve@example.com"))

    stranger = Order.objects.get(email="eve@example.com")
    assert stranger.needs_attention and "'back5' is taken" in stranger.attention_reason
    beacon = Beacon.objects.get(name="back5")
    assert (beacon.order_id, beacon.status) == (bought.order.pk, "decommissioning")
    decommission.refresh_from_db()
    assert (decommission.state, decommission.step) == ("waiting", "wait_grace")
    assert FakeServer.objects.get(pk=server_id).powered_on is False

    clock.advance(days=7, minutes=1)
    sweep()
    assert FakeServer.objects.get(pk=server_id).deleted


def test_after_the_decommission_nothing_is_taken_back(buy, deliver, clock, sweep):
    bought = buy("back6")
    cancel(bought, clock, deliver)
    clock.advance(days=7, minutes=1)
    sweep()
    assert Beacon.objects.get(name="back6").status == "decommissioned"

    deliver(checkout_completed_event(beacon_name="back6", email="buyer@example.com"))

    beacon = Beacon.objects.get(name="back6")
    assert (beacon.order_id, beacon.status) == (bought.order.pk, "decommissioned")
    late = Order.objects.exclude(pk=bought.order.pk).get(beacon_name="back6")
    assert late.needs_attention and "is taken" in late.attention_reason
    assert servers_of(beacon) == []


def test_a_redelivered_checkout_takes_back_once(buy, deliver, clock):
    bought = buy("back7")
    cancel(bought, clock, deliver)
    event = checkout_completed_event(beacon_name="back7", email="buyer@example.com")

    deliver(event)
    deliver(event)

    beacon = Beacon.objects.get(name="back7")
    assert Order.objects.filter(beacon_name="back7").count() == 2
    assert beacon.jobs.filter(kind="resume").count() == 1
    assert len(servers_of(beacon)) == 1
