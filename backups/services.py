"""Taking, keeping, pruning and restoring snapshots of Beacons' servers.

Every provider call here is safe to repeat: a snapshot is found by its name (the `wopr-snapshot`
label) before one is asked for, deleting a gone snapshot is no error, and each row moves on by
a conditional update. The job steps (backups.workflows) and the daily sweep call these.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from backups.models import LIVE_STATUSES, BackupSnapshot, SnapshotKind, SnapshotStatus
from integrations.clouds.base import CloudProvider, Server, Snapshot
from integrations.errors import ProviderError
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    Beacon,
    BeaconStatus,
    Job,
    JobEvent,
    JobKind,
    JobState,
)
from provisioning.services import job_start
from provisioning.vendors import get_provider

logger = logging.getLogger(__name__)

# Beacons the daily sweep snapshots. Suspended ones too: their server (powered off) still holds
# the customer's data, which they get back on paying; a suspension must not end the backups
# they bought. Decommissioning Beacons get their final snapshot from the decommission job.
SNAPSHOTTED_STATUSES = (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED)
# A restore is offered for Beacons that live (or whose provisioning failed); a decommissioned
# one has no subscription behind it (a new server would be decommissioned again at once).
RESTORABLE_STATUSES = (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED, BeaconStatus.FAILED)
CENT = Decimal("0.0001")


# --- names and labels -------------------------------------------------------------------------


def snapshot_name(*, beacon_id: uuid.UUID | str, kind: str, day: date) -> str:
    """`wopr-<beacon uuid>-<kind>-<yyyymmdd>`: the label and the idempotency key."""
    return f"wopr-{beacon_id}-{kind}-{day:%Y%m%d}"


def snapshot_labels(snapshot: BackupSnapshot) -> dict[str, str]:
    """Ids only, never personal data."""
    return {
        "wopr-snapshot": snapshot.name,
        "wopr-beacon": str(snapshot.beacon_id),
        "managed-by": "wopr",
    }


# --- taking a snapshot ------------------------------------------------------------------------


def snapshot_claim(*, job: Job, kind: str) -> BackupSnapshot:
    """The snapshot row this job works on: the one already tied to it (a retried job), else
    today's of that kind (the unique name decides a race), tied to this job.

    A failed or deleted one is started afresh (a failed image left at the provider deleted)."""
    row = BackupSnapshot.objects.filter(job=job).order_by("-created_at").first()
    if row is None:
        row = _snapshot_row_today(job, kind)
    if row.status in (SnapshotStatus.FAILED, SnapshotStatus.DELETED):
        row = _snapshot_restart(row, job)
    return row


def _snapshot_row_today(job: Job, kind: str) -> BackupSnapshot:
    beacon = Beacon.objects.select_related("tier", "provider").get(pk=job.beacon_id)
    if beacon.provider is None:
        raise ProviderError("the Beacon has no provider: nothing to snapshot", transient=False)
    now = timezone.now()
    name = snapshot_name(beacon_id=beacon.pk, kind=kind, day=now.date())
    defaults = {
        "beacon": beacon,
        "provider": beacon.provider,
        "location": beacon.provider_location,
        "kind": kind,
        "job": job,
        "created_at": now,
        "expires_at": now + timedelta(days=beacon.tier.backup_days),
    }
    try:
        with transaction.atomic():
            row, created = BackupSnapshot.objects.get_or_create(name=name, defaults=defaults)
    except IntegrityError:  # another worker made it between our look and our insert
        row, created = BackupSnapshot.objects.get(name=name), False
    if not created and row.job_id != job.pk:
        BackupSnapshot.objects.filter(pk=row.pk).update(job=job)
        row.job_id = job.pk
    return row


def _snapshot_restart(row: BackupSnapshot, job: Job) -> BackupSnapshot:
    if row.status == SnapshotStatus.FAILED and row.provider_snapshot_id:
        get_provider(row.provider.kind).delete_snapshot(row.provider_snapshot_id)
    now = timezone.now()
    BackupSnapshot.objects.filter(pk=row.pk).update(
        job=job,
        status=SnapshotStatus.PENDING,
        provider_snapshot_id="",
        note="",
        deleted_at=None,
        created_at=now,
        expires_at=now + timedelta(days=row.beacon.tier.backup_days),
    )
    row.refresh_from_db()
    return row


def beacon_server(provider: CloudProvider, beacon: Beacon) -> Server | None:
    """The Beacon's server at `provider`, found by label (the one the row names first)."""
    servers = provider.find_servers({"wopr-beacon": str(beacon.pk)})
    for server in servers:
        if server.id == beacon.provider_server_id:
            return server
    return servers[0] if servers else None


