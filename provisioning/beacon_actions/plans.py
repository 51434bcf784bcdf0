"""Each button's plan (what it would do to the Beacon now, or why it cannot) and act, for the
buttons that move servers and jobs: retry, cancel, suspend, resume, power on for export,
resize, restore and decommission. Plans read the database only."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.timezone import localtime

from billing.catalog import server_size
from provisioning.jobs import COMPENSATE, WORKFLOWS, job_cancel, job_retry
from provisioning.lifecycle import beacon_desired_status
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    Beacon,
    BeaconStatus,
    Job,
    JobState,
    StaffHold,
)
from provisioning.provision import size_number
from provisioning.resize import size_position
from provisioning.services import (
    beacon_converge,
    beacon_export_window_open,
    beacon_export_window_plan,
)
from provisioning.teardown import Teardown, beacon_decommission_teardown, job_cancel_teardown

NOTHING_DELETED = ("nothing is deleted: the server, its disk, DNS records and snapshots stay",)


@dataclass(frozen=True)
class ActionPlan:
    """What a button would do to the Beacon now, or why it cannot (`refusal`)."""

    summary: str = ""
    refusal: str = ""
    makes: tuple[str, ...] = ()
    deletes: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    # Links that replace the button (restore: one per snapshot, to its own confirmation).
    links: tuple[tuple[str, str], ...] = ()
    # What the plan is about (a job's id, the Beacon's state): a POST acts only on the same.
    subject: str = ""
    confirm: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a button did (`ok`) or why it did nothing, in a sentence for the staff member."""

    text: str
    ok: bool = True


def refused(text: str) -> Outcome:
    return Outcome(text=text, ok=False)


# How the staff services (provisioning.services) word a request they turned down.
SERVICE_REFUSALS = (
    "refused",
    "not ",
    "no such",
    "too late",
    "another job",
    "the last ",
    "decommission already deleting",
)


def service_outcome(text: str) -> Outcome:
    """A staff service's sentence as an Outcome (they answer in words, not statuses)."""
    return Outcome(text=text, ok=not text.startswith(SERVICE_REFUSALS))


@dataclass(frozen=True)
class BeaconAction:
    """One button: its label, the permission it needs, its plan and its act."""

    name: str
    label: str
    permission: str
    plan: Callable[[Beacon], ActionPlan]
    act: Callable[[Beacon, Any], Outcome] | None


def latest_job(beacon: Beacon) -> Job | None:
    """The Beacon's newest job: the one Retry acts on, on the page and in the changelists."""
    return beacon.jobs.order_by("-created_at").first()


def _unfinished_job(beacon: Beacon) -> Job | None:
    return beacon.jobs.filter(state__in=UNFINISHED_JOB_STATES).first()


def state_subject(beacon: Beacon) -> str:
    return f"{beacon.status}/{beacon.staff_hold}"


def _server(beacon: Beacon) -> str:
    if beacon.provider is None or not beacon.provider_server_id:
        return f"the server of {beacon.fqdn}"
    return f"{beacon.provider.name} server {beacon.provider_server_id} ({beacon.fqdn})"


def _from_teardown(teardown: Teardown, subject: str, confirm: str) -> ActionPlan:
    """A plan from provisioning.teardown's preview: the same lists the changelist shows."""
    deletes: list[str] = []
    if teardown.deletes:
        deletes = [f"server: {server}" for server in teardown.servers] or [
            "server: none recorded for this Beacon"
        ]
        deletes += [f"also {teardown.sweep}", *(f"DNS: {r}" for r in teardown.dns_records)]
    return ActionPlan(
        summary=teardown.summary,
        deletes=tuple(deletes),
        kept=tuple(teardown.kept),
        subject=subject,
        confirm=confirm,
    )


# --- retry and cancel: the latest job ---------------------------------------------------------


def plan_retry(beacon: Beacon) -> ActionPlan:
    """A failed or cancelled latest job starts again from its first step; an unfinished one
    runs its current step now (job_retry)."""
    job = latest_job(beacon)
    if job is None or job.kind not in WORKFLOWS:
        return ActionPlan(refusal="the Beacon has no job that can be retried")
    if job.state == JobState.COMPLETED:
        return ActionPlan(refusal=f"its latest job ({job.kind}) completed: nothing to retry")
    confirm = f"Yes, retry the {job.kind} job"
    if not job.finished:
        return ActionPlan(
            summary=f"The {job.kind} job ({job.state}, step {job.step}) runs its current step "
            "now instead of waiting for its next attempt.",
            deletes=("nothing",),
            subject=str(job.pk),
            confirm=confirm,
        )
    steps = ", ".join(name for name, _ in WORKFLOWS[job.kind].steps)
    error = f": {job.last_error}" if job.last_error else ""
    return ActionPlan(
        summary=f"The {job.kind} job ({job.state} at step {job.step}{error}) starts again from "
        f"its first step, {WORKFLOWS[job.kind].first_step}.",
        makes=(
            f"the job's steps run again in order: {steps}; each first looks for what an "
            "earlier attempt made (a server, DNS records, documents) and adopts it",
            "an e-mail already sent under the same cause is not sent again",
        ),
        deletes=("nothing (the job's timeline and the Beacon's documents are kept)",),
        subject=str(job.pk),
        confirm=confirm,
    )


