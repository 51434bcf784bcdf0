"""The Beacon page's buttons (provisioning.beacon_actions): each opens a confirmation page that
says what will be made or deleted, acts only on its POST, needs its role's permission, answers
a button that cannot apply with a message, and leaves a line in the audit trail."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Order, Tier
from documents.models import Document, EmailMessage
from documents.services import document_path
from provisioning import tasks, welcome
from provisioning.beacon_actions import ACTIONS, emails_pdfs, plans
from provisioning.models import Beacon, BeaconStatus, FakeServer, Job, JobState, StaffHold
from tests.test_admin import make_beacon, make_job, run_action
from wopr.models import StaffAction, StaffNote

pytestmark = pytest.mark.django_db


# --- helpers ----------------------------------------------------------------------------------


def staff(role: str) -> tuple[Client, object]:
    """A client signed in as a staff user (no superuser) whose only group is `role`."""
    user = get_user_model().objects.create_user(username=f"{role}-beacon", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client, user


def act_url(beacon: Beacon, action: str) -> str:
    return reverse("admin:provisioning_beacon_act", args=[beacon.pk, action])


def page(client: Client, beacon: Beacon) -> str:
    response = client.get(reverse("admin:provisioning_beacon_change", args=[beacon.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def confirm(django_capture_on_commit_callbacks):
    """GET the confirmation page, then POST its answer as the page would (post=yes and the
    subject the page carries, which must be the plan's); everything enqueued after commit runs
    inline. Returns the final page."""

    def _confirm(client: Client, beacon: Beacon, action: str) -> str:
        shown = client.get(act_url(beacon, action))
        assert shown.status_code == 200
        subject = html.unescape(re.search(r'name="subject" value="([^"]*)"', shown.text)[1])
        assert subject == ACTIONS[action].plan(Beacon.objects.get(pk=beacon.pk)).subject
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post(
                act_url(beacon, action), {"post": "yes", "subject": subject}, follow=True
            )
        assert answer.status_code == 200
        beacon.refresh_from_db()
        return answer.content.decode()

    return _confirm


def failed_beacon() -> Beacon:
    beacon = make_beacon(status=BeaconStatus.FAILED)
    make_job(
        beacon,
        state=JobState.FAILED,
        step="create_server",
        last_error="hetzner said no",
        finished_at=timezone.now(),
    )
    return beacon


# --- retry: the browser test's flow -----------------------------------------------------------


def test_a_failed_beacon_is_retried_from_its_page_after_a_confirmation(
    admin_client, admin_user, confirm
):
    beacon = failed_beacon()

    assert f'href="{act_url(beacon, "retry")}">Retry</a>' in page(admin_client, beacon)
    shown = admin_client.get(act_url(beacon, "retry")).content.decode()
    assert "starts again from its first step, choose_provider" in shown
    assert "hetzner said no" in shown
    assert "Yes, retry the provision job" in shown
    assert Job.objects.get(beacon=beacon).state == JobState.FAILED  # GET changes nothing

    content = confirm(admin_client, beacon, "retry")

    assert "Retry: provision job" in content and "retried" in content
    job = Job.objects.get(beacon=beacon)
    assert job.state != JobState.FAILED
    assert job.events.filter(message__contains=f"(by {admin_user})").exists()
    record = StaffAction.objects.get(action="beacon.retry")
    assert (record.user, record.target_id) == (admin_user, str(beacon.pk))
    assert record.outcome.endswith("retried")


def test_a_post_without_csrf_is_refused(admin_user):
    beacon = failed_beacon()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    response = client.post(act_url(beacon, "retry"), {"post": "yes"})

    assert response.status_code == 403
    assert Job.objects.get(beacon=beacon).state == JobState.FAILED


def test_a_stale_confirmation_page_does_not_act_on_another_job(admin_client):
    beacon = failed_beacon()

    response = admin_client.post(
        act_url(beacon, "retry"), {"post": "yes", "subject": "some-other-job"}, follow=True
    )

    assert "the Beacon changed since the page was shown" in response.content.decode()
    assert Job.objects.get(beacon=beacon).state == JobState.FAILED


# --- roles ------------------------------------------------------------------------------------


def test_support_may_retry_but_sees_no_decommission_and_is_refused_it():
    client, _ = staff("support")
    beacon = failed_beacon()

    content = page(client, beacon)

    assert ">Retry</a>" in content
    assert "Decommission" not in content
    assert "Suspend" not in content
    for action in ("decommission", "suspend", "cancel", "resize", "restore"):
        assert client.get(act_url(beacon, action)).status_code == 403, action
        assert client.post(act_url(beacon, action), {"post": "yes"}).status_code == 403, action
    assert not StaffAction.objects.exists()


def test_operations_may_suspend_but_not_decommission_and_owner_may_both():
    beacon = make_beacon(status=BeaconStatus.ACTIVE)
    operations, _ = staff("operations")
    owner, _ = staff("owner")

    assert ">Suspend</a>" in page(operations, beacon)
    assert "Decommission" not in page(operations, beacon)
    assert operations.get(act_url(beacon, "decommission")).status_code == 403
    assert operations.get(act_url(beacon, "cancel")).status_code == 403  # deletes: the owner's
    assert ">Decommission</a>" in page(owner, beacon)
    assert owner.get(act_url(beacon, "decommission")).status_code == 200


def test_changelist_actions_follow_the_roles_and_are_audited(django_capture_on_commit_callbacks):
    beacon = make_beacon(status=BeaconStatus.ACTIVE)
    support, _ = staff("support")
    operations, user = staff("operations")
    changelist = reverse("admin:provisioning_beacon_changelist")

    offered = support.get(changelist).content.decode()
    assert 'value="retry_job"' in offered
    assert 'value="suspend_beacon"' not in offered
    assert 'value="decommission_now"' not in offered
    with django_capture_on_commit_callbacks(execute=False):
        run_action(support, Beacon, "suspend_beacon", [beacon])
        run_action(operations, Beacon, "suspend_beacon", [beacon])

    beacon.refresh_from_db()
    assert beacon.staff_hold == StaffHold.SUSPEND
    (record,) = StaffAction.objects.filter(action="beacon.suspend")
    assert (record.user, record.detail["via"]) == (user, "changelist")


# --- a button that cannot apply ---------------------------------------------------------------


def test_a_button_that_cannot_apply_is_disabled_with_its_reason_and_its_post_only_says_so(
    admin_client,
):
    beacon = make_beacon(status=BeaconStatus.ACTIVE)

    content = page(admin_client, beacon)

    assert 'aria-disabled="true" title="it is not suspended by staff (it is active)">Resume' in (
        content
    )
    assert f'href="{act_url(beacon, "resume")}"' not in content
    response = admin_client.post(act_url(beacon, "resume"), {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert "Resume: not done: it is not suspended by staff" in response.content.decode()
    assert not Job.objects.filter(beacon=beacon).exists()
    assert StaffAction.objects.get(action="beacon.resume").outcome.startswith("not done")


@pytest.mark.parametrize(
    ("status", "action", "reason"),
    [
        (BeaconStatus.ACTIVE, "export", "only while a decommission waits out its grace period"),
        (BeaconStatus.ACTIVE, "cancel", "no job of this Beacon is unfinished"),
        (BeaconStatus.ACTIVE, "restore", "it has no available snapshot"),
        (BeaconStatus.ACTIVE, "resize", "it runs the tier its order pays for"),
        (BeaconStatus.PROVISIONING, "resend_welcome", "it is not ready"),
        (BeaconStatus.DECOMMISSIONED, "decommission", "it is decommissioned already"),
        (BeaconStatus.FAILED, "suspend", "a failed Beacon cannot be suspended"),
    ],
)
def test_each_refusal_is_said_on_the_confirmation_page(admin_client, status, action, reason):
    beacon = make_beacon(status=status)

    content = admin_client.get(act_url(beacon, action)).content.decode()

    assert "cannot apply now: " + reason in content
    assert "Yes," not in content


def test_an_unknown_action_is_404(admin_client):
    beacon = make_beacon()

    assert admin_client.get(act_url(beacon, "reboot")).status_code == 404


# --- what the confirmation pages say, and the acts ---------------------------------------------


def test_cancel_says_what_it_deletes_and_undoes_the_provision_job(admin_client, confirm):
    beacon = make_beacon(provider_server_id="42", server_size="cx22", ipv4="192.0.2.7")
    job = make_job(beacon, step="create_server")

    shown = admin_client.get(act_url(beacon, "cancel")).content.decode()
    assert "fake server 42 (cx22 in ?, 192.0.2.7)" in shown
    assert f"any other A/AAAA record at {beacon.fqdn}" in shown
    assert "Yes, cancel the provision job" in shown

    confirm(admin_client, beacon, "cancel")

    job.refresh_from_db()
    assert job.step == "compensate" or job.state == JobState.CANCELLED


def test_suspend_and_resume_from_the_page_power_the_server_off_and_on(admin_client, buy, confirm):
    beacon = buy("page1")

    shown = admin_client.get(act_url(beacon, "suspend")).content.decode()
    assert f"fake server {beacon.provider_server_id} ({beacon.fqdn}) is powered off" in shown
    assert "nothing is deleted" in shown
    confirm(admin_client, beacon, "suspend")

    assert (beacon.status, beacon.staff_hold) == (BeaconStatus.SUSPENDED, StaffHold.SUSPEND)
    assert FakeServer.objects.get(pk=beacon.provider_server_id).powered_on is False

    confirm(admin_client, beacon, "resume")

    assert (beacon.status, beacon.staff_hold) == (BeaconStatus.ACTIVE, StaffHold.NONE)
    assert FakeServer.objects.get(pk=beacon.provider_server_id).powered_on is True
    actions = list(StaffAction.objects.order_by("at", "id").values_list("action", flat=True))
    assert actions == ["beacon.suspend", "beacon.resume"]


def test_decommission_lists_the_server_and_records_and_starts_deleting(admin_client, buy, confirm):
    beacon = buy("page2")

    shown = admin_client.get(act_url(beacon, "decommission")).content.decode()
    assert f"fake server {beacon.provider_server_id}" in shown
    assert f"DNS: A {beacon.fqdn} → {beacon.ipv4}" in shown
    assert "a final snapshot of the server" in shown
    assert f"Yes, decommission {beacon.name} now" in shown

    confirm(admin_client, beacon, "decommission")

    assert beacon.staff_hold == StaffHold.DECOMMISSION
    assert Job.objects.filter(beacon=beacon, kind="decommission").exists()
    assert StaffAction.objects.filter(action="beacon.decommission").exists()


def test_resize_says_from_and_to_and_resizes_to_the_paid_tier(admin_client, buy, confirm):
    beacon = buy("page3")
    before = beacon.server_size
    Order.objects.filter(pk=beacon.order_id).update(tier=Tier.objects.get(slug="t2"))

    shown = admin_client.get(act_url(beacon, "resize")).content.decode()
    assert f"moves from {before} (tier t1) to " in shown
    assert "(tier t2, what its order pays for)" in shown

    confirm(admin_client, beacon, "resize")

    assert Job.objects.filter(beacon=beacon, kind="resize").exists()
    assert beacon.tier.slug == "t2"
    assert FakeServer.objects.get(pk=beacon.provider_server_id).size == beacon.server_size


def test_regenerate_pdfs_says_what_it_replaces_and_queues_one_task(
    admin_client, buy, monkeypatch, django_capture_on_commit_callbacks
):
    beacon = buy("page4")
    document = Document.objects.get(beacon=beacon, kind="welcome_card")
    before = document_path(document).stat().st_ino
    shown = admin_client.get(act_url(beacon, "regenerate_pdfs")).content.decode()
    assert f"welcome_card: replaced (the stored {document.size_bytes}-byte PDF" in shown
    assert "nobody is e-mailed" in shown
    queued = []
    monkeypatch.setattr(
        emails_pdfs, "task_enqueue_after_commit", lambda *args, **kw: queued.append(args)
    )
    subject = ACTIONS["regenerate_pdfs"].plan(beacon).subject

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            act_url(beacon, "regenerate_pdfs"), {"post": "yes", "subject": subject}, follow=True
        )

    assert queued == [("provisioning.tasks.beacon_documents_regenerate", str(beacon.pk))]
    assert "queued: the PDFs are rendered in the background" in answer.content.decode()
    assert document_path(document).stat().st_ino == before  # nothing rendered in the request


def test_the_regenerate_task_replaces_the_documents_and_may_run_twice(buy):
    beacon = buy("page4b")
    document = Document.objects.get(beacon=beacon, kind="welcome_card")
    mail.outbox.clear()

    for _ in range(2):  # an intact file is rendered again and replaced each time
        before = document_path(document).stat().st_ino
        assert tasks.beacon_documents_regenerate(str(beacon.pk)) == "regenerated welcome_card"
        document.refresh_from_db()
        path: Path = document_path(document)
        assert path.stat().st_ino != before
        assert path.read_bytes().startswith(b"%PDF")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == document.sha256
    assert Document.objects.filter(beacon=beacon).count() == 1
    assert mail.outbox == []


# --- resend welcome: once per window, never from a stale page ---------------------------------


def test_resend_welcome_sends_it_again_and_stores_its_body(admin_client, buy, confirm):
    beacon = buy("page5")
    mail.outbox.clear()

    final = confirm(admin_client, beacon, "resend_welcome")

    (sent,) = mail.outbox
    assert sent.to == [beacon.order.email]
    row = EmailMessage.objects.get(idempotency_key__startswith=f"welcome-resend:{beacon.pk}:")
    assert row.status == "sent"
    assert "your Beacon is ready" in row.body_text
    assert "your Beacon is ready" in page(admin_client, beacon)
    assert '<li class="success">Resend welcome: welcome e-mail queued' in final


def test_two_posts_of_resend_welcome_send_one_email(
    admin_client, buy, django_capture_on_commit_callbacks
):
    beacon = buy("page6")
    mail.outbox.clear()
    subject = ACTIONS["resend_welcome"].plan(beacon).subject  # the page, shown once

    answers = []
    for _ in range(2):  # a double click: both POSTs carry what the page showed
        with django_capture_on_commit_callbacks(execute=True):
            answers.append(
                admin_client.post(
                    act_url(beacon, "resend_welcome"),
                    {"post": "yes", "subject": subject},
                    follow=True,
                ).content.decode()
            )

    assert len(mail.outbox) == 1
    assert '<li class="warning">Resend welcome: not done' in answers[1]
    outcomes = StaffAction.objects.filter(action="beacon.resend_welcome").order_by("id")
    assert [a.detail["ok"] for a in outcomes] == [True, False]


def test_a_stale_page_after_another_resend_is_refused(
    admin_client, buy, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The window has passed, but the page was shown before someone else's resend."""
    settings.WELCOME_RESEND_MINUTES = 15
    now = [1_800_000_000.0]
    monkeypatch.setattr(welcome, "clock", lambda: now[0])
    beacon = buy("page7")
    stale = ACTIONS["resend_welcome"].plan(beacon).subject
    with django_capture_on_commit_callbacks(execute=True):
        welcome.welcome_resend_queue(beacon=beacon)  # a colleague, or the customer
    now[0] += 3600
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            act_url(beacon, "resend_welcome"), {"post": "yes", "subject": stale}, follow=True
        )

    assert mail.outbox == []
    assert "the Beacon changed since the page was shown" in answer.content.decode()


