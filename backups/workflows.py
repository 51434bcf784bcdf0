"""The snapshot and restore workflows, and the decommission's final-snapshot steps.

Each step looks for what it would make before making it (a snapshot by its name, a restored
server by its job's label), so a lost answer followed by a retry adopts instead of making a
second one. Waiting is a `Wait` on the job row (the due-job loop wakes it), never a sleep.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from backups.models import BackupSnapshot, SnapshotKind
from backups.services import (
    RESTORABLE_STATUSES,
    restore_snapshot,
    snapshot_claim,
    snapshot_deadline_passed,
    snapshot_mark_failed,
    snapshot_poll,
    snapshot_start,
    snapshots_prune,
)
from billing.catalog import server_size
from billing.models import Order
from dns.services import dns_records_upsert
from integrations.clouds.base import ServerSpec
from integrations.errors import ProviderError
from provisioning.checkpoint import Checkpoint
from provisioning.jobs import Done, StepFunction, Wait, Workflow
from provisioning.models import Beacon, BeaconStatus, Job
from provisioning.provision import (
    SERVER_READY_DEADLINE,
    boot_poll_time,
    server_labels,
    size_number,
)
from provisioning.vendors import get_dns_backend, get_provider

# A snapshot of a large disk takes minutes to an hour: look after half the time it has taken
# so far, between JOB_POLL_MIN_SECONDS and this (few requests from the shared rate budget).
SNAPSHOT_POLL_MAX_SECONDS = 60.0
# A restored server boots from its image: no first-boot script, an empty cloud-config.
EMPTY_CLOUD_CONFIG = "#cloud-config\n{}\n"


def _claimed(job: Job) -> BackupSnapshot | None:
    return (
        BackupSnapshot.objects.select_related("provider", "beacon")
        .filter(job=job)
        .order_by("-created_at")
        .first()
    )


def _snapshot(job: Job) -> BackupSnapshot:
    """The snapshot row this job took (claimed by its first step)."""
    row = _claimed(job)
    if row is None:  # a row deleted by hand: nothing to go on with
        raise ProviderError("no snapshot row is tied to this job", transient=False)
    return row


def _poll_at(since_seconds: float) -> timedelta:
    delay = min(max(since_seconds / 2, settings.JOB_POLL_MIN_SECONDS), SNAPSHOT_POLL_MAX_SECONDS)
    return timedelta(seconds=delay)


# --- taking a snapshot (daily jobs, and the decommission's final one) ----------------------------


def step_claim(job: Job) -> Done:
    """Claim today's daily snapshot row for this job (unique by name)."""
    row = snapshot_claim(job=job, kind=SnapshotKind.DAILY)
    return Done({"snapshot": row.name}, f"snapshot {row.name} claimed")


def step_create(job: Job) -> Done:
    """Ask for the snapshot, or adopt the one carrying its name."""
    row = _snapshot(job)
    started = snapshot_start(snapshot=row)
    if started.outcome == "no_server":
        snapshot_mark_failed(snapshot=row, note="the Beacon has no server to snapshot")
        raise ProviderError("the Beacon has no server to snapshot", transient=False)
    return Done(
        {"snapshot_id": started.snapshot_id, "action_id": started.action_id},
        f"snapshot {row.name} {started.outcome} at {row.provider.name}",
    )


def step_wait_available(job: Job) -> Done | Wait:
    """Wait until the provider reports the snapshot available; past the deadline, fail (the
    job's gave_up tells staff)."""
    row = _snapshot(job)
    checkpoint = Checkpoint(job.checkpoint)
    started = checkpoint.result("create") or checkpoint.result("final_snapshot")
    if snapshot_poll(snapshot=row, action_id=started.get("action_id", "")):
        return Done(
            {"size_gb": row.size_gb, "monthly_cost": str(row.monthly_cost)},
            f"snapshot {row.name} available: {row.size_gb} GB, "
            f"{row.monthly_cost} a month at {row.provider.name}",
        )
    if snapshot_deadline_passed(snapshot=row):
        note = f"not available {settings.BACKUP_SNAPSHOT_DEADLINE_MINUTES} minutes after asking"
        snapshot_mark_failed(snapshot=row, note=note)
        raise ProviderError(f"snapshot {row.name} {note}", transient=False)
    waited = (timezone.now() - row.created_at).total_seconds()
    return Wait(timezone.now() + _poll_at(waited), f"snapshot {row.name} is being created")


