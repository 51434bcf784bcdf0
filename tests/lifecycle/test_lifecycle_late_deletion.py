"""A customer.subscription.deleted that arrives late (replayed after an outage): the customer
still gets the whole grace period from the moment they are told, and no e-mail names a date in
the past."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.core import mail

from documents.models import EmailMessage
from provisioning.models import FakeServer, Job
from tests.lifecycle.stripe_events import subscription_event

pytestmark = pytest.mark.django_db

GRACE = timedelta(days=7)


def late_deleted_event(bought, clock, *, days_late: int):
    """The deletion Stripe sent `days_late` days ago, delivered only now."""
    ended = clock.stamp() - days_late * 86400
    return subscription_event(
        bought.subscription_id,
        status="canceled",
        created=ended,
        event_type="customer.subscription.deleted",
        ended_at=ended,
    )


def server_alive(server_id: int) -> bool:
    return FakeServer.objects.filter(pk=server_id, deleted=False).exists()


def emailed_deletion_date(message) -> datetime:
    """The deletion date and time the `cancelled` e-mail gives (to the minute, in UTC)."""
    found = re.search(r"On (\d{1,2} \w+ \d{4}, \d{2}:\d{2}) UTC we will delete", message.body)
    assert found, message.body
    return datetime.strptime(found.group(1) + " +0000", "%d %B %Y, %H:%M %z")


def test_a_deletion_replayed_ten_days_late_keeps_the_server_for_the_grace_period_from_the_email(
    buy, deliver, clock, sweep
):
    bought = buy("late1")
    server_id = int(bought.beacon.provider_server_id)
    clock.advance(days=10)  # the outage: Stripe's event is ten days old when it arrives
    mail.outbox.clear()
    told = clock.now()

    deliver(late_deleted_event(bought, clock, days_late=10))

    job = Job.objects.get(beacon=bought.beacon, kind="decommission")
    assert (job.state, job.step) == ("waiting", "wait_grace")
    assert job.next_attempt_at >= told + GRACE
    assert job.next_attempt_at - (told + GRACE) < timedelta(minutes=1)
    (message,) = [m for m in mail.outbox if "will be deleted on" in m.subject]
    emailed = emailed_deletion_date(message)
    assert emailed > told  # never a date in the past
    assert emailed == job.next_attempt_at.replace(second=0, microsecond=0)
    assert server_alive(server_id)

    clock.advance(days=6, hours=23, minutes=58)
    sweep()
    assert server_alive(server_id)
    assert bought.refresh().beacon.status == "decommissioning"

    clock.advance(minutes=3)
    sweep()
    assert not server_alive(server_id)
    assert bought.refresh().beacon.status == "decommissioned"


def test_a_late_announcement_moves_the_deletion_date_it_announces(buy, deliver, clock, sweep):
    """The e-mail goes out after the server is powered off; if that takes a day (a provider
    outage), the grace period still starts when the customer is told."""
    bought = buy("late2")
    server = FakeServer.objects.get(pk=bought.beacon.provider_server_id)
    deliver(late_deleted_event(bought, clock, days_late=0))
    job = Job.objects.get(beacon=bought.beacon, kind="decommission")
    scheduled = job.next_attempt_at
    # Undo the announcement, as if the job had been stuck powering the server off for a day.
    mail.outbox.clear()
    EmailMessage.objects.filter(template="cancelled").delete()
    checkpoint = {**job.checkpoint, "schedule": {"decommission_at": scheduled.isoformat()}}
    told = clock.advance(days=1)
    Job.objects.filter(pk=job.pk).update(
        step="announce", state="pending", checkpoint=checkpoint, next_attempt_at=told
    )

    sweep()

    job.refresh_from_db()
    assert job.step == "wait_grace"
    assert job.next_attempt_at >= told + GRACE > scheduled
    (message,) = mail.outbox
    assert emailed_deletion_date(message) == job.next_attempt_at.replace(second=0, microsecond=0)
    assert server_alive(server.pk)


def test_a_trial_reminder_delivered_after_the_trial_ended_is_not_sent(buy, deliver, clock):
    bought = buy("late3")
    trial_end = clock.stamp(3 * 86400)
    event = subscription_event(
        bought.subscription_id,
        status="trialing",
        created=clock.stamp(),
        event_type="customer.subscription.trial_will_end",
        trial_end=trial_end,
    )
    clock.advance(days=4)  # the reminder arrives after the trial's end
    mail.outbox.clear()

    deliver(event)

    assert [m.subject for m in mail.outbox if "trial" in m.subject] == []
