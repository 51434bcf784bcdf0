"""The lifecycle e-mails: each sent at most once per cause, whatever is retried or redelivered,
with a text and an HTML part and every variable escaped in the HTML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from billing.models import Order, PaymentFailure
from billing.subscriptions import money_display
from billing.tasks import payment_failure_notify
from documents.models import EmailMessage
from provisioning.faults import fault_inject
from provisioning.jobs import job_retry
from provisioning.lifecycle import step_notify_suspended
from provisioning.models import Job
from tests.lifecycle.stripe_events import invoice_event, subscription_event

pytestmark = pytest.mark.django_db


def unpaid(bought, clock, at=10):
    return subscription_event(bought.subscription_id, status="unpaid", created=clock.stamp(at))


def sent(template: str) -> list[EmailMessage]:
    return list(EmailMessage.objects.filter(template=template, status="sent"))


def test_a_retried_suspend_job_sends_one_email(buy, deliver, clock, sweep):
    bought = buy("once1")
    mail.outbox.clear()
    fault_inject("provider.power_off", "transient")  # the first power-off attempt fails

    deliver(unpaid(bought, clock))
    job = Job.objects.get(beacon=bought.beacon, kind="suspend")
    assert (job.state, job.attempts) == ("pending", 1)

    clock.advance(minutes=15)
    sweep()

    job.refresh_from_db()
    assert job.state == "completed"
    assert [m.subject for m in mail.outbox] == ["Your Beacon once1.beacons.test is suspended"]


def test_a_notify_step_run_twice_sends_one_email(buy, deliver, clock):
    """A worker that crashed after sending, before saving the step, runs it again."""
    bought = buy("once2")
    deliver(unpaid(bought, clock))
    job = Job.objects.get(beacon=bought.beacon, kind="suspend")
    mail.outbox.clear()

    step_notify_suspended(job)
    step_notify_suspended(job)

    assert mail.outbox == []
    assert len(sent("suspended")) == 1


def test_a_failed_send_is_retried_and_sent_once(buy, deliver, clock, sweep, monkeypatch):
    bought = buy("once3")
    mail.outbox.clear()
    real_send = EmailMultiAlternatives.send
    calls = {"n": 0}

    def flaky_send(self, fail_silently=False):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionRefusedError("smtp down")
        return real_send(self, fail_silently=fail_silently)

    monkeypatch.setattr(EmailMultiAlternatives, "send", flaky_send)

    deliver(unpaid(bought, clock))
    job = Job.objects.get(beacon=bought.beacon, kind="suspend")
    assert (job.state, job.step) == ("pending", "notify")

    clock.advance(minutes=15)
    sweep()

    job.refresh_from_db()
    assert job.state == "completed"
    assert len(mail.outbox) == 1
    assert EmailMessage.objects.get(template="suspended").attempts == 2


def test_a_staff_retry_of_a_failed_job_sends_no_second_email(buy, deliver, clock, sweep):
    bought = buy("once4")
    deliver(unpaid(bought, clock))
    job = Job.objects.get(beacon=bought.beacon, kind="suspend")
    assert job.state == "completed"
    Job.objects.filter(pk=job.pk).update(state="failed")  # as if its last step had failed
    mail.outbox.clear()

    job_retry(job=job)
    sweep()

    job.refresh_from_db()
    assert job.state == "completed"
    assert mail.outbox == []


def test_redelivered_and_retried_dunning_sends_one_email(buy, deliver, clock, sweep):
    bought = buy("once5")
    mail.outbox.clear()
    event = invoice_event(
        "in_once5",
        subscription_id=bought.subscription_id,
        event_type="invoice.payment_failed",
        created=clock.stamp(10),
        next_payment_attempt=clock.stamp(86400),
    )

    deliver(event)
    deliver(event)
    failure = PaymentFailure.objects.get(stripe_invoice_id="in_once5")
    payment_failure_notify(failure.pk)  # a task delivered twice by the broker
    PaymentFailure.objects.filter(pk=failure.pk).update(notified_at=None)
    sweep()  # the sweep's safety net finds it "unsent" and tries again

    assert len(mail.outbox) == 1


def test_trial_will_end_sends_the_reminder_with_the_date_once(buy, deliver, clock):
    bought = buy("trial1")
    mail.outbox.clear()
    trial_end = clock.stamp(3 * 86400)
    event = subscription_event(
        bought.subscription_id,
        status="trialing",
        created=clock.stamp(10),
        event_type="customer.subscription.trial_will_end",
        trial_end=trial_end,
    )

    deliver(event)
    deliver(dict(event, id="evt_trial_other_delivery"))

    (message,) = mail.outbox
    when = datetime.fromtimestamp(trial_end, tz=UTC)
    assert message.subject == f"Your WOPR trial ends on {when:%-d %B %Y}"
    for part in (message.body, message.alternatives[0][0]):
        assert f"{when:%-d %B %Y, %H:%M} UTC" in part
        assert "trial1.beacons.test" in part
    assert bought.refresh().beacon.status == "active"  # trialing is paying


def test_every_lifecycle_email_has_text_and_html_and_escapes_its_variables(
    buy, deliver, clock, settings
):
    settings.SUSPEND_AFTER_FAILURES = 1
    bought = buy("esc1")
    Order.objects.filter(pk=bought.order.pk).update(name="<script>alert(1)</script>")
    mail.outbox.clear()
    sub = bought.subscription_id
    now = clock.stamp()
    events = [
        invoice_event(
            "in_esc1",
            subscription_id=sub,
            event_type="invoice.payment_failed",
            created=now + 1,
            next_payment_attempt=now + 86400,
        ),
        invoice_event("in_esc1", subscription_id=sub, event_type="invoice.paid", created=now + 2),
        subscription_event(
            sub,
            status="trialing",
            created=now + 3,
            event_type="customer.subscription.trial_will_end",
            trial_end=now + 86400,
        ),
        subscription_event(
            sub,
            status="canceled",
            created=now + 4,
            ended_at=now + 4,
            event_type="customer.subscription.deleted",
        ),
    ]
    for event in events:
        deliver(event)

    templates = list(EmailMessage.objects.order_by("created_at").values_list("template", flat=True))
    assert set(templates) >= {"payment_failed", "suspended", "resumed", "trial_ending", "cancelled"}
    for message in mail.outbox:
        (html, mimetype) = message.alternatives[0]
        assert mimetype == "text/html"
        assert "<script>alert(1)</script>" in message.body  # plain text is not HTML
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>" not in html


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [
        (1599, "usd", "$15.99"),
        (700, "EUR", "€7.00"),
        (1500, "jpy", "¥1,500"),
        (1250, "chf", "12.50 CHF"),
    ],
)
def test_amounts_are_shown_as_customers_read_them(cents, currency, shown):
    assert money_display(cents, currency) == shown


def test_a_dunning_email_waits_for_the_order_of_an_early_invoice(deliver, clock):
    """No order yet: nothing is sent and nothing is marked sent; the checkout sends it."""
    event = invoice_event(
        "in_orphan",
        subscription_id="sub_not_yet_known",
        event_type="invoice.payment_failed",
        created=clock.stamp(),
        next_payment_attempt=clock.stamp(86400),
    )

    deliver(event)

    failure = PaymentFailure.objects.get(stripe_invoice_id="in_orphan")
    assert (failure.order, failure.notified_at) == (None, None)
    assert mail.outbox == []
    assert failure.created_at <= timezone.now() + timedelta(seconds=1)
