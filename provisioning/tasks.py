"""django-q2 entry points. Arguments are ids only; the Job row holds everything else."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from django_q.tasks import async_task

from billing.models import PaymentFailure
from provisioning import lifecycle, provision  # noqa: F401  (register the workflows)
from provisioning.jobs import job_advance as advance
from provisioning.jobs import jobs_due
from provisioning.models import FINISHED_JOB_STATES, Beacon, Job
from provisioning.services import beacon_converge as converge

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 500
DUNNING_RETRY_FOR = timedelta(days=3)


def job_advance(job_id: str) -> bool:
    """Run the job's current step if it is due and unclaimed; when the job has finished, bring
    its Beacon in line with billing (a suspend or resume may have waited for this job)."""
    ran = advance(job_id=job_id)
    if ran:
        finished = Job.objects.filter(pk=job_id, state__in=FINISHED_JOB_STATES)
        beacon_id = finished.values_list("beacon_id", flat=True).first()
        if beacon_id is not None:
            converge(beacon_id=beacon_id)
    return ran


def jobs_sweep() -> int:
    """Re-enqueue every unfinished job that is due or whose lease expired (lost messages,
    dead workers), every Beacon marked for converging, and every dunning e-mail not yet sent.
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
    # Dunning e-mails that did not go out (a lost task, mail down), for as long as they help.
    unsent = PaymentFailure.objects.filter(
        order__isnull=False,
        paid_at__isnull=True,
        notified_at__isnull=True,
        created_at__gte=timezone.now() - DUNNING_RETRY_FOR,
    )
    for failure_id in unsent.values_list("pk", flat=True)[:SWEEP_LIMIT]:
        async_task("provisioning.tasks.payment_failure_notify", failure_id, group="emails")
    return len(due)


def beacon_converge(beacon_id: str) -> str:
    """Start the job that brings the Beacon to the state billing and staff ask for."""
    return converge(beacon_id=beacon_id)


def payment_failure_notify(payment_failure_id: int) -> str:
    """The dunning e-mail for one failed invoice (sent once)."""
    from billing.subscriptions import payment_failure_notify as notify

    return notify(payment_failure_id=payment_failure_id)


def trial_ending_notify(order_id: str, trial_end: int) -> str:
    """The trial-ending reminder (sent once per trial end)."""
    from billing.subscriptions import trial_ending_notify as notify

    return notify(order_id=order_id, trial_end=trial_end)


def provider_health_sweep() -> str:
    """The scheduled health sweep (the same as `manage.py provider_health`)."""
    from provisioning.health import providers_health_sweep

    results = providers_health_sweep()
    return "; ".join(f"{result.provider}: {result.status}" for result in results)


def reconcile_sweep() -> str:
    """The scheduled reconciliation (`manage.py reconcile --fix`)."""
    from provisioning.reconcile import reconcile_run

    run = reconcile_run(fix=True)
    return run.summary()
