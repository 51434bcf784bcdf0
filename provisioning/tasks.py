"""django-q2 entry points. Arguments are ids only; the Job row holds everything else."""

from __future__ import annotations

import logging

from django_q.tasks import async_task

from provisioning.jobs import job_step_run as step_run
from provisioning.jobs import jobs_due
from provisioning.models import FINISHED_JOB_STATES, Beacon, Job
from provisioning.services import beacon_converge as converge
from provisioning.welcome import beacon_documents_regenerate as documents_regenerate
from provisioning.welcome import welcome_send

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 500


def job_advance(job_id: str, lease: str | None = None) -> bool:
    """Run the job's current step if it is due and unclaimed (`lease`: the due-job loop's
    reservation for this message); when the job has finished, bring its Beacon in line with
    billing (a suspend or resume may have waited for this job)."""
    advanced = step_run(job_id=job_id, lease=lease)
    if advanced is None:
        return False
    finished = advanced.finished
    if finished is None:  # the step's result was discarded: only the row knows
        finished = Job.objects.filter(pk=job_id, state__in=FINISHED_JOB_STATES).exists()
    if finished:
        converge(beacon_id=advanced.beacon_id)
    return True


def jobs_sweep() -> int:
    """Re-enqueue every unfinished job that is due or whose lease expired (lost messages,
    dead workers, no due-job loop running), every Beacon marked for converging, and billing's
    sweep of dunning e-mails not yet sent (by name: provisioning imports no billing flow).
    Scheduled every JOB_SWEEP_MINUTES; returns how many jobs were enqueued."""
    due = jobs_due()
    for job_id in due:
        async_task("provisioning.tasks.job_advance", str(job_id), group="jobs")
    if due:
        logger.info("sweep enqueued %d due job(s)", len(due))
    marked = Beacon.objects.filter(converge_requested_at__isnull=False).order_by(
        "converge_requested_at"
    )
    for beacon_id in marked.values_list("pk", flat=True)[:SWEEP_LIMIT]:
        async_task("provisioning.tasks.beacon_converge", str(beacon_id), group="jobs")
    async_task("billing.tasks.dunning_sweep", group="emails")
    async_task("billing.tasks.remedies_sweep", group="billing")
    return len(due)


def beacon_converge(beacon_id: str) -> str:
    """Start the job that brings the Beacon to the state billing and staff ask for."""
    return converge(beacon_id=beacon_id)


# Messages queued under the old names: handed on to billing's entry points by name.


def payment_failure_notify(payment_failure_id: int) -> str | None:
    """Forwards to billing.tasks.payment_failure_notify."""
    return async_task("billing.tasks.payment_failure_notify", payment_failure_id, group="emails")


def trial_ending_notify(order_id: str, trial_end: int) -> str | None:
    """Forwards to billing.tasks.trial_ending_notify."""
    return async_task("billing.tasks.trial_ending_notify", order_id, trial_end, group="emails")


# The Beacon page's buttons whose work is too slow, or must not repeat, inside a request.


def welcome_resend(beacon_id: str, key: str) -> str:
    """Send the welcome e-mail again under `key` (its row was claimed by welcome_resend_queue)."""
    beacon = Beacon.objects.select_related("order", "bundle", "tier").get(pk=beacon_id)
    return str(welcome_send(beacon=beacon, key=key).status)


def beacon_documents_regenerate(beacon_id: str) -> str:
    """Render the Beacon's PDFs again (WeasyPrint: seconds each, so never in a request)."""
    beacon = Beacon.objects.select_related("order", "bundle", "tier").get(pk=beacon_id)
    return f"regenerated {', '.join(documents_regenerate(beacon=beacon))}"
