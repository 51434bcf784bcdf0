"""Power on for export: during a decommission's grace period staff power the server on for a
time-boxed window so the customer can take their data; the job powers it off again after, and
the deletion date never moves."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.urls import reverse

from integrations.clouds.fake import FakeCloud
from provisioning.checkpoint import Checkpoint
from provisioning.models import Beacon, FakeServer, Job, JobEvent, JobState
from provisioning.services import beacon_export_window_open
from tests.lifecycle.stripe_events import subscription_deleted_event, subscription_event
from wopr.models import StaffAction

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:provisioning_beacon_changelist"
POLL = timedelta(seconds=10)  # more than JOB_POLL_SECONDS: the job's next look at the server


@pytest.fixture
def click(admin_client, django_capture_on_commit_callbacks):
    """Press "Power on for export" on one Beacon: `confirm` answers the confirmation page."""

    def _click(beacon: Beacon, *, confirm: bool = True) -> str:
        data = {"action": "power_on_for_export", "_selected_action": [str(beacon.pk)]}
        if confirm:
            data["post"] = "yes"
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse(CHANGELIST), data, follow=True)
        assert response.status_code == 200
        beacon.refresh_from_db()
        return response.content.decode()

    return _click


@pytest.fixture
def power_ons(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every power-on the fake cloud is asked for, by server id."""
    calls: list[str] = []
    original = FakeCloud.power_on

    def counted(self: FakeCloud, server_id: str) -> str:
        calls.append(server_id)
        return original(self, server_id)

    monkeypatch.setattr(FakeCloud, "power_on", counted)
    return calls


@pytest.fixture
def cancelled(buy, deliver, clock):
    """A bought Beacon whose subscription was deleted: its decommission waits out the grace."""

    def _cancelled(name: str):
        bought = buy(name)
        now = clock.stamp()
        deliver(subscription_deleted_event(bought.subscription_id, at=now))
        job = Job.objects.get(beacon=bought.beacon, kind="decommission")
        assert (job.state, job.step) == ("waiting", "wait_grace")
        assert not powered_on(bought.beacon)
        mail.outbox.clear()
        return bought.refresh()

    return _cancelled


def powered_on(beacon: Beacon) -> bool:
    return FakeServer.objects.get(pk=beacon.provider_server_id).powered_on


def decommission(beacon: Beacon) -> Job:
    return Job.objects.get(beacon=beacon, kind="decommission")


def deletion_date(beacon: Beacon) -> datetime:
    return Checkpoint(decommission(beacon).checkpoint).decommission_at


def export_emails() -> list:
    return [m for m in mail.outbox if "to export your data" in m.subject]


def test_power_on_for_export_tells_the_customer_once_and_powers_off_after_the_window(
    cancelled, click, clock, sweep, power_ons
):
    bought = cancelled("exp1")
    deletion = deletion_date(bought.beacon)
    opened = clock.now()

    click(bought.beacon)

    assert powered_on(bought.beacon)
    until = bought.beacon.export_until
    assert abs(until - (opened + timedelta(hours=48))) < timedelta(seconds=5)
    clock.advance(seconds=POLL.total_seconds())
    sweep()
    (message,) = export_emails()
    assert message.to == [bought.order.email]
    assert message.subject == (
        f"Your Beacon exp1.beacons.test is on until {until:%-d %B %Y, %H:%M} UTC "
        "for you to export your data"
    )
    assert "https://exp1.beacons.test" in message.body
    assert f"on {deletion:%-d %B %Y, %H:%M} UTC we delete the server" in message.body
    assert decommission(bought.beacon).next_attempt_at == until

    clock.advance(hours=47)
    sweep()
    assert powered_on(bought.beacon)
    assert len(export_emails()) == 1

    clock.advance(hours=1, minutes=1)
    sweep()
    assert not powered_on(bought.beacon)
    clock.advance(seconds=POLL.total_seconds())
    sweep()
    job = decommission(bought.beacon)
    assert (job.state, job.step, job.next_attempt_at) == ("waiting", "wait_grace", deletion)
    assert deletion_date(bought.beacon) == deletion
    assert len(export_emails()) == 1
    assert power_ons == [bought.beacon.provider_server_id]

    clock.advance(days=7)
    sweep()
    assert FakeServer.objects.get(pk=bought.beacon.provider_server_id).deleted
    assert bought.refresh().beacon.status == "decommissioned"