def test_within_the_window_the_button_is_disabled_with_when_it_may_again(
    admin_client, buy, settings, monkeypatch
):
    settings.WELCOME_RESEND_MINUTES = 15
    now = [1_800_000_000.0]
    monkeypatch.setattr(welcome, "clock", lambda: now[0])
    beacon = buy("page8")
    welcome.welcome_resend_queue(beacon=beacon)
    now[0] += 60

    plan = ACTIONS["resend_welcome"].plan(beacon)

    assert plan.refusal == "it was sent again moments ago; again in 14 minute(s)"
    assert "it was sent again moments ago" in page(admin_client, beacon)


def test_a_resend_that_loses_the_race_is_a_warning_not_a_success(
    admin_client, buy, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Two staff pages planned before either resend committed: the second act finds the
    window's row taken and says so as a warning (it used to read as a success)."""
    settings.WELCOME_RESEND_MINUTES = 15
    monkeypatch.setattr(welcome, "clock", lambda: 1_800_000_000.0)
    beacon = buy("page9")
    welcome.welcome_resend_queue(beacon=beacon)  # the other page's act
    monkeypatch.setattr(emails_pdfs, "welcome_resend_wait", lambda **kwargs: 0)  # planned before
    subject = ACTIONS["resend_welcome"].plan(beacon).subject
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            act_url(beacon, "resend_welcome"), {"post": "yes", "subject": subject}, follow=True
        ).content.decode()

    assert '<li class="warning">Resend welcome: not sent: the welcome e-mail was sent' in answer
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("refused: the decommission job is busy this moment; try again in a minute", False),
        ("too late: the decommission is already deleting", False),
        ("the last suspend job failed; staff must retry it", False),
        ("suspend job 3 started", True),
        ("decommission brought forward to now", True),
    ],
)
def test_a_staff_services_answer_becomes_a_status(text, ok):
    assert plans.service_outcome(text) == plans.Outcome(text=text, ok=ok)


