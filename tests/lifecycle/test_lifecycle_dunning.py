"""Failed payments: one PaymentFailure and one dunning e-mail per invoice, suspension exactly when
the settings say, and resumption as soon as the money arrives."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from billing.models import PaymentFailure
from provisioning.models import FakeServer, Job
from tests.lifecycle.stripe_events import invoice_event, subscription_event

pytestmark = pytest.mark.django_db


def server_of(bought) -> FakeServer:
    return FakeServer.objects.get(pk=bought.beacon.provider_server_id)


def subjects() -> list[str]:
    return [message.subject for message in mail.outbox]


def failed(bought, invoice_id, clock, *, attempt=1, at=0, **kwargs):
    return invoice_event(
        invoice_id,
        subscription_id=bought.subscription_id,
        event_type="invoice.payment_failed",
        created=clock.stamp(at),
        attempt_count=attempt,
        next_payment_attempt=clock.stamp(at + 3 * 86400),
        **kwargs,
    )


def paid(bought, invoice_id, clock, *, at=0):
    return invoice_event(
        invoice_id,
        subscription_id=bought.subscription_id,
        event_type="invoice.paid",
        created=clock.stamp(at),
    )


def test_three_failures_for_two_invoices_one_redelivered_make_two_failures_and_two_emails(
    buy, deliver, clock, settings
):
    settings.SUSPEND_AFTER_FAILURES = 2
    bought = buy("dun1")
    mail.outbox.clear()
    first = failed(bought, "in_dun1_a", clock, at=10)

    deliver(first)
    assert bought.refresh().beacon.status == "active"  # one failure: below the setting
    deliver(first)  # Stripe redelivers the same event
    assert bought.refresh().beacon.status == "active"  # a redelivery is not a second failure
    deliver(failed(bought, "in_dun1_b", clock, at=20))

    assert PaymentFailure.objects.filter(order=bought.order).count() == 2
    dunning = [s for s in subjects() if s.startswith("Payment of")]
    assert dunning == [
        "Payment of $15.99 failed for your Beacon dun1.beacons.test",
        "Payment of $15.99 failed for your Beacon dun1.beacons.test",
    ]
    # The second failed attempt reached SUSPEND_AFTER_FAILURES=2: suspended, server off.
    assert bought.refresh().beacon.status == "suspended"
    assert server_of(bought).powered_on is False
    assert subjects().count("Your Beacon dun1.beacons.test is suspended") == 1


def test_suspension_waits_for_the_configured_number_of_attempts(buy, deliver, clock, settings):
    settings.SUSPEND_AFTER_FAILURES = 3
    bought = buy("dun2")
    deliver(subscription_event(bought.subscription_id, status="past_due", created=clock.stamp(5)))

    deliver(failed(bought, "in_dun2_a", clock, attempt=1, at=10))
    deliver(failed(bought, "in_dun2_b", clock, attempt=1, at=20))
    assert bought.refresh().beacon.status == "active"  # 2 attempts < 3
    deliver(failed(bought, "in_dun2_a", clock, attempt=2, at=30))  # Stripe's retry fails too

    assert bought.refresh().beacon.status == "suspended"  # 3 attempts
    failure = PaymentFailure.objects.get(stripe_invoice_id="in_dun2_a")
    assert failure.attempt_count == 2
    # One e-mail per invoice, not per attempt.
    assert len([s for s in subjects() if s.startswith("Payment of")]) == 2


def test_invoice_paid_resumes_the_suspended_beacon(buy, deliver, clock, settings):
    settings.SUSPEND_AFTER_FAILURES = 2
    bought = buy("dun3")
    deliver(subscription_event(bought.subscription_id, status="past_due", created=clock.stamp(5)))
    deliver(failed(bought, "in_dun3_a", clock, at=10))
    deliver(failed(bought, "in_dun3_b", clock, at=20))
    assert bought.refresh().beacon.status == "suspended"

    deliver(paid(bought, "in_dun3_a", clock, at=30))
    deliver(paid(bought, "in_dun3_b", clock, at=40))

    assert bought.refresh().beacon.status == "active"
    assert server_of(bought).powered_on is True
    assert bought.order.subscription_status == "active"  # Stripe's rule: paid invoices
    assert PaymentFailure.objects.filter(order=bought.order, paid_at__isnull=True).count() == 0
    assert subjects().count("Your Beacon dun3.beacons.test is running again") == 1
    kinds = list(
        Job.objects.filter(beacon=bought.beacon).order_by("created_at").values_list("kind", "state")
    )
    assert kinds == [("provision", "completed"), ("suspend", "completed"), ("resume", "completed")]


def test_unpaid_subscription_suspends_at_once_and_active_resumes(buy, deliver, clock):
    bought = buy("dun4")

    deliver(subscription_event(bought.subscription_id, status="unpaid", created=clock.stamp(10)))
    assert bought.refresh().beacon.status == "suspended"
    assert server_of(bought).powered_on is False

    deliver(subscription_event(bought.subscription_id, status="active", created=clock.stamp(20)))
    assert bought.refresh().beacon.status == "active"
    assert server_of(bought).powered_on is True


def test_dunning_email_states_the_real_amount_and_next_attempt(buy, deliver, clock):
    bought = buy("dun5")
    mail.outbox.clear()
    event = failed(bought, "in_dun5_a", clock, at=10, amount_due=4250, currency="eur")
    when = event["data"]["object"]["next_payment_attempt"]

    deliver(event)

    (message,) = mail.outbox
    text, (html, _) = message.body, message.alternatives[0]
    failure = PaymentFailure.objects.get(stripe_invoice_id="in_dun5_a")
    assert int(failure.next_payment_attempt.timestamp()) == when
    date = f"{failure.next_payment_attempt:%-d %B %Y, %H:%M} UTC"
    for part in (text, html):
        assert "€42.50" in part
        assert date in part
        assert "https://invoice.stripe.com/i/in_dun5_a" in part


def test_a_failure_during_another_job_suspends_once_that_job_ends(
    buy, deliver, clock, sweep, settings
):
    """The suspend job waits for the provision job (one unfinished job per Beacon)."""
    settings.SUSPEND_AFTER_FAILURES = 1
    bought = buy("dun6")
    # The Beacon is in the middle of another job (a resume waiting on a slow e-mail) when the
    # failure arrives.
    job = Job.objects.create(
        beacon=bought.beacon,
        kind="resume",
        step="notify",
        state="waiting",
        next_attempt_at=clock.now() + timedelta(minutes=5),
    )
    deliver(failed(bought, "in_dun6_a", clock, at=10))
    assert bought.refresh().beacon.status == "active"
    assert bought.beacon.converge_requested_at is not None  # remembered for later

    sweep()  # nothing yet: the resume job is still unfinished
    assert bought.refresh().beacon.status == "active"

    Job.objects.filter(pk=job.pk).update(state="completed")
    sweep()

    assert bought.refresh().beacon.status == "suspended"
    assert bought.beacon.converge_requested_at is None
