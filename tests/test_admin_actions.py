"""Staff actions in the admin (issue 9, item 16): the attention flag reads as a warning, a
retry names who asked and lowers the flag once the retried job succeeds, and the actions that
delete servers ask first, saying exactly what goes and what stays."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import Order
from dns.models import DnsRecord
from documents.models import Document, DocumentKind
from provisioning.jobs import WORKFLOWS, Done, Workflow, job_advance
from provisioning.models import Beacon, BeaconStatus, Job, JobState, StaffHold
from tests.test_admin import make_beacon, make_job, make_order, run_action

pytestmark = pytest.mark.django_db

FAILURE = "provisioning failed: hetzner said no"


# --- the attention flag -----------------------------------------------------------------------


def test_an_order_that_needs_attention_shows_a_warning_not_a_green_tick(admin_client):
    make_order(needs_attention=True, attention_reason=FAILURE)
    make_order()

    page = admin_client.get(reverse("admin:billing_order_changelist")).content.decode()

    assert "icon-yes.svg" not in page  # Django's green tick, which read as "all good"
    assert page.count("icon-alert.svg") == 1
    assert "Needs attention" in page


# --- retry: who, and the flag -----------------------------------------------------------------


@pytest.fixture
def one_step_provision(monkeypatch):
    """The provision workflow shrunk to one step that succeeds, so a retried job completes
    through the real engine (claim, run, finish) without a cloud."""
    workflow = Workflow(steps=(("only", lambda job: Done(message="done")),))
    monkeypatch.setitem(WORKFLOWS, "provision", workflow)


def failed_flagged_job() -> Job:
    job = make_job(state=JobState.FAILED, step="create_server", finished_at=timezone.now())
    Order.objects.filter(pk=job.beacon.order_id).update(
        needs_attention=True, attention_reason=FAILURE
    )
    return job


def test_retry_job_names_the_staff_member_on_the_timeline(
    admin_client, admin_user, django_capture_on_commit_callbacks
):
    job = make_job(state=JobState.FAILED, step="create_server", finished_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=False):
        run_action(admin_client, Job, "retry_job", [job])

    messages = list(job.events.values_list("message", flat=True))
    assert f"retried by staff from the first step (by {admin_user})" in messages


def test_a_successful_retry_clears_the_flag_and_says_so_on_the_timeline(
    admin_client, one_step_provision, django_capture_on_commit_callbacks
):
    job = failed_flagged_job()

    with django_capture_on_commit_callbacks(execute=False):
        run_action(admin_client, Job, "retry_job", [job])
        assert job_advance(job_id=job.pk)

    job.refresh_from_db()
    order = Order.objects.get(pk=job.beacon.order_id)
    assert job.state == JobState.COMPLETED
    assert (order.needs_attention, order.attention_reason) == (False, "")
    last = job.events.order_by("-at", "-id").first()
    assert "needs-attention flag is cleared" in last.message
    assert FAILURE in last.message


def test_a_flag_raised_for_another_reason_after_the_retry_stays(
    admin_client, one_step_provision, django_capture_on_commit_callbacks
):
    job = failed_flagged_job()

    with django_capture_on_commit_callbacks(execute=False):
        run_action(admin_client, Job, "retry_job", [job])
        Order.objects.filter(pk=job.beacon.order_id).update(attention_reason="refund asked")
        assert job_advance(job_id=job.pk)

    order = Order.objects.get(pk=job.beacon.order_id)
    assert Job.objects.get(pk=job.pk).state == JobState.COMPLETED
    assert (order.needs_attention, order.attention_reason) == (True, "refund asked")


# --- confirmation before deleting ------------------------------------------------------------


def beacon_with_server() -> Beacon:
    beacon = make_beacon(
        provider_server_id="4711",
        ipv4="192.0.2.44",
        server_size="cx22",
        provider_location="fsn1",
        status=BeaconStatus.ACTIVE,
    )
    DnsRecord.objects.create(beacon=beacon, record_type="A", name=beacon.fqdn, content="192.0.2.44")
    Document.objects.create(
        beacon=beacon, kind=DocumentKind.WELCOME_CARD, path="w.pdf", sha256="0" * 64, size_bytes=1
    )
    return beacon


def test_decommission_now_first_shows_exactly_what_will_be_deleted_and_does_nothing(
    admin_client, django_capture_on_commit_callbacks
):
    beacon = beacon_with_server()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        page = run_action(admin_client, Beacon, "decommission_now", [beacon])

    beacon.refresh_from_db()
    assert beacon.staff_hold == StaffHold.NONE
    assert not beacon.jobs.exists() and not callbacks
    assert "Decommission these Beacons now?" in page
    assert f"{beacon.name} — {beacon.fqdn}" in page
    assert "Server: fake server 4711 (cx22 in fsn1, 192.0.2.44)" in page
    assert f"DNS: A {beacon.fqdn} → 192.0.2.44" in page
    assert f"wopr-beacon={beacon.pk}" in page  # and where it looks for unrecorded servers
    assert "1 document(s): Welcome card (PDFs stay on disk)" in page
    assert 'name="post" value="yes"' in page


def test_decommission_now_acts_once_confirmed(admin_client, django_capture_on_commit_callbacks):
    beacon = beacon_with_server()

    with django_capture_on_commit_callbacks(execute=False):
        page = run_action(admin_client, Beacon, "decommission_now", [beacon], confirm=True)

    beacon.refresh_from_db()
    assert beacon.staff_hold == StaffHold.DECOMMISSION
    assert beacon.jobs.filter(kind="decommission").exists()
    assert "Decommission now —" in page


def test_cancel_job_first_shows_what_the_cancellation_deletes_and_does_nothing(
    admin_client, django_capture_on_commit_callbacks
):
    job = make_job(beacon_with_server(), step="wait_for_server", state=JobState.WAITING)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        page = run_action(admin_client, Job, "cancel_job", [job])

    job.refresh_from_db()
    assert (job.state, job.step) == (JobState.WAITING, "wait_for_server")
    assert not callbacks
    assert "Cancel these jobs?" in page
    assert "is cancelled and undone" in page
    assert "Server: fake server 4711" in page
    assert f"DNS: A {job.beacon.fqdn} → 192.0.2.44" in page
    assert "Welcome card (PDFs stay on disk)" in page


def test_cancelling_a_suspend_job_says_that_nothing_is_deleted(
    admin_client, django_capture_on_commit_callbacks
):
    job = make_job(beacon_with_server(), kind="suspend", step="power_off")

    with django_capture_on_commit_callbacks(execute=False):
        page = run_action(admin_client, Beacon, "cancel_job", [job.beacon])

    assert "stops at step power_off. Nothing is deleted." in page
    assert "Server: fake server" not in page
