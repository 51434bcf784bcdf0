"""Staff restore a snapshot to a new server: made from the image, DNS follows, the old server
goes once the new one runs, never two new servers under a lost answer; asked for on a
confirmation page that says what will happen."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from backups.models import BackupSnapshot
from backups.services import snapshot_restore_start
from backups.tasks import backups_daily
from dns.models import FakeDnsRecord
from provisioning.faults import fault_inject
from provisioning.models import Beacon, FakeServer, Job, JobEvent
from provisioning.teardown import job_cancel_teardown
from wopr.models import StaffAction

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshotted(buy, run):
    """A Beacon with today's snapshot, available."""

    def _snapshotted(name: str) -> tuple[Beacon, BackupSnapshot]:
        beacon = buy(name)
        run(backups_daily)
        return beacon, BackupSnapshot.objects.get(beacon=beacon, status="available")

    return _snapshotted


def a_record(beacon: Beacon) -> str:
    return FakeDnsRecord.objects.get(record_type="A", name=beacon.fqdn).content


def live_servers(beacon: Beacon) -> list[FakeServer]:
    rows = FakeServer.objects.filter(deleted=False).order_by("pk")
    return [row for row in rows if row.labels.get("wopr-beacon") == str(beacon.pk)]


def test_a_restore_makes_a_new_server_from_the_image_moves_dns_and_deletes_the_old(
    snapshotted, run, admin_user
):
    beacon, snapshot = snapshotted("restore1")
    old_server, old_ip = beacon.provider_server_id, beacon.ipv4
    assert a_record(beacon) == old_ip

    outcome = run(lambda: snapshot_restore_start(snapshot=snapshot, requested_by=admin_user))

    assert outcome.startswith("restore job")
    job = Job.objects.get(beacon=beacon, kind="restore")
    assert job.state == "completed" and job.requested_by == admin_user
    beacon.refresh_from_db()
    [new] = live_servers(beacon)
    assert new.image == snapshot.provider_snapshot_id
    assert new.labels == {
        "wopr-beacon": str(beacon.pk),
        "wopr-job": str(job.pk),
        "managed-by": "wopr",
    }
    assert beacon.provider_server_id == str(new.pk) != old_server
    assert beacon.ipv4 == new.ipv4 != old_ip
    assert a_record(beacon) == new.ipv4
    assert FakeDnsRecord.objects.get(record_type="AAAA", name=f"*.{beacon.fqdn}").content == (
        new.ipv6
    )
    assert FakeServer.objects.get(pk=int(old_server)).deleted
    assert beacon.status == "active"
    assert JobEvent.objects.filter(job=job, message__contains="(by admin)").exists()


def test_a_lost_answer_on_the_restore_create_makes_no_second_server(snapshotted, run, clock, sweep):
    beacon, snapshot = snapshotted("restore2")
    fault_inject("provider.create", "lost_response")

    run(lambda: snapshot_restore_start(snapshot=snapshot, requested_by=None))
    job = Job.objects.get(beacon=beacon, kind="restore")
    assert (job.step, job.attempts) == ("create_server", 1)
    clock.advance(minutes=15)
    sweep(3)

    job.refresh_from_db()
    assert job.state == "completed"
    made = FakeServer.objects.filter(labels__isnull=False)
    from_job = [row for row in made if row.labels.get("wopr-job") == str(job.pk)]
    assert len(from_job) == 1  # adopted, not made twice
    assert [server.pk for server in live_servers(beacon)] == [from_job[0].pk]


def test_a_restore_is_refused_while_another_job_runs(snapshotted, run):
    beacon, snapshot = snapshotted("restore3")
    Job.objects.create(beacon=beacon, kind="suspend", step="power_off", state="waiting")

    outcome = snapshot_restore_start(snapshot=snapshot, requested_by=None)

    assert outcome.startswith("not restored: another job")
    assert not Job.objects.filter(beacon=beacon, kind="restore").exists()


def test_the_confirmation_page_says_what_is_made_deleted_and_moved_then_restores(
    snapshotted, admin_client, django_capture_on_commit_callbacks, admin_user
):
    beacon, snapshot = snapshotted("restore4")
    beacon_page = admin_client.get(reverse("admin:provisioning_beacon_change", args=[beacon.pk]))
    url = reverse("admin:backups_backupsnapshot_restore", args=[snapshot.pk])
    assert url in beacon_page.content.decode()  # "Restore this snapshot…" on the Beacon page

    page = admin_client.get(url).content.decode()

    assert f"a new server at fake in {snapshot.location}" in page
    assert f"from snapshot {snapshot.name}" in page
    assert f"fake server {beacon.provider_server_id} ({beacon.ipv4}), once the new server" in page
    assert f"A and AAAA of {beacon.fqdn} move from {beacon.ipv4}" in page
    assert not Job.objects.filter(kind="restore").exists()  # a GET does nothing

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    job = Job.objects.get(beacon=beacon, kind="restore")
    assert job.requested_by == admin_user and job.state == "completed"
    recorded = StaffAction.objects.get(action="snapshot.restore")
    assert (recorded.user, recorded.target_id) == (admin_user, str(snapshot.pk))


def test_the_snapshot_list_action_leads_to_the_confirmation_page(snapshotted, admin_client):
    _, snapshot = snapshotted("restore5")
    response = admin_client.post(
        reverse("admin:backups_backupsnapshot_changelist"),
        {"action": "restore_snapshot", "_selected_action": [str(snapshot.pk)]},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:backups_backupsnapshot_restore", args=[snapshot.pk]
    )


def test_the_snapshot_list_and_page_are_read_only_and_cheap(
    snapshotted, admin_client, django_assert_max_num_queries, clock, run
):
    beacon, snapshot = snapshotted("list1")
    for _ in range(3):
        clock.advance(days=1)
        run(backups_daily)
    url = reverse("admin:backups_backupsnapshot_changelist")

    with django_assert_max_num_queries(12):
        response = admin_client.get(url)

    assert response.status_code == 200
    days = set(re.findall(rf"wopr-{beacon.pk}-daily-(\d{{8}})", response.content.decode()))
    assert len(days) == 4
    page = admin_client.get(reverse("admin:backups_backupsnapshot_change", args=[snapshot.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse("admin:backups_backupsnapshot_add")).status_code == 403


def test_cancelling_a_restore_says_only_its_new_server_goes(snapshotted, run, admin_client):
    beacon, snapshot = snapshotted("cancel1")
    Job.objects.filter(beacon=beacon).update(state="completed")
    run(lambda: snapshot_restore_start(snapshot=snapshot, requested_by=None))
    job = Job.objects.get(beacon=beacon, kind="restore")
    Job.objects.filter(pk=job.pk).update(state="waiting", step="wait_running")
    job.refresh_from_db()
    teardown = job_cancel_teardown(job=job)

    assert "keeps its current server" in teardown.summary
    assert "marked failed" not in teardown.summary
    assert f"wopr-job={job.pk}" in teardown.sweep
    assert teardown.dns_records == []