@dataclass(frozen=True)
class Started:
    """What `snapshot_start` did: `adopted` an existing snapshot, `created` one, or found
    `no_server` to snapshot."""

    outcome: str
    snapshot_id: str
    action_id: str = ""


def snapshot_start(*, snapshot: BackupSnapshot) -> Started:
    """Ask the provider for the snapshot, unless it already has it: a lost answer to an
    earlier create left a snapshot carrying our name, which is adopted, never made twice."""
    if snapshot.provider_snapshot_id:
        return Started("adopted", snapshot.provider_snapshot_id)
    provider = get_provider(snapshot.provider.kind)
    found = provider.find_snapshots({"wopr-snapshot": snapshot.name})
    if found:
        _snapshot_seen(snapshot, found[0])
        return Started("adopted", found[0].id)
    server = beacon_server(provider, snapshot.beacon)
    if server is None:
        return Started("no_server", "")
    started = provider.create_snapshot(
        server.id, name=snapshot.name, labels=snapshot_labels(snapshot)
    )
    BackupSnapshot.objects.filter(pk=snapshot.pk).update(
        provider_snapshot_id=started.snapshot_id or "", status=SnapshotStatus.CREATING
    )
    return Started("created", started.snapshot_id or "", started.action_id)


def _snapshot_seen(snapshot: BackupSnapshot, seen: Snapshot) -> None:
    """Note the provider's id of a snapshot found by name."""
    BackupSnapshot.objects.filter(pk=snapshot.pk).update(
        provider_snapshot_id=seen.id, status=SnapshotStatus.CREATING
    )
    snapshot.provider_snapshot_id = seen.id


def snapshot_mark_failed(*, snapshot: BackupSnapshot, note: str) -> None:
    """Record why the snapshot was not taken (it stays listed for staff). Only one still being
    taken: a job that fails later (pruning older ones) leaves today's good copy available."""
    BackupSnapshot.objects.filter(
        pk=snapshot.pk, status__in=[SnapshotStatus.PENDING, SnapshotStatus.CREATING]
    ).update(status=SnapshotStatus.FAILED, note=note[:1000])


def snapshot_poll(*, snapshot: BackupSnapshot, action_id: str = "") -> bool:
    """True once the provider reports the snapshot available (size, price and monthly cost
    recorded then); a snapshot in error, or gone, is a permanent failure. `action_id`: the
    create action, read while the provider has not named the image yet."""
    if snapshot.status == SnapshotStatus.AVAILABLE:
        return True
    provider = get_provider(snapshot.provider.kind)
    if not snapshot.provider_snapshot_id and not _snapshot_named(provider, snapshot, action_id):
        return False
    seen = provider.get_snapshot(snapshot.provider_snapshot_id)
    if seen is None or seen.status == "error":
        why = "disappeared" if seen is None else "failed at the provider"
        snapshot_mark_failed(snapshot=snapshot, note=f"snapshot {why}")
        raise ProviderError(f"snapshot {snapshot.name} {why}", transient=False)
    if seen.status != "available":
        return False
    price = provider.snapshot_price_per_gb_month(snapshot.location)
    _snapshot_available(snapshot, seen, price)
    return True


def _snapshot_named(provider: CloudProvider, snapshot: BackupSnapshot, action_id: str) -> bool:
    """DigitalOcean names the image only once its action finished, and lists no snapshot in
    progress: find it by name then. A lost answer there can have made two of that name: the
    oldest is kept, the others deleted. A failed action is a permanent failure."""
    found = provider.find_snapshots({"wopr-snapshot": snapshot.name})
    if not found:
        if action_id and provider.action_status(action_id) == "error":
            snapshot_mark_failed(snapshot=snapshot, note="the snapshot action failed")
            raise ProviderError(f"snapshot {snapshot.name} action failed", transient=False)
        return False
    for extra in found[1:]:
        provider.delete_snapshot(extra.id)
    _snapshot_seen(snapshot, found[0])
    return True


def _snapshot_available(snapshot: BackupSnapshot, seen: Snapshot, price: Decimal) -> None:
    size = Decimal(str(seen.size_gb or 0))
    BackupSnapshot.objects.filter(pk=snapshot.pk, status__in=LIVE_STATUSES).update(
        status=SnapshotStatus.AVAILABLE,
        size_gb=seen.size_gb,
        price_per_gb_month=price,
        monthly_cost=(size * price).quantize(CENT),
        available_at=timezone.now(),
    )
    snapshot.refresh_from_db()


