"""django-q2 entry points. Arguments are ids only; the Job row holds everything else."""

from __future__ import annotations

import logging

from django_q.tasks import async_task

from provisioning import provision  # noqa: F401  (registers the provision workflow)
from provisioning.jobs import job_advance as advance
from provisioning.jobs import jobs_due

logger = logging.getLogger(__name__)


def job_advance(job_id: str) -> bool:
    """Run the job's current step if it is due and unclaimed."""
    return advance(job_id=job_id)


def jobs_sweep() -> int:
    """Re-enqueue every unfinished job that is due or whose lease expired (lost messages,
    dead workers). Scheduled every JOB_SWEEP_MINUTES; returns how many were enqueued."""
    due = jobs_due()
    for job_id in due:
        async_task("provisioning.tasks.job_advance", str(job_id), group="jobs")
    if due:
        logger.info("sweep enqueued %d due job(s)", len(due))
    return len(due)


def provider_health_sweep() -> str:
    """The scheduled health sweep (the same as `manage.py provider_health`)."""
    from provisioning.health import providers_health_sweep

    results = providers_health_sweep()
    return "; ".join(f"{result.provider}: {result.status}" for result in results)
