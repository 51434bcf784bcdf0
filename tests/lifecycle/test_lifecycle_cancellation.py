"""customer.subscription.deleted: the Beacon is decommissioned after the grace period, and a new
subscription inside the grace period keeps it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from dns.models import DnsRecord, FakeDnsRecord
from provisioning.models import FakeServer, Job
from tests.lifecycle.stripe_events import subscription_event

pytestmark = pytest.mark.django_db


def deleted_event(bought, clock):
    now = clock.stamp()
    return subscription_event(
        bought.subscription_id,
        status="canceled",
        created=now,
        event_type="customer.subscription.deleted",
        ended_at=now,
    )


def resubscribed_event(bought, clock, **metadata):
    return subscription_event(
        "sub_resubscribed_" + bought.beacon.name,
        status="active",
        created=clock.stamp(),
        event_type="customer.subscription.created",
        metadata=metadata or {"wopr_order_id": str(bought.order.pk)},
    )


def server_exists(bought) -> bool:
    return FakeServer.objects.filter(
        pk=bought.beacon.provider_server_id or -1, deleted=False
    ).exists()


def fqdn_records(bought) -> int:
    return FakeDnsRecord.objects.filter(name__endswith=bought.beacon.fqdn).count()


def test_deleted_subscription_keeps_the_server_six_days_and_deletes_it_on_the_seventh(
    buy, deliver, clock, sweep
):
    bought = buy("bye1")
    server_id = bought.beacon.provider_server_id
    ended = clock.now()

    deliver(deleted_event(bought, clock))

    bought.refresh()
    assert bought.beacon.status == "decommissioning"
    assert bought.order.status == "cancelled"
    job = Job.objects.get(beacon=bought.beacon, kind="decommission")
    assert (job.state, job.step) == ("waiting", "wait_grace")
    assert abs(job.next_attempt_at - (ended + timedelta(days=7))) < timedelta(seconds=2)
    assert FakeServer.objects.get(pk=server_id).powered_on is False  # nobody pays: off

    clock.advance(days=6)
    sweep()
    assert server_exists(bought)
    assert fqdn_records(bought) == 4
    assert bought.refresh().beacon.status == "decommissioning"

    clock.advance(days=1, minutes=1)
    sweep()
    assert not server_exists(bought)
    assert FakeServer.objects.get(pk=server_id).deleted
    assert fqdn_records(bought) == 0
    assert not DnsRecord.objects.filter(beacon=bought.beacon, status="active").exists()
    bought.refresh()
    assert bought.beacon.status == "decommissioned"
    job.refresh_from_db()
    assert job.state == "completed"


def test_cancelled_email_states_the_real_decommission_date(buy, deliver, clock):
    bought = buy("bye2")
    mail.outbox.clear()

    deliver(deleted_event(bought, clock))

    job = Job.objects.get(beacon=bought.beacon, kind="decommission")
    (message,) = mail.outbox
    when = job.next_attempt_at
    assert message.subject == (
        f"Your subscription has ended: bye2.beacons.test will be deleted on {when:%-d %B %Y}"
    )
    html = message.alternatives[0][0]
    for part in (message.body, html):
        assert f"{when:%-d %B %Y, %H:%M} UTC" in part


def test_a_new_subscription_on_day_three_cancels_the_decommission(buy, deliver, clock, sweep):
    bought = buy("bye3")
    deliver(deleted_event(bought, clock))
    decommission = Job.objects.get(beacon=bought.beacon, kind="decommission")

    clock.advance(days=3)
    deliver(resubscribed_event(bought, clock))

    decommission.refresh_from_db()
    assert decommission.state == "cancelled"
    bought.refresh()
    assert bought.beacon.status == "active"
    assert bought.order.stripe_subscription_id == "sub_resubscribed_bye3"
    assert bought.order.status == "paid"
    assert bought.order.stripe_metadata["previous_subscriptions"] == [bought.subscription_id]
    assert FakeServer.objects.get(pk=bought.beacon.provider_server_id).powered_on is True
    assert any(m.subject == "Your Beacon bye3.beacons.test is running again" for m in mail.outbox)

    clock.advance(days=5)
    sweep()
    assert server_exists(bought)
    assert fqdn_records(bought) == 4
    assert bought.refresh().beacon.status == "active"


def test_a_resubscription_may_name_the_beacon_instead_of_the_order(buy, deliver, clock):
    bought = buy("bye4")
    deliver(deleted_event(bought, clock))

    clock.advance(days=1)
    deliver(resubscribed_event(bought, clock, wopr_beacon_id=str(bought.beacon.pk)))

    assert bought.refresh().beacon.status == "active"


def test_a_late_event_of_the_old_subscription_changes_nothing(buy, deliver, clock):
    """After the resubscription, the ended subscription's events no longer match the order."""
    bought = buy("bye5")
    deliver(deleted_event(bought, clock))
    clock.advance(days=1)
    deliver(resubscribed_event(bought, clock))

    deliver(subscription_event(bought.subscription_id, status="unpaid", created=clock.stamp(-3600)))

    assert bought.refresh().beacon.status == "active"


def test_redelivered_deletion_schedules_one_decommission_and_one_email(buy, deliver, clock):
    bought = buy("bye6")
    mail.outbox.clear()
    event = deleted_event(bought, clock)

    deliver(event)
    deliver(event)
    deliver(dict(event, id="evt_same_deletion_other_delivery"))

    assert Job.objects.filter(beacon=bought.beacon, kind="decommission").count() == 1
    assert len(mail.outbox) == 1


def test_a_staff_retry_of_a_failed_decommission_keeps_the_date_the_customer_was_told(
    buy, deliver, clock, sweep
):
    """A retry starts from the first step but keeps the announced deletion date: no crash for a
    missing schedule, no second e-mail, no new date."""
    from provisioning.jobs import job_retry

    bought = buy("bye9")
    deliver(deleted_event(bought, clock))
    job = Job.objects.get(beacon=bought.beacon, kind="decommission")
    told = job.next_attempt_at
    Job.objects.filter(pk=job.pk).update(state="failed")  # as if a step had given up
    mail.outbox.clear()
    clock.advance(days=2)

    assert job_retry(job=job)
    sweep()

    job.refresh_from_db()
    assert (job.state, job.step) == ("waiting", "wait_grace")
    assert abs(job.next_attempt_at - told) < timedelta(seconds=2)
    assert mail.outbox == []