def snapshot_deadline_passed(*, snapshot: BackupSnapshot) -> bool:
    """Whether the snapshot has taken longer than BACKUP_SNAPSHOT_DEADLINE_MINUTES."""
    limit = timedelta(minutes=settings.BACKUP_SNAPSHOT_DEADLINE_MINUTES)
    return timezone.now() - snapshot.created_at > limit


# --- retention --------------------------------------------------------------------------------


def _expired(now: datetime) -> QuerySet[BackupSnapshot]:
    kept = [*LIVE_STATUSES, SnapshotStatus.FAILED]  # a failed one may have left an image
    return BackupSnapshot.objects.filter(status__in=kept, expires_at__lte=now).select_related(
        "provider"
    )


def _snapshot_delete_everywhere(row: BackupSnapshot) -> None:
    """Delete the snapshot by its id and every image of its name: a job that failed before
    DigitalOcean named the image (or a lost answer that made two) leaves one we hold no id
    of, and it would cost money for ever."""
    provider = get_provider(row.provider.kind)
    ids = {found.id for found in provider.find_snapshots({"wopr-snapshot": row.name})}
    if row.provider_snapshot_id:
        ids.add(row.provider_snapshot_id)
    for snapshot_id in sorted(ids):
        provider.delete_snapshot(snapshot_id)


def snapshots_prune(
    *, beacon_id: uuid.UUID | str | None = None, now: datetime | None = None, limit: int = 500
) -> list[str]:
    """Delete expired snapshots at their provider and mark them deleted (the Beacon's, or any
    Beacon's); returns their names. Idempotent: a snapshot already gone is no error."""
    rows = _expired(now or timezone.now())
    if beacon_id is not None:
        rows = rows.filter(beacon_id=beacon_id)
    pruned = []
    for row in rows.order_by("expires_at")[:limit]:
        _snapshot_delete_everywhere(row)
        BackupSnapshot.objects.filter(pk=row.pk).exclude(status=SnapshotStatus.DELETED).update(
            status=SnapshotStatus.DELETED, deleted_at=timezone.now()
        )
        pruned.append(row.name)
    return pruned


# --- the daily sweep --------------------------------------------------------------------------


def _due_for_daily(day: date) -> QuerySet[Beacon]:
    """Beacons that should have today's snapshot and have not: snapshotted, placed, not busy
    with a job, no lifecycle change waiting (that goes first), no daily snapshot of `day`."""
    today = BackupSnapshot.objects.filter(
        beacon=OuterRef("pk"), kind=SnapshotKind.DAILY, name__endswith=f"-{day:%Y%m%d}"
    )
    busy = Job.objects.filter(beacon=OuterRef("pk"), state__in=UNFINISHED_JOB_STATES)
    latest = Job.objects.filter(beacon=OuterRef("pk")).order_by("-created_at")
    return (
        Beacon.objects.filter(status__in=SNAPSHOTTED_STATUSES, provider__isnull=False)
        .exclude(provider_server_id="")
        .filter(converge_requested_at__isnull=True)
        .exclude(Exists(today))
        .exclude(Exists(busy))
        .annotate(  # "" for a Beacon without jobs (NULL would exclude it)
            latest_kind=Coalesce(Subquery(latest.values("kind")[:1]), Value("")),
            latest_state=Coalesce(Subquery(latest.values("state")[:1]), Value("")),
        )
        # A failed lifecycle job waits for staff ("Retry job"); a snapshot job after it would
        # hide it from beacon_converge, which would then start that job again on its own.
        .exclude(Q(latest_state=JobState.FAILED) & ~Q(latest_kind=JobKind.SNAPSHOT))
        .order_by("created_at")
    )


def backups_daily_start(*, limit: int | None = None) -> list[uuid.UUID]:
    """Start a snapshot job for each Beacon due one today (at most `limit`, default
    BACKUPS_DAILY_BATCH); returns the jobs started. Run as often as you like: a Beacon with
    today's snapshot, or any job under way, is left alone (it is tried at the next run)."""
    limit = settings.BACKUPS_DAILY_BATCH if limit is None else limit
    started = []
    for beacon in _due_for_daily(timezone.now().date())[:limit]:
        try:
            with transaction.atomic():
                started.append(job_start(beacon=beacon, kind=JobKind.SNAPSHOT).pk)
        except IntegrityError:  # another job of this Beacon started meanwhile
            continue
    return started