def step_prune(job: Job) -> Done:
    """Delete this Beacon's snapshots older than its tier keeps them."""
    pruned = snapshots_prune(beacon_id=job.beacon_id)
    return Done({"pruned": pruned}, f"{len(pruned)} expired snapshot(s) deleted")


def snapshot_gave_up(job: Job, message: str) -> None:
    """A snapshot job failed: the row says so, and the Order is flagged for staff (a Beacon
    without the backups it pays for needs a human)."""
    row = _claimed(job)
    if row is not None:
        snapshot_mark_failed(snapshot=row, note=message)
    Order.objects.filter(beacon__pk=job.beacon_id).update(
        needs_attention=True, attention_reason=f"snapshot job failed: {message}"[:1000]
    )


SNAPSHOT = Workflow(
    steps=(
        ("claim", step_claim),
        ("create", step_create),
        ("wait_available", step_wait_available),
        ("prune", step_prune),
    ),
    gave_up=snapshot_gave_up,
)


def step_final_snapshot(job: Job) -> Done:
    """Before a decommission deletes the server: snapshot it (powered off by then), or record
    that no server is left to snapshot and go on."""
    beacon = Beacon.objects.only("provider_id").get(pk=job.beacon_id)
    if beacon.provider_id is None:
        return Done({"skipped": True}, "the Beacon never had a server: no final snapshot")
    row = snapshot_claim(job=job, kind=SnapshotKind.FINAL)
    started = snapshot_start(snapshot=row)
    if started.outcome == "no_server":
        snapshot_mark_failed(snapshot=row, note="the server was already gone")
        return Done({"skipped": True}, "the server is already gone: no final snapshot taken")
    return Done(
        {"snapshot_id": started.snapshot_id, "action_id": started.action_id},
        f"final snapshot {row.name} {started.outcome}, kept {row.beacon.tier.backup_days} days",
    )


def step_wait_final_snapshot(job: Job) -> Done | Wait:
    """The server is deleted only once its final snapshot is available."""
    if Checkpoint(job.checkpoint).result("final_snapshot").get("skipped"):
        return Done(message="no final snapshot to wait for")
    return step_wait_available(job)


def final_snapshot_steps() -> dict[str, StepFunction]:
    """The decommission workflow's final-snapshot steps (provisioning.lifecycle runs them)."""
    return {"final_snapshot": step_final_snapshot, "wait_final_snapshot": step_wait_final_snapshot}


# --- restore ------------------------------------------------------------------------------------


def step_restore_plan(job: Job) -> Done:
    """Note the Beacon's servers now (deleted once the restored one runs): any labelled for the
    Beacon at its provider and the snapshot's, except one this job made."""
    snapshot = restore_snapshot(job=job)
    beacon = snapshot.beacon
    kinds = {snapshot.provider.kind} | ({beacon.provider.kind} if beacon.provider else set())
    old = [
        f"{kind}/{server.id}"
        for kind in sorted(kinds)
        for server in get_provider(kind).find_servers({"wopr-beacon": str(beacon.pk)})
        if server.labels.get("wopr-job") != str(job.pk)
    ]
    return Done(
        {"old_servers": old, "snapshot": snapshot.name},
        f"restoring {snapshot.name}; replacing {', '.join(old) or 'no server'}",
    )


def _restore_spec(job: Job, snapshot: BackupSnapshot) -> ServerSpec:
    beacon = snapshot.beacon
    kind = snapshot.provider.kind
    same = beacon.provider_id == snapshot.provider_id and beacon.server_size
    size = (
        beacon.server_size if same else server_size(kind, size_number(beacon.bundle, beacon.tier))
    )
    # Not the provisioned server's name: it still exists until the restored one runs.
    name = f"wopr-{beacon.name}"[:54] + f"-r{job.pk.hex[:6]}"
    return ServerSpec(
        name=name,
        size=size,
        image=snapshot.provider_snapshot_id,
        location=snapshot.location,
        labels=server_labels(job),
        user_data=EMPTY_CLOUD_CONFIG,
        ssh_keys=list(getattr(settings, f"{kind.upper()}_SSH_KEYS", [])),
    )


def step_restore_create(job: Job) -> Done:
    """Create the server from the snapshot, or adopt the one an earlier attempt made (found by
    this job's label: a lost answer never makes a second)."""
    snapshot = restore_snapshot(job=job)
    provider = get_provider(snapshot.provider.kind)
    existing = provider.find_servers({"wopr-job": str(job.pk)})
    if existing:
        server, action_id, verb = existing[0], "", "adopted"
    else:
        created = provider.create_server(_restore_spec(job, snapshot))
        server, action_id, verb = created.server, created.action_id, "created"
    return Done(
        {"server_id": server.id, "action_id": action_id},
        f"server {server.id} {verb} from {snapshot.name} at {snapshot.provider.name}",
    )


