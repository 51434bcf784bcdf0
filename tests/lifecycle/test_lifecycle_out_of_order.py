"""Events arrive late, twice and out of order; the end state is what Stripe's current
subscription says, judged by Stripe's event times, not by arrival order."""

from __future__ import annotations

import pytest
from django.core import mail

from billing.models import Order, PaymentFailure
from billing.simulation import checkout_completed_event
from provisioning.models import Beacon, FakeServer, Job
from tests.lifecycle.stripe_events import invoice_event, subscription_event

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("status", "beacon_status", "powered_on"),
    [("active", "active", True), ("unpaid", "suspended", False)],
)
def test_subscription_updated_before_the_checkout_event(
    deliver, clock, status, beacon_status, powered_on
):
    checkout = checkout_completed_event(beacon_name=f"early-{status}")
    checkout["created"] = clock.stamp()
    subscription_id = checkout["data"]["object"]["subscription"]

    deliver(subscription_event(subscription_id, status=status, created=clock.stamp(60)))
    assert not Order.objects.exists()  # nothing to attach it to yet: kept in the event log
    deliver(checkout)

    beacon = Beacon.objects.select_related("order").get(name=f"early-{status}")
    assert beacon.order.subscription_status == status
    assert beacon.status == beacon_status
    assert FakeServer.objects.get(pk=beacon.provider_server_id).powered_on is powered_on


def test_an_older_subscription_event_arriving_last_is_ignored(buy, deliver, clock):
    bought = buy("late1")
    newer = subscription_event(bought.subscription_id, status="active", created=clock.stamp(120))
    older = subscription_event(bought.subscription_id, status="unpaid", created=clock.stamp(60))

    deliver(newer)
    deliver(older)

    bought.refresh()
    assert bought.order.subscription_status == "active"
    assert bought.beacon.status == "active"
    assert not Job.objects.filter(beacon=bought.beacon, kind="suspend").exists()


def test_the_newer_of_two_reordered_events_wins_both_ways(buy, deliver, clock):
    bought = buy("late2")
    active = subscription_event(bought.subscription_id, status="active", created=clock.stamp(60))
    unpaid = subscription_event(bought.subscription_id, status="unpaid", created=clock.stamp(120))

    deliver(unpaid)
    deliver(active)

    bought.refresh()
    assert bought.order.subscription_status == "unpaid"
    assert bought.beacon.status == "suspended"


def test_invoice_paid_before_payment_failed_of_the_same_invoice(buy, deliver, clock, settings):
    settings.SUSPEND_AFTER_FAILURES = 1
    bought = buy("late3")
    mail.outbox.clear()
    sub = bought.subscription_id
    past_due = subscription_event(sub, status="past_due", created=clock.stamp(60))
    active = subscription_event(sub, status="active", created=clock.stamp(120))
    failure = invoice_event(
        "in_late3",
        subscription_id=sub,
        event_type="invoice.payment_failed",
        created=clock.stamp(60),
        next_payment_attempt=clock.stamp(86400),
    )
    paid = invoice_event(
        "in_late3", subscription_id=sub, event_type="invoice.paid", created=clock.stamp(120)
    )

    for event in (active, paid, past_due, failure):  # Stripe sent them the other way round
        deliver(event)

    bought.refresh()
    assert bought.order.subscription_status == "active"
    assert bought.beacon.status == "active"
    assert PaymentFailure.objects.get(stripe_invoice_id="in_late3").paid_at is not None
    assert not Job.objects.filter(beacon=bought.beacon, kind="suspend").exists()
    assert mail.outbox == []  # no dunning e-mail for an invoice already paid


def test_invoice_events_before_the_checkout_are_attached_to_its_order(deliver, clock, settings):
    settings.SUSPEND_AFTER_FAILURES = 1
    checkout = checkout_completed_event(beacon_name="early-invoice")
    checkout["created"] = clock.stamp()
    subscription_id = checkout["data"]["object"]["subscription"]
    failure = invoice_event(
        "in_early",
        subscription_id=subscription_id,
        event_type="invoice.payment_failed",
        created=clock.stamp(30),
        next_payment_attempt=clock.stamp(86400),
    )

    deliver(failure)
    deliver(checkout)

    beacon = Beacon.objects.get(name="early-invoice")
    assert PaymentFailure.objects.get(stripe_invoice_id="in_early").order == beacon.order
    assert beacon.status == "suspended"
    subjects = [message.subject for message in mail.outbox]
    assert "Payment of $15.99 failed for your Beacon early-invoice.beacons.test" in subjects


def test_a_subscription_deleted_before_its_checkout_builds_nothing_and_sends_nothing(
    deliver, clock, sweep
):
    """Issue 10, item 7: the deletion is kept in the event log; the checkout that arrives
    after it finds it first and takes the order straight to cancelled, with no Beacon."""
    checkout = checkout_completed_event(beacon_name="early-gone")
    checkout["created"] = clock.stamp()
    subscription_id = checkout["data"]["object"]["subscription"]
    deleted = subscription_event(
        subscription_id,
        status="canceled",
        created=clock.stamp(60),
        event_type="customer.subscription.deleted",
        ended_at=clock.stamp(60),
    )

    deliver(deleted)
    deliver(checkout)
    deliver(checkout)  # Stripe delivers it again
    # and a later event of the same session finds the order cancelled: still nothing to build
    deliver(dict(checkout, id="evt_async_gone", type="checkout.session.async_payment_succeeded"))
    sweep()

    order = Order.objects.get(stripe_checkout_session_id=checkout["data"]["object"]["id"])
    assert order.status == "cancelled"
    assert order.subscription_status == "canceled"
    assert order.subscription_ended_at is not None
    assert not order.needs_attention
    assert not Beacon.objects.exists()
    assert not Job.objects.exists()
    assert not FakeServer.objects.exists()
    assert mail.outbox == []


def test_a_deletion_after_the_checkout_still_builds_then_decommissions(deliver, clock):
    """The same two events in Stripe's order: the Beacon is built and then decommissioned."""
    checkout = checkout_completed_event(beacon_name="late-gone")
    checkout["created"] = clock.stamp()
    subscription_id = checkout["data"]["object"]["subscription"]

    deliver(checkout)
    deliver(
        subscription_event(
            subscription_id,
            status="canceled",
            created=clock.stamp(60),
            event_type="customer.subscription.deleted",
            ended_at=clock.stamp(60),
        )
    )

    beacon = Beacon.objects.get(name="late-gone")
    assert beacon.order.status == "cancelled"
    assert Job.objects.filter(beacon=beacon, kind="decommission").exists()
