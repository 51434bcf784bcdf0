"""Creating Beacons and starting their Jobs. The only place that starts lifecycle work."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Order
from provisioning import provision  # noqa: F401  (registers the provision workflow)
from provisioning.jobs import WORKFLOWS, job_enqueue
from provisioning.models import Beacon, Job, JobEvent, JobKind, JobState


def beacon_fqdn(name: str) -> str:
    return f"{name}.{settings.WOPR_BASE_DOMAIN}"


def beacon_create_for_order(*, order: Order) -> tuple[Beacon, bool]:
    """The Order's Beacon and provision Job, created once (unique per Order).

    Runs inside the webhook's transaction; the job is enqueued after commit. A redelivered or
    concurrent event finds the existing Beacon (the one-to-one constraint decides the race).
    """
    existing = Beacon.objects.filter(order=order).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            beacon = Beacon.objects.create(
                owner=order.customer,
                order=order,
                name=order.beacon_name,
                fqdn=beacon_fqdn(order.beacon_name),
                bundle=order.bundle,
                tier=order.tier,
                modules=list(order.bundle.modules),
                region=order.region,
                stripe_mode=order.stripe_mode,
            )
            job_start(beacon=beacon, kind=JobKind.PROVISION)
    except IntegrityError:
        return Beacon.objects.get(order=order), False
    return beacon, True


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