def test_the_window_is_cut_at_the_deletion_date_and_the_server_is_off_before_deletion(
    cancelled, click, clock, sweep, settings
):
    settings.EXPORT_WINDOW_HOURS = 24 * 30
    bought = cancelled("exp2")
    deletion = deletion_date(bought.beacon)

    page = click(bought.beacon, confirm=False)
    assert "(cut at the deletion date)" in page
    click(bought.beacon)

    assert bought.beacon.export_until == deletion
    clock.advance(seconds=POLL.total_seconds())
    sweep()
    assert decommission(bought.beacon).next_attempt_at == deletion

    clock.advance(days=7)
    sweep()
    server = FakeServer.objects.get(pk=bought.beacon.provider_server_id)
    assert (server.powered_on, server.deleted) == (False, False)  # off first, deleted after
    clock.advance(seconds=POLL.total_seconds())
    sweep()
    server.refresh_from_db()
    assert server.deleted
    assert deletion_date(bought.beacon) == deletion


def test_a_server_that_will_not_power_off_does_not_hold_up_its_deletion_for_ever(
    cancelled, click, clock, sweep, settings, monkeypatch
):
    settings.EXPORT_WINDOW_HOURS = 24 * 30
    bought = cancelled("exp9")
    click(bought.beacon)
    clock.advance(seconds=POLL.total_seconds())
    sweep()
    assert powered_on(bought.beacon)
    monkeypatch.setattr(FakeCloud, "power_off", lambda self, server_id: "ignored")

    clock.advance(days=7, minutes=1)
    sweep()
    server = FakeServer.objects.get(pk=bought.beacon.provider_server_id)
    assert not server.deleted  # still asked to go off, for a while
    clock.advance(minutes=11)
    sweep()
    clock.advance(seconds=POLL.total_seconds())
    sweep()

    server.refresh_from_db()
    assert server.deleted
    assert decommission(bought.beacon).state == JobState.COMPLETED


def test_the_confirmation_page_says_what_happens_and_does_nothing(cancelled, click):
    bought = cancelled("exp3")
    deletion = deletion_date(bought.beacon)

    page = click(bought.beacon, confirm=False)

    assert "exp3.beacons.test" in page
    assert "Powered on until" in page
    assert "then powered off again" in page
    assert f"Deletion date unchanged: <strong>{deletion:%Y-%m-%d %H:%M} UTC</strong>" in page
    assert 'value="Yes, power them on for export"' in page
    assert not powered_on(bought.beacon)
    assert bought.beacon.export_until is None
    assert not JobEvent.objects.filter(message__contains="power on for export").exists()
    assert export_emails() == []


def test_staff_who_opened_the_window_is_on_the_timeline_and_in_the_admin_log(
    cancelled, click, admin_user
):
    bought = cancelled("exp4")

    content = click(bought.beacon)

    assert "Power on for export — exp4: server exp4.beacons.test powered on until" in content
    event = JobEvent.objects.get(job=decommission(bought.beacon), message__contains="for export")
    assert event.message.endswith("(by admin)")
    assert "deletion date unchanged" in event.message
    assert StaffAction.objects.filter(
        target_id=str(bought.beacon.pk), user=admin_user, action="beacon.export"
    ).exists()


def test_export_is_refused_outside_the_grace_period(buy, click, power_ons):
    bought = buy("exp5")

    page = click(bought.beacon, confirm=False)
    assert "Not possible: only while a decommission waits out its grace period." in page
    assert "Yes, power them on for export" not in page
    content = click(bought.beacon)

    assert "refused: only while a decommission waits out its grace period" in content
    assert bought.beacon.export_until is None
    assert power_ons == []


def test_repeated_clicks_power_on_once_and_send_one_email(
    cancelled, click, clock, sweep, power_ons
):
    bought = cancelled("exp6")
    click(bought.beacon)
    until = bought.beacon.export_until

    clock.advance(minutes=5)
    content = click(bought.beacon)
    clock.advance(seconds=POLL.total_seconds())
    sweep()
    click(bought.beacon)
    sweep()

    assert f"refused: already powered on until {until:%Y-%m-%d %H:%M} UTC" in content
    assert bought.beacon.export_until == until
    assert power_ons == [bought.beacon.provider_server_id]
    assert len(export_emails()) == 1


def test_a_new_window_after_the_first_one_ended_powers_on_and_tells_again(
    cancelled, click, clock, sweep, power_ons
):
    bought = cancelled("exp7")
    click(bought.beacon)
    clock.advance(seconds=POLL.total_seconds())
    sweep()
    assert len(export_emails()) == 1
    clock.advance(hours=48, minutes=1)
    sweep()
    assert not powered_on(bought.beacon)

    click(bought.beacon)
    clock.advance(seconds=POLL.total_seconds())
    sweep()

    assert powered_on(bought.beacon)
    assert len(power_ons) == 2
    assert len(export_emails()) == 2


