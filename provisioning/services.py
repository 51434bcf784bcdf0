"""Creating Beacons and starting their Jobs. The only place that starts lifecycle work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Order
from provisioning.checkpoint import Checkpoint
from provisioning.jobs import WORKFLOWS, job_abort, job_enqueue
from provisioning.lifecycle import (
    DECOMMISSION_CANCELLABLE_STEPS,
    EXPORT_WINDOW_STEP,
    beacon_desired_status,
    decommission_at,
)
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    Beacon,
    BeaconStatus,
    Job,
    JobEvent,
    JobKind,
    JobState,
    StaffHold,
)
from provisioning.resize import beacon_needs_resize


def beacon_fqdn(name: str) -> str:
    return f"{name}.{settings.WOPR_BASE_DOMAIN}"


def beacon_create_for_order(
    *, order: Order, new_order: bool = False, converge: bool = False
) -> tuple[Beacon, bool]:
    """The Order's Beacon and provision Job, created once (unique per Order).

    Runs inside the webhook's transaction; the job is enqueued after commit. A redelivered or
    concurrent event finds the existing Beacon (the one-to-one constraint decides the race).
    `new_order`: the caller inserted the Order in this transaction, so no Beacon can exist for
    it and no other transaction can make one (no look-up, no savepoint). `converge`: billing
    said something before the Beacon existed; the mark makes the end of the provision job (or
    the sweep) bring the Beacon in line, without a task of its own.
    """
    if new_order:
        return _beacon_create(order, converge), True
    existing = Beacon.objects.filter(order=order).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return _beacon_create(order, converge), True
    except IntegrityError:
        return Beacon.objects.get(order=order), False


def _beacon_create(order: Order, converge: bool) -> Beacon:
    beacon = Beacon.objects.create(
        owner_id=order.customer_id,
        order=order,
        name=order.beacon_name,
        fqdn=beacon_fqdn(order.beacon_name),
        bundle=order.bundle,
        tier_id=order.tier_id,
        modules=list(order.bundle.modules),
        region=order.region,
        stripe_mode=order.stripe_mode,
        converge_requested_at=timezone.now() if converge else None,
    )
    job_start(beacon=beacon, kind=JobKind.PROVISION)
    return beacon


def job_start(*, beacon: Beacon, kind: str, requested_by: object = None) -> Job:
    """Create a Job at its first step and enqueue it after commit.

    The database allows one unfinished Job per Beacon; a second raises IntegrityError.
    """
    job = Job.objects.create(
        beacon=beacon,
        kind=kind,
        step=WORKFLOWS[kind].first_step,
        state=JobState.PENDING,
        max_attempts=settings.JOB_MAX_ATTEMPTS,
        next_attempt_at=timezone.now(),
        requested_by=requested_by,
    )
    JobEvent.objects.create(job=job, step=job.step, state=job.state, message=f"{kind} job created")
    job_enqueue(job.pk)
    return job


# --- life after purchase: converging a Beacon on what billing and staff ask -------------------


def beacon_converge_request(*, beacon_id: uuid.UUID | str) -> None:
    """Note that the Beacon's desired state may have changed and converge after commit.

    The mark is the safety net: the sweep converges every marked Beacon, so a lost task, or a
    Beacon busy with another job, is looked at again.
    """
    from wopr.lib.queue import task_enqueue_after_commit

    Beacon.objects.filter(pk=beacon_id).update(converge_requested_at=timezone.now())
    task_enqueue_after_commit("provisioning.tasks.beacon_converge", str(beacon_id), group="jobs")


def beacon_converge(*, beacon_id: uuid.UUID | str, requested_by: object = None) -> str:
    """Start the Job that moves the Beacon to the state billing and staff ask for; idempotent.

    At most one unfinished Job per Beacon: while another runs, the mark stays and the end of
    that job (provisioning.tasks.job_advance) or the sweep converges again. A decommission
    still in its grace period is cancelled when the Beacon should live after all.
    """
    with transaction.atomic():
        beacon = (
            Beacon.objects.select_for_update().select_related("order").filter(pk=beacon_id).first()
        )
        if beacon is None:
            return "no such Beacon"
        mark = beacon.converge_requested_at
        outcome, settled = _converge_locked(beacon, requested_by)
        if settled and mark is not None:
            Beacon.objects.filter(pk=beacon.pk, converge_requested_at=mark).update(
                converge_requested_at=None
            )
    return outcome


JOB_FOR_STATUS = {
    BeaconStatus.ACTIVE: JobKind.RESUME,
    BeaconStatus.SUSPENDED: JobKind.SUSPEND,
    BeaconStatus.DECOMMISSIONED: JobKind.DECOMMISSION,
}
# Where each job may start from (a Beacon still provisioning, failed or gone is left alone).
JOB_STARTS_FROM = {
    JobKind.RESUME: (BeaconStatus.SUSPENDED, BeaconStatus.DECOMMISSIONING),
    JobKind.SUSPEND: (BeaconStatus.ACTIVE, BeaconStatus.DECOMMISSIONING),
    JobKind.DECOMMISSION: (
        BeaconStatus.ACTIVE,
        BeaconStatus.SUSPENDED,
        BeaconStatus.DECOMMISSIONING,
    ),
    JobKind.RESIZE: (BeaconStatus.ACTIVE,),
}


def _converge_locked(beacon: Beacon, requested_by: object) -> tuple[str, bool]:
    """(what was done, whether nothing more is needed) for a Beacon locked by the caller."""
    desired = beacon_desired_status(beacon)
    running = beacon.jobs.filter(state__in=UNFINISHED_JOB_STATES).first()
    if running is not None:
        lives = desired in (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED)
        if running.kind != JobKind.DECOMMISSION or not lives:
            return f"{running.kind} job under way", running.kind == JOB_FOR_STATUS.get(desired)
        if running.step not in DECOMMISSION_CANCELLABLE_STEPS:
            return "decommission already deleting; too late to cancel", True
        job_abort(job=running, reason=_cancel_reason(beacon), final_state=JobState.CANCELLED)
    kind = JOB_FOR_STATUS.get(desired) if desired else None
    if kind == JobKind.RESUME and beacon_needs_resize(beacon):  # active: the paid tier differs
        kind = JobKind.RESIZE
    if kind is None or beacon.status not in JOB_STARTS_FROM[kind]:
        return "nothing to do", True
    if desired == BeaconStatus.DECOMMISSIONED and beacon.status == BeaconStatus.DECOMMISSIONED:
        return "nothing to do", True
    latest = beacon.jobs.order_by("-created_at").first()
    if latest is not None and latest.kind == kind and latest.state == JobState.FAILED:
        return f"the last {kind} job failed; staff must retry it", True
    try:
        with transaction.atomic():
            job = _lifecycle_job_start(beacon, kind, requested_by)
    except IntegrityError:  # another job started meanwhile; its end converges again
        return "another job started meanwhile", False
    return f"{kind} job {job.pk} started", True


def _cancel_reason(beacon: Beacon) -> str:
    if beacon.order.subscription_status not in ("canceled", "incomplete_expired"):
        return f"decommission cancelled: subscription {beacon.order.stripe_subscription_id} pays"
    return "decommission cancelled by staff"


def _lifecycle_job_start(beacon: Beacon, kind: str, requested_by: object) -> Job:
    """Create the suspend, resume or decommission job with what its steps need to know."""
    checkpoint: dict[str, object] = {}
    if kind == JobKind.DECOMMISSION:
        # No export window carried over from an earlier, cancelled decommission.
        Beacon.objects.filter(pk=beacon.pk).update(
            status=BeaconStatus.DECOMMISSIONING, export_until=None
        )
        checkpoint = Checkpoint({}).with_schedule(decommission_at(beacon))
    elif kind == JobKind.SUSPEND:
        cause = "payment"
        if beacon.staff_hold == StaffHold.SUSPEND:
            cause = "staff"
        elif beacon.status == BeaconStatus.DECOMMISSIONING:
            cause = "kept"
        checkpoint = Checkpoint({}).with_facts(cause=cause)
    job = job_start(beacon=beacon, kind=kind, requested_by=requested_by)
    if checkpoint:
        Job.objects.filter(pk=job.pk).update(checkpoint=checkpoint)
    return job


# --- staff actions (the admin's buttons); each names the user on the Beacon's job timeline --------


def beacon_staff_suspend(*, beacon: Beacon, requested_by: object) -> str:
    """Suspend the Beacon whatever billing says, until staff resume it."""
    Beacon.objects.filter(pk=beacon.pk).update(staff_hold=StaffHold.SUSPEND)
    return _staff_converge(beacon, requested_by, "suspend")


def beacon_staff_resume(*, beacon: Beacon, requested_by: object) -> str:
    """Lift a staff suspension; billing still decides (an unpaid Beacon stays suspended)."""
    Beacon.objects.filter(pk=beacon.pk, staff_hold=StaffHold.SUSPEND).update(
        staff_hold=StaffHold.NONE
    )
    return _staff_converge(beacon, requested_by, "resume")


def beacon_staff_decommission_now(*, beacon: Beacon, requested_by: object) -> str:
    """Delete the server and DNS records now: a decommission in its grace period is brought
    forward, otherwise one starts (after the job under way, if any)."""
    Beacon.objects.filter(pk=beacon.pk).update(staff_hold=StaffHold.DECOMMISSION)
    waiting = beacon.jobs.filter(
        kind=JobKind.DECOMMISSION,
        state__in=UNFINISHED_JOB_STATES,
        step__in=DECOMMISSION_CANCELLABLE_STEPS,
    ).first()
    if waiting is None:
        return _staff_converge(beacon, requested_by, "decommission now")
    now = timezone.now()
    with transaction.atomic():
        Job.objects.filter(pk=waiting.pk).update(
            checkpoint=Checkpoint(waiting.checkpoint).with_schedule(now),
            next_attempt_at=now,
            requested_by=requested_by,
        )
        _staff_event(waiting, requested_by, "decommission brought forward to now")
        job_enqueue(waiting.pk)
    return "decommission brought forward to now"


def beacon_staff_decommission_cancel(*, beacon: Beacon, requested_by: object) -> str:
    """Cancel a scheduled decommission and keep the Beacon (powered off while its subscription
    has ended) until staff decide otherwise."""
    waiting = beacon.jobs.filter(kind=JobKind.DECOMMISSION, state__in=UNFINISHED_JOB_STATES).first()
    if waiting is None:
        return "no scheduled decommission"
    if waiting.step not in DECOMMISSION_CANCELLABLE_STEPS:
        return "too late: the decommission is already deleting"
    Beacon.objects.filter(pk=beacon.pk).update(staff_hold=StaffHold.KEEP)
    reason = f"decommission cancelled by {requested_by}"
    if not job_abort(job=waiting, reason=reason, final_state=JobState.CANCELLED):
        return "the decommission moved on; nothing cancelled"
    return _staff_converge(beacon, requested_by, "cancel decommission")


@dataclass(frozen=True)
class ExportWindowPlan:
    """What "Power on for export" would do for a Beacon now: power its server on until `until`
    (never past `deletion`), or why not (`refusal`)."""

    beacon: Beacon
    job: Job | None = None
    until: datetime | None = None
    deletion: datetime | None = None
    refusal: str = ""

    @property
    def summary(self) -> str:
        """The sentence staff confirm, and the timeline records."""
        if self.refusal or self.until is None or self.deletion is None:
            return f"refused: {self.refusal}"
        cut = " (cut at the deletion date)" if self.until == self.deletion else ""
        return (
            f"server {self.beacon.fqdn} powered on until {self.until:%Y-%m-%d %H:%M} UTC{cut}, "
            f"then powered off again; deletion date unchanged: "
            f"{self.deletion:%Y-%m-%d %H:%M} UTC"
        )


def beacon_export_window_plan(*, beacon: Beacon, hours: float) -> ExportWindowPlan:
    """Only a decommission waiting out its grace period (server off, deletion scheduled) can be
    powered on for export, once per window: a second click during a window changes nothing."""
    now = timezone.now()
    job = beacon.jobs.filter(
        kind=JobKind.DECOMMISSION, state__in=UNFINISHED_JOB_STATES, step=EXPORT_WINDOW_STEP
    ).first()
    if job is None:
        return ExportWindowPlan(
            beacon, refusal="only while a decommission waits out its grace period"
        )
    deletion = Checkpoint(job.checkpoint).decommission_at
    if deletion <= now:
        return ExportWindowPlan(beacon, job, refusal="the deletion is due now")
    open_until = Beacon.objects.filter(pk=beacon.pk).values_list("export_until", flat=True).get()
    if open_until is not None and open_until > now:
        return ExportWindowPlan(
            beacon, job, refusal=f"already powered on until {open_until:%Y-%m-%d %H:%M} UTC"
        )
    return ExportWindowPlan(beacon, job, min(now + timedelta(hours=hours), deletion), deletion)


def beacon_export_window_open(*, beacon: Beacon, hours: float, requested_by: object) -> str:
    """Open an export window and wake the decommission job, which powers the server on, tells
    the customer and powers it off when the window ends; the deletion date does not move.

    Claimed with conditional updates in one transaction: the window only if none is open, the
    job only while no worker runs its step (a step running now would overwrite the wake-up with
    its own wait, so staff are asked to try again instead)."""
    plan = beacon_export_window_plan(beacon=beacon, hours=hours)
    if plan.job is None or plan.until is None:
        return plan.summary
    now = timezone.now()
    with transaction.atomic():
        closed = Q(export_until__isnull=True) | Q(export_until__lte=now)
        if not Beacon.objects.filter(closed, pk=beacon.pk).update(export_until=plan.until):
            return "refused: an export window was opened meanwhile"
        waiting = (JobState.PENDING, JobState.WAITING)
        if not Job.objects.filter(
            pk=plan.job.pk, step=EXPORT_WINDOW_STEP, state__in=waiting
        ).update(next_attempt_at=now):
            transaction.set_rollback(True)
            return "refused: the decommission job is busy this moment; try again in a minute"
        _staff_event(plan.job, requested_by, f"power on for export: {plan.summary}")
        job_enqueue(plan.job.pk)
    return plan.summary


def _staff_converge(beacon: Beacon, requested_by: object, action: str) -> str:
    outcome = beacon_converge(beacon_id=beacon.pk, requested_by=requested_by)
    job = beacon.jobs.order_by("-created_at").first()
    if job is not None:
        _staff_event(job, requested_by, f"staff action '{action}': {outcome}")
    return outcome


def _staff_event(job: Job, user: object, message: str) -> None:
    job.refresh_from_db(fields=["state", "step"])
    JobEvent.objects.create(
        job=job, step=job.step, state=job.state, message=f"{message} (by {user})"
    )
