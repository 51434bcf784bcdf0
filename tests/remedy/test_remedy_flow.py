"""No charge without a Beacon: a purchase whose server creation fails for good, on the fake
cloud, with Stripe behind its published spec (Prism). Under policy `refund` the refund and the
cancellation are made once however often things run again; under policy `staff` one queue
entry waits for one admin click; a Beacon made after all withdraws it."""

from __future__ import annotations

import dataclasses

import pytest
from django.contrib.admin import helpers
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from billing.models import OrderRemedy, RemedyPolicy, RemedyState
from billing.remedy import order_remedy_run
from provisioning.faults import fault_inject
from provisioning.jobs import job_retry
from provisioning.models import Beacon
from provisioning.services import job_start
from tests.factories import BeaconFactory

pytestmark = pytest.mark.django_db

SUB = "sub_flow_1"
CHANGELIST = "admin:billing_orderremedy_changelist"


@pytest.fixture
def beacon(stripe_world):
    beacon = BeaconFactory(
        status="pending",
        ipv4=None,
        ipv6="",
        order__stripe_subscription_id=SUB,
        order__email="ada@example.com",
    )
    stripe_world.paid(SUB, amount=1599)
    return beacon


@pytest.fixture
def fail_for_good(beacon, run):
    """Provision the Beacon with server creation failing for good; the failed job."""

    def _fail(job=None):
        fault_inject("provider.create", "permanent", message="the cloud refused the server")
        job = run(job or job_start(beacon=beacon, kind="provision"))
        assert job.state == "failed"
        return job

    return _fail


def customer_mail(address="ada@example.com"):
    return [message for message in mail.outbox if message.to == [address]]


def test_policy_refund_refunds_and_cancels_once_however_often_it_runs(
    settings, stripe_world, fail_for_good, run
):
    settings.FAILED_ORDER_POLICY = "refund"

    job = fail_for_good()
    [remedy] = OrderRemedy.objects.all()
    order_remedy_run(remedy_id=remedy.pk)  # the task delivered twice
    job_retry(job=job)
    fail_for_good(job)  # staff retried, it failed again: compensation ran a second time

    assert len(stripe_world.made("POST", "/v1/refunds")) == 1
    assert len(stripe_world.made("DELETE", f"/v1/subscriptions/{SUB}")) == 1
    assert all(call.violations == "" and call.status == 200 for call in stripe_world.calls)
    remedy.refresh_from_db()
    assert (remedy.policy, remedy.state, remedy.amount_cents) == ("refund", "done", 1599)
    assert remedy.decided_by is None and remedy.done_at is not None
    [told] = customer_mail()
    assert "we are refunding it in full and cancelling the subscription" in told.body
    assert "within" not in told.body


def test_policy_staff_queues_one_entry_and_stripe_hears_nothing_before_the_click(
    stripe_world, fail_for_good, settings
):
    settings.FAILED_ORDER_HOURS = 24

    job = fail_for_good()
    job_retry(job=job)
    fail_for_good(job)

    [remedy] = OrderRemedy.objects.all()
    assert (remedy.policy, remedy.state) == (RemedyPolicy.STAFF, RemedyState.QUEUED)
    assert "the cloud refused the server" in remedy.reason
    assert stripe_world.calls == []
    [told] = customer_mail()
    assert "refund your payment in full, within 24 hours" in told.body
    assert "refunding it in full" not in told.body


def _click(client, remedy, *, confirm: bool):
    data = {"action": "refund_and_cancel", helpers.ACTION_CHECKBOX_NAME: [remedy.pk]}
    if confirm:
        data["post"] = "yes"
    return client.post(reverse(CHANGELIST), data)


def test_the_admin_click_confirms_then_refunds_and_cancels_once(
    admin_client, admin_user, stripe_world, fail_for_good, django_capture_on_commit_callbacks
):
    fail_for_good()
    remedy = OrderRemedy.objects.get()

    page = _click(admin_client, remedy, confirm=False)

    text = page.content.decode()
    invoice = stripe_world.invoices[SUB][0]["id"]
    assert page.status_code == 200
    assert "$15.99" in text and invoice in text and SUB in text
    assert stripe_world.money_calls() == []  # the page only asked Stripe what was paid
    with django_capture_on_commit_callbacks(execute=True):
        _click(admin_client, remedy, confirm=True)
    with django_capture_on_commit_callbacks(execute=True):
        second = _click(admin_client, remedy, confirm=True)

    assert len(stripe_world.made("POST", "/v1/refunds")) == 1
    assert len(stripe_world.made("DELETE", f"/v1/subscriptions/{SUB}")) == 1
    remedy.refresh_from_db()
    assert (remedy.state, remedy.decided_by) == (RemedyState.DONE, admin_user)
    assert second.status_code == 302
    refunded = [m for m in customer_mail() if "is refunded" in m.subject]
    assert len(refunded) == 1
    assert "$15.99 is refunded in full and the subscription cancelled" in refunded[0].body