def act_retry(beacon: Beacon, user: Any) -> Outcome:
    job = latest_job(beacon)
    if job is None or not job_retry(job=job, requested_by=user):
        return refused("not retried: the job moved on or another job is unfinished")
    return Outcome(f"{job.kind} job {job.pk} retried")


def plan_cancel(beacon: Beacon) -> ActionPlan:
    """The unfinished job stops; a provision job undoes what it made (provisioning.teardown)."""
    job = _unfinished_job(beacon)
    if job is None:
        return ActionPlan(refusal="no job of this Beacon is unfinished")
    if job.step == COMPENSATE or job.kind not in WORKFLOWS:
        return ActionPlan(refusal=f"its {job.kind} job is already undoing what it made")
    teardown = job_cancel_teardown(job=job)
    return _from_teardown(teardown, str(job.pk), f"Yes, cancel the {job.kind} job")


def act_cancel(beacon: Beacon, user: Any) -> Outcome:
    job = _unfinished_job(beacon)
    if job is None or not job_cancel(job=job, reason=f"cancelled by {user}"):
        return refused("not cancelled: the job finished or is already undoing what it made")
    return Outcome(f"{job.kind} job {job.pk} cancelled")


# --- suspend, resume, power on for export ---------------------------------------------------


def plan_suspend(beacon: Beacon) -> ActionPlan:
    """A staff hold: powered off until staff resume it, whatever billing says."""
    if beacon.staff_hold == StaffHold.SUSPEND:
        return ActionPlan(refusal="it is suspended by staff already")
    if beacon.status not in (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED):
        return ActionPlan(refusal=f"a {beacon.status} Beacon cannot be suspended")
    makes = ["a staff hold: the Beacon stays suspended, whatever billing says, until resumed"]
    if beacon.status == BeaconStatus.ACTIVE:
        makes.append(
            f"a suspend job: {_server(beacon)} is powered off, the Beacon marked suspended, "
            "and the customer gets the 'suspended' e-mail"
        )
    return ActionPlan(
        summary=f"{beacon.name} is suspended by staff.",
        makes=tuple(makes),
        deletes=NOTHING_DELETED,
        subject=state_subject(beacon),
        confirm=f"Yes, suspend {beacon.name}",
    )


def plan_resume(beacon: Beacon) -> ActionPlan:
    """Lifting the staff hold; billing still decides (an unpaid Beacon stays suspended)."""
    if beacon.staff_hold != StaffHold.SUSPEND:
        if beacon.status == BeaconStatus.SUSPENDED:
            return ActionPlan(
                refusal="it is suspended by billing (unpaid), not by staff: it resumes when paid"
            )
        return ActionPlan(refusal=f"it is not suspended by staff (it is {beacon.status})")
    lifted = copy.copy(beacon)
    lifted.staff_hold = StaffHold.NONE
    desired = beacon_desired_status(lifted)
    makes = ["the staff hold is lifted"]
    if desired == BeaconStatus.ACTIVE and beacon.status == BeaconStatus.SUSPENDED:
        makes.append(
            f"a resume job: {_server(beacon)} is powered on, the Beacon marked active, and "
            "the customer gets the 'resumed' e-mail"
        )
    elif desired != BeaconStatus.ACTIVE:
        makes.append(f"billing still wants it {desired or 'left alone'}: it stays as it is")
    return ActionPlan(
        summary=f"{beacon.name}'s staff suspension ends.",
        makes=tuple(makes),
        deletes=NOTHING_DELETED,
        subject=state_subject(beacon),
        confirm=f"Yes, resume {beacon.name}",
    )


def plan_export(beacon: Beacon) -> ActionPlan:
    """Power on during a decommission's grace period (provisioning.services' plan)."""
    plan = beacon_export_window_plan(beacon=beacon, hours=settings.EXPORT_WINDOW_HOURS)
    if plan.refusal:
        return ActionPlan(refusal=plan.refusal)
    return ActionPlan(
        summary=plan.summary,
        makes=(
            f"{_server(beacon)} powered on for {settings.EXPORT_WINDOW_HOURS} hours (never past "
            "the deletion date), then powered off again by the decommission job",
            "one e-mail to the customer with the end of the window",
        ),
        deletes=("nothing now; the deletion date does not move",),
        subject=state_subject(beacon),
        confirm=f"Yes, power {beacon.name} on for export",
    )