def step_restore_wait_running(job: Job) -> Done | Wait:
    """Poll the restored server until it runs (15 minutes at most)."""
    snapshot = restore_snapshot(job=job)
    provider = get_provider(snapshot.provider.kind)
    created = Checkpoint(job.checkpoint).result("create_server")
    server = provider.get_server(created["server_id"])
    if server is None:
        raise ProviderError(f"server {created['server_id']} disappeared", transient=False)
    if server.status == "running":
        return Done({"ipv4": server.ipv4, "ipv6": server.ipv6}, "restored server is running")
    started = Checkpoint(job.checkpoint).finished_at("create_server")
    if timezone.now() - started > SERVER_READY_DEADLINE:
        raise ProviderError("restored server not running after 15 minutes", transient=False)
    return Wait(boot_poll_time(job), f"waiting for the server ({server.status})")


def step_restore_point(job: Job) -> Done:
    """Point the Beacon at the restored server (its provider, place and addresses)."""
    snapshot = restore_snapshot(job=job)
    checkpoint = Checkpoint(job.checkpoint)
    server_id = checkpoint.result("create_server")["server_id"]
    addresses = checkpoint.result("wait_running")
    spec = _restore_spec(job, snapshot)
    Beacon.objects.filter(pk=job.beacon_id).update(
        provider=snapshot.provider,
        provider_location=snapshot.location,
        server_size=spec.size,
        provider_server_id=server_id,
        ipv4=addresses["ipv4"],
        ipv6=addresses["ipv6"] or "",
    )
    return Done(message=f"the Beacon now runs on server {server_id}")


def step_restore_dns(job: Job) -> Done:
    """Move the A and AAAA records to the restored server's addresses."""
    beacon = Beacon.objects.get(pk=job.beacon_id)
    records = dns_records_upsert(beacon=beacon, backend=get_dns_backend())
    return Done(
        {"records": [record.provider_record_id for record in records]},
        f"{len(records)} DNS records point at {beacon.ipv4}",
    )


def step_restore_delete_old(job: Job) -> Done:
    """Delete the servers the Beacon had before (deleting a gone one is no error)."""
    old = Checkpoint(job.checkpoint).result("plan").get("old_servers", [])
    for item in old:
        kind, server_id = item.split("/", 1)
        get_provider(kind).delete_server(server_id)
    return Done({"deleted_servers": old}, f"{len(old)} old server(s) deleted")


def step_restore_mark_active(job: Job) -> Done:
    """The Beacon runs again (billing may still suspend it: the job's end converges)."""
    Beacon.objects.filter(pk=job.beacon_id, status__in=RESTORABLE_STATUSES).update(
        status=BeaconStatus.ACTIVE
    )
    return Done(message="Beacon is active on its restored server")


def compensate_restore(job: Job) -> Done:
    """A restore that failed before the Beacon moved: delete the server it made (if any), and
    leave the Beacon on its old server."""
    snapshot = restore_snapshot(job=job)
    provider = get_provider(snapshot.provider.kind)
    current = Beacon.objects.values_list("provider_server_id", flat=True).get(pk=job.beacon_id)
    made = provider.find_servers({"wopr-job": str(job.pk)})
    deleted = [server.id for server in made if server.id != current]
    for server_id in deleted:
        provider.delete_server(server_id)
    return Done({"deleted_servers": deleted}, f"restore undone: {len(deleted)} server(s) deleted")


def restore_gave_up(job: Job, message: str) -> None:
    """Staff asked for this restore: flag the Order so they see it failed."""
    Order.objects.filter(beacon__pk=job.beacon_id).update(
        needs_attention=True, attention_reason=f"restore job failed: {message}"[:1000]
    )


RESTORE = Workflow(
    steps=(
        ("plan", step_restore_plan),
        ("create_server", step_restore_create),
        ("wait_running", step_restore_wait_running),
        ("point_beacon", step_restore_point),
        ("dns", step_restore_dns),
        ("delete_old", step_restore_delete_old),
        ("mark_active", step_restore_mark_active),
    ),
    compensate=compensate_restore,
    # Once the Beacon points at the restored server, undoing would strand it: staff finish.
    point_of_no_return="point_beacon",
    gave_up=restore_gave_up,
)