def backups_prune_idle(*, limit: int = 200) -> list[str]:
    """Prune expired snapshots of Beacons no job is working on (decommissioned Beacons' final
    snapshots, and everyone's when a daily job could not run); errors are logged, not raised,
    so one provider's trouble does not stop the sweep."""
    busy = Job.objects.filter(beacon=OuterRef("beacon_id"), state__in=UNFINISHED_JOB_STATES)
    beacon_ids = (
        _expired(timezone.now())
        .exclude(Exists(busy))
        .values_list("beacon_id", flat=True)
        .distinct()[:limit]
    )
    pruned = []
    for beacon_id in list(beacon_ids):
        try:
            pruned += snapshots_prune(beacon_id=beacon_id)
        except ProviderError as error:
            logger.warning("pruning snapshots of Beacon %s failed: %s", beacon_id, error)
    return pruned


# --- cost ----------------------------------------------------------------------------------------


def beacon_backup_cost(beacon: Beacon) -> Decimal:
    """What the Beacon's snapshots kept now cost a month at their providers (VAT excluded)."""
    total = BackupSnapshot.objects.filter(beacon=beacon, status=SnapshotStatus.AVAILABLE).aggregate(
        total=Sum("monthly_cost")
    )["total"]
    return total or Decimal("0")


# --- restore ------------------------------------------------------------------------------------


def snapshot_restore_refusal(*, snapshot: BackupSnapshot) -> str:
    """Why this snapshot cannot be restored now ("" when it can)."""
    beacon = snapshot.beacon
    if snapshot.status != SnapshotStatus.AVAILABLE:
        return f"the snapshot is {snapshot.status}, not available"
    if beacon.status not in RESTORABLE_STATUSES:
        return f"the Beacon is {beacon.status}; only active, suspended or failed ones restore"
    if beacon.jobs.filter(state__in=UNFINISHED_JOB_STATES).exists():
        return "another job of this Beacon is under way; wait for it to finish"
    return ""


def snapshot_restore_start(*, snapshot: BackupSnapshot, requested_by: object) -> str:
    """Start the restore job of a Beacon from one of its snapshots (staff, from the admin);
    the snapshot row remembers the job (a staff retry of the job keeps restoring it)."""
    refusal = snapshot_restore_refusal(snapshot=snapshot)
    if refusal:
        return f"not restored: {refusal}"
    try:
        with transaction.atomic():
            job = job_start(beacon=snapshot.beacon, kind=JobKind.RESTORE, requested_by=requested_by)
            BackupSnapshot.objects.filter(pk=snapshot.pk).update(restore_job=job)
            JobEvent.objects.create(
                job=job,
                step=job.step,
                state=JobState.PENDING,
                message=f"restore of snapshot {snapshot.name} requested (by {requested_by})",
            )
    except IntegrityError:
        return "not restored: another job of this Beacon started meanwhile"
    return f"restore job {job.pk} started from {snapshot.name}"


def restore_snapshot(*, job: Job) -> BackupSnapshot:
    """The snapshot a restore job restores."""
    return BackupSnapshot.objects.select_related("provider", "beacon").get(restore_job=job)


@dataclass(frozen=True)
class RestorePreview:
    """What a restore will make, delete and move, said before it acts (database only: the
    page opens with a provider down). `refusal` says why it cannot run now."""

    snapshot: BackupSnapshot
    makes: str
    deletes: list[str]
    dns: list[str]
    refusal: str


def snapshot_restore_preview(*, snapshot: BackupSnapshot) -> RestorePreview:
    """The confirmation page's text for restoring `snapshot`."""
    beacon = snapshot.beacon
    taken = f"{snapshot.available_at or snapshot.created_at:%Y-%m-%d %H:%M} UTC"
    makes = (
        f"a new server at {snapshot.provider.name} in {snapshot.location or '?'} "
        f"({beacon.server_size or 'the tier size'}) from snapshot {snapshot.name} "
        f"(image {snapshot.provider_snapshot_id or '?'}, taken {taken})"
    )
    deletes = []
    if beacon.provider is not None and beacon.provider_server_id:
        deletes.append(
            f"{beacon.provider.name} server {beacon.provider_server_id} "
            f"({beacon.ipv4 or 'no address'}), once the new server runs"
        )
    deletes.append(f"any other server labelled wopr-beacon={beacon.pk} (found when it runs)")
    old = beacon.ipv4 or "nothing"
    dns = [
        f"A and AAAA of {name} move from {old} to the new server's addresses"
        for name in (beacon.fqdn, f"*.{beacon.fqdn}")
    ]
    refusal = snapshot_restore_refusal(snapshot=snapshot)
    return RestorePreview(snapshot, makes, deletes, dns, refusal)