def test_a_window_is_refused_while_a_worker_runs_the_step(cancelled, admin_user):
    """The running step would overwrite the wake-up with its own wait: staff try again."""
    bought = cancelled("exp8")
    Job.objects.filter(beacon=bought.beacon, kind="decommission").update(state=JobState.RUNNING)

    outcome = beacon_export_window_open(beacon=bought.beacon, hours=48, requested_by=admin_user)

    assert outcome.startswith("refused: the decommission job is busy")
    bought.refresh()
    assert bought.beacon.export_until is None  # rolled back with the job's claim


def test_decommission_now_during_a_window_powers_off_then_deletes(
    cancelled, click, clock, sweep, admin_client, django_capture_on_commit_callbacks
):
    bought = cancelled("exp9")
    click(bought.beacon)
    assert powered_on(bought.beacon)

    data = {"action": "decommission_now", "_selected_action": [str(bought.beacon.pk)]}
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse(CHANGELIST), {**data, "post": "yes"})

    server = FakeServer.objects.get(pk=bought.beacon.provider_server_id)
    assert (server.powered_on, server.deleted) == (False, False)
    clock.advance(seconds=POLL.total_seconds())
    sweep()
    server.refresh_from_db()
    assert server.deleted


def test_the_changelist_shows_and_filters_beacons_in_an_export_window(
    cancelled, buy, click, admin_client
):
    bought = cancelled("exp10")
    click(bought.beacon)
    buy("exp11")
    url = reverse(CHANGELIST)

    listed = admin_client.get(url).content.decode()
    filtered = admin_client.get(url + "?export_window=open").content.decode()

    assert f"{bought.beacon.export_until:%Y-%m-%d %H:%M}" in listed
    assert "exp10.beacons.test" in filtered
    assert "exp11.beacons.test" not in filtered


def test_the_cancellation_email_offers_a_power_on_for_export(buy, deliver, clock, settings):
    settings.SUPPORT_EMAIL = "help@wopr.test"
    settings.EXPORT_WINDOW_HOURS = 36
    bought = buy("exp12")
    mail.outbox.clear()
    now = clock.stamp()

    deliver(subscription_deleted_event(bought.subscription_id, at=now))

    (message,) = mail.outbox
    offer = "we can power the server on for 36 hours (never past that date) so you can export it"
    assert offer in message.body
    assert "reply to this e-mail or write to help@wopr.test" in message.body
    assert offer in message.alternatives[0][0]


def test_a_window_of_a_cancelled_decommission_does_not_power_on_the_next_one(
    cancelled, click, deliver, clock, sweep, power_ons
):
    bought = cancelled("exp13")
    click(bought.beacon)
    clock.advance(hours=1)
    deliver(
        subscription_event(
            "sub_again_exp13",
            status="active",
            created=clock.stamp(),
            event_type="customer.subscription.created",
            metadata={"wopr_order_id": str(bought.order.pk)},
        )
    )
    assert bought.refresh().beacon.status == "active"

    clock.advance(hours=1)
    now = clock.stamp()
    deliver(subscription_deleted_event("sub_again_exp13", at=now))
    clock.advance(seconds=POLL.total_seconds())
    sweep()

    job = Job.objects.filter(beacon=bought.beacon, kind="decommission").latest("created_at")
    assert (job.state, job.step) == ("waiting", "wait_grace")
    assert bought.refresh().beacon.export_until is None
    assert not powered_on(bought.beacon)
    assert len(power_ons) == 1  # the export window's (the resume found the server on)


def test_power_on_for_export_from_the_beacon_page_says_until_when_and_powers_on_once(
    cancelled, admin_client, django_capture_on_commit_callbacks, power_ons
):
    bought = cancelled("exp-page")
    url = reverse("admin:provisioning_beacon_act", args=[bought.beacon.pk, "export"])
    shown = admin_client.get(url).content.decode()
    subject = html.unescape(re.search(r'name="subject" value="([^"]*)"', shown)[1])
    assert not powered_on(bought.beacon)  # the page only says what will happen

    for _ in range(2):  # a second press from the same page powers on nothing more
        with django_capture_on_commit_callbacks(execute=True):
            answer = admin_client.post(url, {"post": "yes", "subject": subject}, follow=True)
        assert answer.status_code == 200

    bought.beacon.refresh_from_db()
    assert powered_on(bought.beacon) and bought.beacon.export_until is not None
    assert power_ons == [bought.beacon.provider_server_id]
