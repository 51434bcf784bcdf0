"""The Beacon's per-job callback token and the record of what a Beacon reports.

The token is derived from SECRET_KEY and a random per-job salt, so a retried step can rebuild
the same user data without the database ever holding a usable token: only its SHA-256 is
stored, and it is compared in constant time. It stops working when the job finishes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.jobs import job_abort, job_enqueue
from provisioning.models import UNFINISHED_JOB_STATES, EventLevel, Job, JobEvent, JobState

CALLBACK_STATUSES = ("installing", "deploying_apps", "configuring_sso", "complete", "failed")


def job_callback_token(job: Job) -> str:
    """The job's bearer token (created on first use; the same on every call after)."""
    if not job.callback_token_salt:
        salt = secrets.token_hex(16)
        digest = hashlib.sha256(_derive(job.pk, salt).encode()).hexdigest()
        made = Job.objects.filter(pk=job.pk, callback_token_salt="").update(
            callback_token_salt=salt, callback_token_hash=digest
        )
        if made:  # ours is stored: no re-read
            job.callback_token_salt, job.callback_token_hash = salt, digest
        else:  # an earlier call made it: use that one
            job.refresh_from_db(fields=["callback_token_salt", "callback_token_hash"])
    return _derive(job.pk, job.callback_token_salt)


def _derive(job_id: object, salt: str) -> str:
    message = f"beacon-callback:{job_id}:{salt}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def job_callback_token_valid(job: Job, token: str) -> bool:
    """Constant-time check of a presented token; false once the job has finished."""
    if job.state not in UNFINISHED_JOB_STATES or not job.callback_token_hash:
        return False
    presented = hashlib.sha256(token.encode()).hexdigest()
    return hmac.compare_digest(presented, job.callback_token_hash)


def job_callback_record(*, job: Job, status: str, message: str = "", wake: bool = True) -> None:
    """Record what the Beacon reports; `complete` ends the wait, `failed` fails the job.

    `wake=False`: no worker is asked to advance the job (the caller is the job's own step,
    which holds its lease and ends the wait itself)."""
    if status not in CALLBACK_STATUSES:
        raise ValueError(f"unknown callback status {status!r}")
    level = EventLevel.ERROR if status == "failed" else EventLevel.INFO
    with transaction.atomic():
        JobEvent.objects.create(
            job=job,
            step=job.step,
            state=job.state,
            level=level,
            message=f"Beacon: {status}" + (f": {message}" if message else ""),
        )
        if status == "complete":
            updated = Job.objects.filter(
                pk=job.pk, state__in=UNFINISHED_JOB_STATES, callback_completed_at__isnull=True
            ).update(callback_completed_at=timezone.now(), next_attempt_at=timezone.now())
            if updated:
                job.callback_completed_at = timezone.now()
                if wake:
                    job_enqueue(job.pk)
        elif status == "failed":
            transaction.on_commit(
                lambda: job_abort(
                    job=job,
                    reason=f"the Beacon reported a failure: {message}",
                    final_state=JobState.FAILED,
                )
            )