def test_restore_links_each_available_snapshot_to_its_own_confirmation(admin_client):
    from backups.models import BackupSnapshot

    beacon = make_beacon(status=BeaconStatus.ACTIVE)
    snapshot = BackupSnapshot.objects.create(
        beacon=beacon,
        name="wopr-snap-1",
        kind="daily",
        status="available",
        provider=beacon.provider,
        expires_at=timezone.now(),
    )

    shown = admin_client.get(act_url(beacon, "restore")).content.decode()

    assert reverse("admin:backups_backupsnapshot_restore", args=[snapshot.pk]) in shown
    assert "Yes," not in shown  # the snapshot's own page asks


# --- notes ------------------------------------------------------------------------------------


def test_staff_add_a_note_on_the_beacon_signed_with_their_name(admin_client, admin_user):
    beacon = make_beacon()
    url = reverse("admin:provisioning_beacon_note", args=[beacon.pk])

    admin_client.post(url, {"body": "Customer called: <b>keep</b> it"})

    note = StaffNote.objects.get(beacon=beacon)
    assert (note.author, note.author_name) == (admin_user, "admin")
    content = page(admin_client, beacon)
    assert "Customer called: &lt;b&gt;keep&lt;/b&gt; it" in content
    assert StaffAction.objects.get(action="beacon.note").target_id == str(beacon.pk)
    assert admin_client.get(url).status_code == 404  # add-only, by POST


def test_a_staff_user_without_the_note_permission_is_refused():
    beacon = make_beacon()
    user = get_user_model().objects.create_user(username="nobody", is_staff=True)
    client = Client()
    client.force_login(user)

    response = client.post(
        reverse("admin:provisioning_beacon_note", args=[beacon.pk]), {"body": "hi"}
    )

    assert response.status_code == 403
    assert not StaffNote.objects.exists()
