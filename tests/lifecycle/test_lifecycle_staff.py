"""Staff levers in the admin (each names who pulled it), the settings check, plan changes, and
Stripe's synced view winning in online mode."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.checks import run_checks
from django.urls import reverse
from django.utils import timezone
from djstripe.models import Customer as StripeCustomer
from djstripe.models import Subscription as StripeSubscription

from billing.models import Price
from billing.subscriptions import subscription_event_record
from provisioning.models import Beacon, FakeServer, Job, JobEvent
from tests.lifecycle.stripe_events import subscription_event
from wopr.models import StaffAction

pytestmark = pytest.mark.django_db


@pytest.fixture
def act(admin_client, django_capture_on_commit_callbacks):
    """Run a Beacon admin action on one Beacon and everything it enqueues."""

    def _act(action: str, beacon: Beacon) -> str:
        url = reverse("admin:provisioning_beacon_changelist")
        # post=yes: the answer to the confirmation page of the actions that delete.
        data = {"action": action, "_selected_action": [str(beacon.pk)], "post": "yes"}
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(url, data, follow=True)
        assert response.status_code == 200
        beacon.refresh_from_db()
        return response.content.decode()

    return _act


def deleted(bought, clock):
    now = clock.stamp()
    return subscription_event(
        bought.subscription_id,
        status="canceled",
        created=now,
        ended_at=now,
        event_type="customer.subscription.deleted",
    )


def test_staff_suspend_and_resume_record_who_did_it(buy, act, admin_user):
    bought = buy("staff1")

    act("suspend_beacon", bought.beacon)

    assert bought.beacon.status == "suspended"
    assert bought.beacon.staff_hold == "suspend"
    suspend = Job.objects.get(beacon=bought.beacon, kind="suspend")
    assert suspend.requested_by == admin_user
    assert JobEvent.objects.filter(job=suspend, message__contains="(by admin)").exists()
    assert FakeServer.objects.get(pk=bought.beacon.provider_server_id).powered_on is False

    act("resume_beacon", bought.beacon)

    assert (bought.beacon.status, bought.beacon.staff_hold) == ("active", "")
    resume = Job.objects.get(beacon=bought.beacon, kind="resume")
    assert resume.requested_by == admin_user
    assert StaffAction.objects.filter(target_id=str(bought.beacon.pk), user=admin_user).count() == 2


def test_staff_resume_does_not_override_an_unpaid_subscription(buy, deliver, act, clock):
    bought = buy("staff2")
    deliver(subscription_event(bought.subscription_id, status="unpaid", created=clock.stamp(5)))

    content = act("resume_beacon", bought.beacon)

    assert bought.beacon.status == "suspended"
    assert "nothing to do" in content


def test_staff_decommission_now_deletes_at_once(buy, act, admin_user):
    bought = buy("staff3")

    act("decommission_now", bought.beacon)

    assert bought.beacon.status == "decommissioned"
    job = Job.objects.get(beacon=bought.beacon, kind="decommission")
    assert (job.state, job.requested_by) == ("completed", admin_user)
    assert not FakeServer.objects.filter(deleted=False).exists()


def test_staff_bring_a_scheduled_decommission_forward(buy, deliver, act, clock):
    bought = buy("staff4")
    deliver(deleted(bought, clock))

    act("decommission_now", bought.beacon)

    assert bought.beacon.status == "decommissioned"
    job = Job.objects.get(beacon=bought.beacon, kind="decommission")
    assert job.events.filter(message__contains="brought forward to now (by admin)").exists()


def test_staff_cancel_a_scheduled_decommission_and_the_beacon_is_kept_off(
    buy, deliver, act, clock, sweep
):
    bought = buy("staff5")
    deliver(deleted(bought, clock))

    act("cancel_decommission", bought.beacon)

    decommission = Job.objects.get(beacon=bought.beacon, kind="decommission")
    assert decommission.state == "cancelled"
    assert "cancelled by admin" in decommission.last_error
    assert (bought.beacon.status, bought.beacon.staff_hold) == ("suspended", "keep")
    clock.advance(days=8)
    sweep()
    assert FakeServer.objects.get(pk=bought.beacon.provider_server_id).deleted is False
    bought.refresh()
    assert bought.beacon.status == "suspended"  # kept, powered off: nobody pays


def test_staff_actions_need_the_operate_permission(client, django_user_model, buy):
    bought = buy("staff6")
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_beacon"))
    client.force_login(viewer)
    url = reverse("admin:provisioning_beacon_changelist")

    client.post(url, {"action": "suspend_beacon", "_selected_action": [str(bought.beacon.pk)]})

    bought.refresh()
    assert bought.beacon.status == "active"
    assert not Job.objects.filter(kind="suspend").exists()


def test_beacon_page_shows_the_subscription_and_hold(buy, admin_client):
    bought = buy("staff7")

    page = admin_client.get(reverse("admin:provisioning_beacon_change", args=[bought.beacon.pk]))

    assert bought.subscription_id in page.content.decode()


def test_an_unimplemented_suspended_policy_stops_start_up(settings):
    settings.SUSPENDED_POLICY = "snapshot_delete"
    settings.SUSPEND_AFTER_FAILURES = 0

    ids = {message.id for message in run_checks()}

    assert {"wopr.E050", "wopr.E051"} <= ids


def test_a_new_bundle_or_tier_is_recorded_for_staff(buy, deliver, clock):
    bought = buy("plan1")
    price = Price.objects.filter(bundle__slug="creator", tier__slug="t2", mode="test").first()
    Price.objects.filter(pk=price.pk).update(stripe_price_id="price_creator_t2_test")

    deliver(
        subscription_event(
            bought.subscription_id,
            status="active",
            created=clock.stamp(10),
            price_id="price_creator_t2_test",
        )
    )

    bought.refresh()
    assert bought.order.needs_attention
    assert "creator/t2" in bought.order.attention_reason
    assert bought.beacon.bundle.slug == "starter"  # no automatic resize


def test_online_the_synced_subscription_wins_over_the_event(buy, settings, clock):
    """With a Stripe key, dj-stripe has re-fetched the subscription before our receiver runs:
    an event that says `active` about a subscription Stripe now holds `unpaid` suspends."""
    bought = buy("online1")
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_not_used_here"
    customer = StripeCustomer.objects.create(id="cus_online1", livemode=False)
    StripeSubscription.objects.create(
        id=bought.subscription_id,
        customer=customer,
        livemode=False,
        stripe_data={"id": bought.subscription_id, "status": "unpaid"},
    )
    stale = subscription_event(bought.subscription_id, status="active", created=clock.stamp(10))

    order = subscription_event_record(
        subscription=stale["data"]["object"],
        deleted=False,
        event_created=timezone.now(),
        livemode=False,
    )

    assert order.subscription_status == "unpaid"
