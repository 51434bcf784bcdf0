"""The final snapshot before a decommission deletes the server: taken of the powered-off server,
waited for, kept the tier's backup_days; no server is deleted without it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backups.models import BackupSnapshot
from backups.tasks import backups_daily
from provisioning.faults import fault_inject
from provisioning.models import Beacon, FakeServer, FakeSnapshot, Job
from provisioning.services import beacon_staff_decommission_now
from provisioning.teardown import beacon_decommission_teardown

pytestmark = pytest.mark.django_db


def server_live(beacon: Beacon) -> bool:
    return FakeServer.objects.filter(pk=int(beacon.provider_server_id), deleted=False).exists()


def decommission(run, beacon: Beacon) -> Job:
    run(lambda: beacon_staff_decommission_now(beacon=beacon, requested_by=None))
    return Job.objects.get(beacon=beacon, kind="decommission")


def test_the_server_is_deleted_only_once_its_final_snapshot_is_available(
    buy, run, clock, settings, sweep
):
    beacon = buy("final1", tier="t2")
    settings.FAKE_SERVER_BOOT_SECONDS = 600  # snapshots (and power actions) take 10 minutes
    job = decommission(run, beacon)
    for _ in range(4):  # powered off, then the snapshot asked for
        clock.advance(minutes=11)
        sweep()
        job.refresh_from_db()
        if job.step == "wait_final_snapshot":
            break

    assert (job.state, job.step) == ("waiting", "wait_final_snapshot")
    final = BackupSnapshot.objects.get(beacon=beacon)
    assert (final.kind, final.status) == ("final", "creating")
    assert server_live(beacon)  # not deleted while the snapshot is being made
    snapshot_row = FakeSnapshot.objects.get(pk=int(final.provider_snapshot_id))
    assert snapshot_row.server_id == beacon.provider_server_id

    clock.advance(minutes=11)
    sweep(3)

    job.refresh_from_db()
    final.refresh_from_db()
    assert job.state == "completed"
    assert final.status == "available" and final.available_at < job.finished_at
    assert final.expires_at - final.created_at == timedelta(days=30)  # tier t2
    assert not server_live(beacon)
    assert Beacon.objects.get(pk=beacon.pk).status == "decommissioned"


def test_a_provider_refusing_the_snapshot_fails_the_job_and_keeps_the_server(buy, run):
    beacon = buy("refuse1")
    fault_inject("provider.snapshot", "permanent", message="quota exceeded")

    job = decommission(run, beacon)

    job.refresh_from_db()
    assert (job.state, job.step) == ("failed", "final_snapshot")
    assert "quota exceeded" in job.last_error
    assert server_live(beacon)  # kept: no deletion without its copy; staff decide
    beacon.order.refresh_from_db()
    assert beacon.order.needs_attention
    assert "decommission job failed" in beacon.order.attention_reason


def test_a_snapshot_refused_for_a_while_is_retried_before_anything_is_deleted(
    buy, run, clock, sweep
):
    beacon = buy("retry1")
    fault_inject("provider.snapshot", "transient", times=2, message="503 from the provider")

    job = decommission(run, beacon)
    job.refresh_from_db()
    assert (job.step, job.attempts) == ("final_snapshot", 1)
    assert server_live(beacon)

    for _ in range(3):
        clock.advance(minutes=15)
        sweep()
    job.refresh_from_db()
    assert job.state == "completed"
    assert BackupSnapshot.objects.get(beacon=beacon, kind="final").status == "available"
    assert not server_live(beacon)


def test_a_server_already_gone_is_recorded_and_the_decommission_goes_on(buy, run):
    beacon = buy("gone1")
    FakeServer.objects.filter(pk=int(beacon.provider_server_id)).update(deleted=True)

    job = decommission(run, beacon)

    job.refresh_from_db()
    assert job.state == "completed"
    final = BackupSnapshot.objects.get(beacon=beacon, kind="final")
    assert final.status == "failed" and "already gone" in final.note
    assert not FakeSnapshot.objects.exists()


def test_final_snapshots_of_decommissioned_beacons_are_pruned_when_they_expire(buy, run, clock):
    beacon = buy("prune1")  # t1: 7 days
    decommission(run, beacon)
    final = BackupSnapshot.objects.get(beacon=beacon, kind="final")
    assert final.status == "available"

    clock.advance(days=6)
    run(backups_daily)
    final.refresh_from_db()
    assert final.status == "available"  # no daily snapshot for a decommissioned Beacon either
    assert BackupSnapshot.objects.filter(beacon=beacon).count() == 1

    clock.advance(days=1, minutes=1)
    run(backups_daily)
    final.refresh_from_db()
    assert final.status == "deleted"
    assert FakeSnapshot.objects.get(pk=int(final.provider_snapshot_id)).deleted


def test_the_decommission_preview_says_the_final_snapshot_is_kept_for_the_tiers_days(buy):
    beacon = buy("preview1", tier="t3")
    kept = beacon_decommission_teardown(beacon=beacon).kept
    assert any("final snapshot" in line and "kept 90 days" in line for line in kept)
