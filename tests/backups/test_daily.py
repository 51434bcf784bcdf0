"""Daily snapshots as sold: one per active Beacon per day, kept the tier's backup_days, pruned
after, never made twice, their provider cost recorded."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from backups import services
from backups.models import BackupSnapshot
from backups.services import beacon_backup_cost
from backups.tasks import backups_daily
from integrations.clouds.base import Snapshot
from provisioning.faults import fault_inject
from provisioning.jobs import job_retry
from provisioning.models import Beacon, FakeSnapshot, Job, JobEvent
from provisioning.services import job_start

pytestmark = pytest.mark.django_db


def live_fake_snapshots(beacon: Beacon) -> list[FakeSnapshot]:
    rows = FakeSnapshot.objects.filter(deleted=False).order_by("pk")
    return [row for row in rows if row.labels.get("wopr-beacon") == str(beacon.pk)]


def test_the_daily_sweep_snapshots_each_active_beacon_once_a_day(buy, run, clock):
    first, second = buy("daily1"), buy("daily2", tier="t2")

    run(backups_daily)
    run(backups_daily)  # the same day again: nothing new

    snapshots = BackupSnapshot.objects.order_by("beacon__name")
    assert [(s.beacon.name, s.kind, s.status) for s in snapshots] == [
        ("daily1", "daily", "available"),
        ("daily2", "daily", "available"),
    ]
    day = clock.now().date()
    assert snapshots[0].name == f"wopr-{first.pk}-daily-{day:%Y%m%d}"
    assert Job.objects.filter(kind="snapshot").count() == 2
    assert all(job.state == "completed" for job in Job.objects.filter(kind="snapshot"))
    assert len(live_fake_snapshots(first)) == len(live_fake_snapshots(second)) == 1
    labels = live_fake_snapshots(first)[0].labels
    assert labels == {
        "wopr-snapshot": snapshots[0].name,
        "wopr-beacon": str(first.pk),
        "managed-by": "wopr",
    }

    clock.advance(days=1)
    run(backups_daily)

    assert BackupSnapshot.objects.filter(beacon=first, status="available").count() == 2
    today = f"wopr-{first.pk}-daily-{clock.now().date():%Y%m%d}"
    assert BackupSnapshot.objects.filter(beacon=first, name=today).exists()


def test_a_lost_answer_on_create_adopts_the_snapshot_instead_of_making_a_second(
    buy, run, clock, sweep
):
    beacon = buy("lost1")
    fault_inject("provider.snapshot", "lost_response")

    run(backups_daily)
    job = Job.objects.get(kind="snapshot")
    assert job.state == "pending" and job.attempts == 1  # the answer was lost: retried later
    assert len(live_fake_snapshots(beacon)) == 1  # ...but the provider made it

    clock.advance(minutes=15)
    sweep()

    job.refresh_from_db()
    assert job.state == "completed"
    assert len(live_fake_snapshots(beacon)) == 1
    assert BackupSnapshot.objects.get(beacon=beacon).status == "available"
    assert JobEvent.objects.filter(job=job, message__contains="adopted").exists()


@pytest.mark.parametrize(("tier", "days"), [("t1", 7), ("t2", 30), ("t3", 90)])
def test_snapshots_are_kept_the_tiers_backup_days_and_pruned_after(buy, run, clock, tier, days):
    beacon = buy(f"keep{tier}", tier=tier)
    run(backups_daily)
    oldest = BackupSnapshot.objects.get(beacon=beacon)
    assert oldest.expires_at - oldest.created_at == timedelta(days=days)

    clock.advance(days=days - 1)
    run(backups_daily)  # one day short of the end: kept
    oldest.refresh_from_db()
    assert oldest.status == "available"

    clock.advance(days=1, minutes=1)
    run(backups_daily)  # the next day's job prunes it

    oldest.refresh_from_db()
    assert oldest.status == "deleted" and oldest.deleted_at is not None
    assert FakeSnapshot.objects.get(pk=int(oldest.provider_snapshot_id)).deleted
    kept = BackupSnapshot.objects.filter(beacon=beacon, status="available")
    assert kept.count() == 2  # the one a day short and today's
    assert len(live_fake_snapshots(beacon)) == 2


def test_the_provider_cost_is_recorded_and_summed_per_beacon(buy, run, clock):
    beacon = buy("cost1")
    run(backups_daily)
    clock.advance(days=1)
    run(backups_daily)

    snapshots = list(BackupSnapshot.objects.filter(beacon=beacon))
    for snapshot in snapshots:
        assert snapshot.price_per_gb_month == Decimal("0.01")  # the fake cloud's price
        assert snapshot.size_gb and snapshot.size_gb > 0
        assert snapshot.monthly_cost == (Decimal(str(snapshot.size_gb)) * Decimal("0.01"))
    assert beacon_backup_cost(beacon) == sum(s.monthly_cost for s in snapshots)

    clock.advance(days=7)
    run(backups_daily)  # the first two are pruned; only today's costs money
    assert (
        beacon_backup_cost(beacon)
        == BackupSnapshot.objects.get(beacon=beacon, status="available").monthly_cost
    )


def test_suspended_beacons_are_snapshotted_busy_ones_at_the_next_run(buy, run, clock):
    suspended, busy, stuck = buy("susp1"), buy("busy1"), buy("stuck1")
    Beacon.objects.filter(pk=suspended.pk).update(status="suspended")
    # A failed lifecycle job waits for staff: a snapshot job after it would hide it.
    Job.objects.create(beacon=stuck, kind="suspend", step="power_off", state="failed")
    run(lambda: job_start(beacon=busy, kind="suspend"))
    Job.objects.filter(beacon=busy, kind="suspend").update(state="waiting")

    run(backups_daily)
    assert BackupSnapshot.objects.filter(beacon=suspended, status="available").count() == 1
    assert not BackupSnapshot.objects.filter(beacon=busy).exists()

    Job.objects.filter(beacon=busy, kind="suspend").update(state="completed")
    run(backups_daily)
    assert BackupSnapshot.objects.filter(beacon=busy, status="available").count() == 1
    assert not BackupSnapshot.objects.filter(beacon=stuck).exists()


def test_a_snapshot_never_available_fails_its_job_and_tells_staff(buy, run, clock, settings, sweep):
    beacon = buy("slow1")
    settings.FAKE_SERVER_BOOT_SECONDS = 10 * 3600  # the fake snapshot stays "creating"
    run(backups_daily)
    job = Job.objects.get(kind="snapshot")
    assert (job.state, job.step) == ("waiting", "wait_available")

    clock.advance(minutes=settings.BACKUP_SNAPSHOT_DEADLINE_MINUTES + 1)
    sweep()

    job.refresh_from_db()
    snapshot = BackupSnapshot.objects.get(beacon=beacon)
    assert job.state == "failed"
    assert snapshot.status == "failed" and "not available" in snapshot.note
    beacon.order.refresh_from_db()
    assert beacon.order.needs_attention
    assert beacon.order.attention_reason.startswith("snapshot job failed")


def test_backups_run_now_takes_the_days_snapshots_in_the_command(buy, capsys):
    beacon = buy("cmd1")
    call_command("backups_run", "--now")
    out = capsys.readouterr().out
    assert "cmd1: snapshot job" in out and "completed" in out
    assert BackupSnapshot.objects.get(beacon=beacon).status == "available"


class TwoOfOneName:
    """A provider (DigitalOcean-like) whose lost answer made two snapshots of one name, and
    which names an image only once it is done."""

    def __init__(self, name: str) -> None:
        self.snapshots = [
            Snapshot(str(i), name, {"wopr-snapshot": name}, "available", 2.0, None, None)
            for i in (7, 8)
        ]
        self.deleted: list[str] = []

    def find_snapshots(self, labels: dict[str, str]) -> list[Snapshot]:
        return [s for s in self.snapshots if s.id not in self.deleted]

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        return next(s for s in self.snapshots if s.id == snapshot_id)

    def delete_snapshot(self, snapshot_id: str) -> None:
        self.deleted.append(snapshot_id)

    def snapshot_price_per_gb_month(self, location: str) -> Decimal:
        return Decimal("0.06")


def test_a_second_snapshot_of_one_name_is_deleted_when_the_first_is_adopted(buy, run, monkeypatch):
    beacon = buy("twice1")
    run(lambda: job_start(beacon=beacon, kind="snapshot"))
    snapshot = BackupSnapshot.objects.get(beacon=beacon)
    provider = TwoOfOneName(snapshot.name)
    BackupSnapshot.objects.filter(pk=snapshot.pk).update(status="creating", provider_snapshot_id="")
    snapshot.refresh_from_db()
    monkeypatch.setattr(services, "get_provider", lambda kind: provider)

    assert services.snapshot_poll(snapshot=snapshot)

    snapshot.refresh_from_db()
    assert (snapshot.provider_snapshot_id, snapshot.status) == ("7", "available")
    assert provider.deleted == ["8"]
    assert snapshot.monthly_cost == Decimal("0.12")


def test_a_failed_snapshot_job_retried_by_staff_takes_the_days_snapshot(buy, run):
    beacon = buy("again1")
    fault_inject("provider.snapshot", "permanent", message="refused")
    run(backups_daily)
    job = Job.objects.get(beacon=beacon, kind="snapshot")
    snapshot = BackupSnapshot.objects.get(beacon=beacon)
    assert job.state == "failed" and snapshot.status == "failed"

    run(backups_daily)  # today's failed: the sweep leaves it to staff
    assert Job.objects.filter(beacon=beacon, kind="snapshot").count() == 1

    run(lambda: job_retry(job=job, requested_by=None))

    job.refresh_from_db()
    snapshot.refresh_from_db()
    assert job.state == "completed"
    assert snapshot.status == "available" and snapshot.job_id == job.pk
    assert len(live_fake_snapshots(beacon)) == 1


def test_a_job_failing_while_pruning_keeps_todays_good_snapshot(buy, run, clock):
    """The day's copy is taken before older ones are pruned: a prune the provider refuses
    fails the job for staff, but today's snapshot stays available (and restorable)."""
    beacon = buy("prune1", tier="t1")
    run(backups_daily)
    clock.advance(days=8)
    fault_inject("provider.snapshot_delete", "permanent", message="refused")

    run(backups_daily)  # takes today's, then fails pruning last week's

    job = Job.objects.filter(beacon=beacon, kind="snapshot").order_by("-created_at").first()
    today = BackupSnapshot.objects.get(job=job)
    assert job.state == "failed"
    assert today.status == "available"
    assert beacon.order.__class__.objects.get(pk=beacon.order_id).needs_attention


def test_pruning_deletes_an_image_whose_id_was_never_learnt(buy, run, clock):
    """At DigitalOcean a job that failed before the image was named leaves it without our
    id: pruning finds it by name, so it does not cost money for ever."""
    beacon = buy("prune2", tier="t1")
    fault_inject("provider.snapshot", "lost_response")  # made at the provider, answer lost
    fault_inject("provider.snapshot", "permanent", message="refused")  # and the retry refused
    run(backups_daily)
    row = BackupSnapshot.objects.get(beacon=beacon)
    BackupSnapshot.objects.filter(pk=row.pk).update(provider_snapshot_id="", status="failed")
    assert len(live_fake_snapshots(beacon)) == 1

    clock.advance(days=8)
    run(lambda: services.snapshots_prune(beacon_id=beacon.pk))

    assert live_fake_snapshots(beacon) == []
    row.refresh_from_db()
    assert row.status == "deleted"