def test_a_beacon_made_after_all_withdraws_the_queued_remedy(
    stripe_world, fail_for_good, run, beacon
):
    job = fail_for_good()

    job_retry(job=job)
    job = run(job)

    assert job.state == "completed"
    assert Beacon.objects.get(pk=beacon.pk).status == "active"
    remedy = OrderRemedy.objects.get()
    assert remedy.state == RemedyState.WITHDRAWN and remedy.done_at is not None
    assert stripe_world.calls == []


def test_a_job_that_gave_up_is_queued_for_staff_whatever_the_policy(
    settings, stripe_world, beacon, run, monkeypatch
):
    """A Beacon may be running (the install stalled, or it failed after installing):
    refunding it automatically would give away or tear down what staff may finish."""
    from provisioning import jobs
    from provisioning.jobs import GiveUp

    settings.FAILED_ORDER_POLICY = "refund"
    workflow = jobs.WORKFLOWS["provision"]
    steps = tuple(
        (name, (lambda job: GiveUp("install stalled")) if name == "dns" else function)
        for name, function in workflow.steps
    )
    monkeypatch.setitem(jobs.WORKFLOWS, "provision", dataclasses.replace(workflow, steps=steps))

    job = run(job_start(beacon=beacon, kind="provision"))

    assert job.state == "failed"
    remedy = OrderRemedy.objects.get()
    assert (remedy.policy, remedy.state) == (RemedyPolicy.STAFF, RemedyState.QUEUED)
    assert stripe_world.calls == []


def test_the_later_subscription_deleted_event_sends_no_second_email(
    settings, stripe_world, fail_for_good, beacon, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from billing.subscriptions import subscription_event_record

    settings.FAILED_ORDER_POLICY = "refund"
    fail_for_good()
    sent = len(mail.outbox)

    with django_capture_on_commit_callbacks(execute=True):
        subscription_event_record(
            subscription={"id": SUB, "object": "subscription", "status": "canceled"},
            deleted=True,
            event_created=timezone.now(),
            livemode=False,
        )

    assert len(mail.outbox) == sent
    beacon.refresh_from_db()
    assert beacon.status == "failed"
    assert beacon.jobs.count() == 1  # no decommission job for a Beacon that never was
    assert OrderRemedy.objects.get().state == RemedyState.DONE


def test_an_unknown_policy_is_refused_at_start_up(settings):
    from wopr.checks import check_failed_order_policy

    settings.FAILED_ORDER_POLICY = "refnud"

    [error] = check_failed_order_policy()

    assert error.id == "wopr.E080"
    settings.FAILED_ORDER_POLICY = "refund"
    assert check_failed_order_policy() == []
    with pytest.raises(Exception, match="FAILED_ORDER_POLICY"):
        settings.FAILED_ORDER_POLICY = "bogus"
        call_command("check")


def test_a_worker_dying_between_refund_and_cancel_is_finished_by_the_sweep_with_one_of_each(
    settings, stripe_world, fail_for_good, monkeypatch, django_capture_on_commit_callbacks
):
    import billing.remedy
    import provisioning.remedies
    from provisioning.tasks import jobs_sweep

    settings.FAILED_ORDER_POLICY = "refund"
    cancel = billing.remedy._cancel

    def die(client, remedy):
        raise RuntimeError("the worker was killed")

    # The queue message is lost, then the worker that does get it dies after the refund.
    monkeypatch.setattr(provisioning.remedies, "task_enqueue_after_commit", lambda *a, **k: None)
    fail_for_good()
    remedy = OrderRemedy.objects.get()
    assert (remedy.state, remedy.refunded_at) == (RemedyState.REFUNDING, None)
    monkeypatch.setattr(billing.remedy, "_cancel", die)
    with pytest.raises(RuntimeError):
        order_remedy_run(remedy_id=remedy.pk)
    remedy.refresh_from_db()
    assert remedy.refunded_at is not None and remedy.subscription_cancelled_at is None
    monkeypatch.setattr(billing.remedy, "_cancel", cancel)

    with django_capture_on_commit_callbacks(execute=True):
        jobs_sweep()

    remedy.refresh_from_db()
    assert remedy.state == RemedyState.DONE
    assert len(stripe_world.made("POST", "/v1/refunds")) == 1
    assert len(stripe_world.made("DELETE", f"/v1/subscriptions/{SUB}")) == 1


def test_two_clicks_at_once_claim_the_remedy_once(stripe_world, fail_for_good, admin_user):
    from billing.remedy import order_remedy_start

    fail_for_good()
    remedy = OrderRemedy.objects.get()

    first = order_remedy_start(remedy_id=remedy.pk, requested_by=admin_user)
    second = order_remedy_start(remedy_id=remedy.pk, requested_by=admin_user)

    assert (first, second) == (True, False)
    remedy.refresh_from_db()
    assert (remedy.state, remedy.decided_by) == (RemedyState.REFUNDING, admin_user)