def act_export(beacon: Beacon, user: Any) -> Outcome:
    hours = settings.EXPORT_WINDOW_HOURS
    return service_outcome(beacon_export_window_open(beacon=beacon, hours=hours, requested_by=user))


# --- resize -----------------------------------------------------------------------------------


def plan_resize(beacon: Beacon) -> ActionPlan:
    """The RESIZE job to the tier the order pays for (what a customer's paid tier change
    starts through beacon_converge); a tier nobody paid for would be undone by the next
    converge, so staff cannot pick one here."""
    paid = beacon.order.tier
    problem = _resize_problem(beacon)
    if problem or paid is None or beacon.provider is None:
        return ActionPlan(refusal=problem or "the order names no tier")
    to_size = server_size(beacon.provider.kind, size_number(beacon.bundle, paid))
    from_size = beacon.server_size or "unknown size"
    if to_size == beacon.server_size:
        what = f"the server has {to_size} already: only the Beacon's tier moves"
    else:
        what = f"{_server(beacon)} is powered off, resized and powered on again"
    return ActionPlan(
        summary=f"{beacon.name} moves from {from_size} (tier {beacon.tier.slug}) to {to_size} "
        f"(tier {paid.slug}, what its order pays for).",
        makes=(f"a resize job: {what}", "one e-mail to the customer saying what changed"),
        deletes=("nothing: a disk only grows, the server keeps its address and DNS records",),
        subject=f"{state_subject(beacon)}/{paid.pk}",
        confirm=f"Yes, resize {beacon.name} from {from_size} to {to_size}",
    )


def _resize_problem(beacon: Beacon) -> str:
    """Why the Beacon cannot be resized now ('' when it can)."""
    paid = beacon.order.tier
    if beacon.status != BeaconStatus.ACTIVE:
        return "only an active Beacon is resized"
    if paid is None or paid.pk == beacon.tier_id:
        return (
            "it runs the tier its order pays for; another tier is the customer's change "
            "(paid through Stripe), which resizes it once paid"
        )
    if beacon.provider is None:
        return "it has no provider"
    if beacon_desired_status(beacon) != BeaconStatus.ACTIVE:
        return "billing or a staff hold does not want it running"
    if _unfinished_job(beacon) is not None:
        return "another job of this Beacon is unfinished"
    kind = beacon.provider.kind
    here = size_position(kind, beacon.server_size)
    there = size_position(kind, server_size(kind, size_number(beacon.bundle, paid)))
    if here is not None and there is not None and there < here:
        return f"tier {paid.slug} needs a smaller server, and a disk never shrinks"
    return ""


def act_resize(beacon: Beacon, user: Any) -> Outcome:
    """Resized only when converge started the job ("nothing to do" or a job under way: not)."""
    text = beacon_converge(beacon_id=beacon.pk, requested_by=user)
    return Outcome(text=text, ok=text.endswith("started"))


# --- restore: links into the backups app's own confirmation ---------------------------------


def plan_restore(beacon: Beacon) -> ActionPlan:
    """One link per available snapshot, to backups' restore confirmation (which says what is
    made, deleted and moved). By URL name and reverse relation: provisioning imports no
    backups."""
    available = beacon.backup_snapshots.filter(status="available")  # type: ignore[attr-defined]
    snapshots = available.order_by("-created_at")
    links = tuple(
        (
            f"{snapshot.name} ({snapshot.kind}, {localtime(snapshot.created_at):%Y-%m-%d %H:%M})",
            reverse("admin:backups_backupsnapshot_restore", args=[snapshot.pk]),
        )
        for snapshot in snapshots
    )
    if not links:
        return ActionPlan(refusal="it has no available snapshot")
    return ActionPlan(
        summary="Choose the snapshot: its page says what the restore makes, deletes and moves, "
        "and asks before it starts.",
        links=links,
    )


# --- decommission ---------------------------------------------------------------------------


def plan_decommission(beacon: Beacon) -> ActionPlan:
    """Power off and delete now (provisioning.teardown says exactly what)."""
    live = (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED, BeaconStatus.DECOMMISSIONING)
    if beacon.status == BeaconStatus.DECOMMISSIONED:
        return ActionPlan(refusal="it is decommissioned already")
    if beacon.status not in live:
        return ActionPlan(
            refusal=f"a {beacon.status} Beacon has no running server: cancel its job instead"
        )
    if beacon.staff_hold == StaffHold.DECOMMISSION and _unfinished_job(beacon) is not None:
        return ActionPlan(refusal="staff decommissioned it already; its job is under way")
    teardown = beacon_decommission_teardown(beacon=beacon)
    return _from_teardown(teardown, state_subject(beacon), f"Yes, decommission {beacon.name} now")
