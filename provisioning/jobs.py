"""The job engine: claim a Job, run exactly its current step, record the outcome.

The Job row is the truth; a queue message only says "look at job X now", so a lost or repeated
message loses or repeats nothing. Advancing a job:

1. claim it with a conditional update that sets a lease (a second worker's update touches no
   row and it walks away);
2. run the current step, which first looks for the result it would make, so a rerun after a
   crash adopts instead of duplicating;
3. in one transaction, guarded by the lease token and the step name, save the checkpoint, move
   to the next step, release the lease and write a JobEvent; enqueue the next advance after
   commit.

A step ends in one of four ways: `Done`, `Wait` (look again later; no worker sleeps), a transient
`ExternalError` (attempt counted, exponential backoff with jitter, bounded) or a permanent one
(the workflow's `compensate` step undoes what was made, then the job fails).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Order
from provisioning.models import UNFINISHED_JOB_STATES, EventLevel, Job, JobEvent, JobState
from wopr.lib.errors import ExternalError
from wopr.lib.redact import redact

logger = logging.getLogger(__name__)

COMPENSATE = "compensate"


@dataclass(frozen=True)
class Done:
    """The step finished; `checkpoint` is what it produced (saved under the step's name)."""

    checkpoint: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class Wait:
    """Nothing to do yet (a provider action running, a callback not yet received)."""

    until: datetime
    message: str
    # Facts to keep while waiting (merged into the job's checkpoint), e.g. placements tried.
    remember: dict[str, Any] = field(default_factory=dict)


StepFunction = Callable[[Job], Done | Wait]


@dataclass(frozen=True)
class Workflow:
    """The ordered steps of one job kind and, optionally, the step that undoes them.

    From `point_of_no_return` on (the customer's server is installed and working), a failure
    does not compensate: tearing down a paid, working Beacon is worse than a late welcome
    e-mail. The job fails and `gave_up` tells staff, as it does when compensation itself runs
    out of attempts.
    """

    steps: tuple[tuple[str, StepFunction], ...]
    compensate: StepFunction | None = None
    point_of_no_return: str | None = None
    gave_up: Callable[[Job, str], None] | None = None

    def compensates(self, step: str) -> bool:
        """Whether a failure at `step` is undone by the compensate step."""
        if self.compensate is None or step == COMPENSATE:
            return False
        if self.point_of_no_return is None:
            return True
        names = [name for name, _ in self.steps]
        if step not in names:  # a step this workflow no longer has: undo, to be safe
            return True
        return names.index(step) < names.index(self.point_of_no_return)

    @property
    def first_step(self) -> str:
        return self.steps[0][0]

    def function(self, step: str) -> StepFunction:
        if step == COMPENSATE and self.compensate is not None:
            return self.compensate
        return dict(self.steps)[step]

    def next_step(self, step: str) -> str | None:
        names = [name for name, _ in self.steps]
        index = names.index(step)
        return names[index + 1] if index + 1 < len(names) else None


WORKFLOWS: dict[str, Workflow] = {}


def workflow_register(kind: str, workflow: Workflow) -> None:
    WORKFLOWS[kind] = workflow


# --- enqueueing ------------------------------------------------------------------------------


def job_enqueue(job_id: uuid.UUID | str) -> None:
    """Ask a worker to look at the job once the current transaction commits (ids only); with
    the broker down, the sweep enqueues it (the Job row is the truth)."""
    from wopr.lib.queue import task_enqueue_after_commit

    task_enqueue_after_commit("provisioning.tasks.job_advance", str(job_id), group="jobs")


def job_wake_at(job_id: uuid.UUID | str, when: datetime) -> None:
    """Ask the scheduler to look at the job again at `when` (one pending wake per job).

    The periodic sweep (`jobs_sweep`) is the safety net if this wake is ever lost.
    """
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=f"wake-job-{job_id}",
        defaults={
            "func": "provisioning.tasks.job_advance",
            "args": repr(str(job_id)),
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": when,
        },
    )


def jobs_due(now: datetime | None = None, limit: int = 500) -> list[uuid.UUID]:
    """Unfinished jobs whose next attempt is due and whose lease (if any) has expired."""
    now = now or timezone.now()
    return list(
        Job.objects.filter(state__in=UNFINISHED_JOB_STATES, next_attempt_at__lte=now)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )


# --- advancing -------------------------------------------------------------------------------


def job_advance(*, job_id: uuid.UUID | str) -> bool:
    """Run the job's current step if it is due and nobody else holds it. True if it ran."""
    token = uuid.uuid4()
    now = timezone.now()
    claimed = (
        Job.objects.filter(pk=job_id, state__in=UNFINISHED_JOB_STATES, next_attempt_at__lte=now)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(
            state=JobState.RUNNING,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        )
    )
    if not claimed:
        return False
    job = Job.objects.select_related("beacon", "beacon__order", "beacon__provider").get(pk=job_id)
    if job.started_at is None:
        Job.objects.filter(pk=job.pk).update(started_at=now)
    workflow = WORKFLOWS[job.kind]
    try:
        outcome = workflow.function(job.step)(job)
    except ExternalError as error:
        if error.transient:
            _fail_transient(job, token, error)
        else:
            _fail_permanent(job, token, str(error))
    except Exception as error:  # a bug or an unforeseen failure: bounded retries, then fail
        logger.exception("job %s step %s raised", job.pk, job.step)
        _fail_transient(
            job, token, ExternalError(f"{type(error).__name__}: {error}", transient=True)
        )
    else:
        if isinstance(outcome, Wait):
            _wait(job, token, outcome)
        else:
            _finish_step(job, token, workflow, outcome)
    return True


def _guarded(job: Job, token: uuid.UUID) -> Any:
    """The job row as long as we still hold its lease on the same step."""
    return Job.objects.filter(pk=job.pk, lease_token=token, state=JobState.RUNNING, step=job.step)


def _release(job: Job, token: uuid.UUID) -> None:
    """We lost the step (cancelled or taken over): drop our lease if it is still ours and let
    whatever the job moved on to (compensation, usually) start now, not at the next sweep."""
    released = Job.objects.filter(pk=job.pk, lease_token=token).update(
        lease_token=None, lease_expires_at=None
    )
    logger.warning("job %s: step %s result discarded, the job moved on", job.pk, job.step)
    if released:
        job_enqueue(job.pk)


def _finish_step(job: Job, token: uuid.UUID, workflow: Workflow, outcome: Done) -> None:
    now = timezone.now()
    checkpoint = {**job.checkpoint, job.step: {**outcome.checkpoint, "at": now.isoformat()}}
    updates: dict[str, Any] = {
        "checkpoint": checkpoint,
        "attempts": 0,
        "lease_token": None,
        "lease_expires_at": None,
        "next_attempt_at": now,
    }
    following = None if job.step == COMPENSATE else workflow.next_step(job.step)
    if following:
        updates.update(step=following, state=JobState.PENDING)
    elif job.step == COMPENSATE:
        final = job.checkpoint.get("failure", {}).get("final_state", JobState.FAILED)
        updates.update(state=final, finished_at=now)
    else:
        updates.update(state=JobState.COMPLETED, finished_at=now)
    with transaction.atomic():
        if not _guarded(job, token).update(**updates):
            _release(job, token)
            return
        _event(job, updates["state"], outcome.message or f"{job.step} done")
        if updates["state"] == JobState.COMPLETED:
            _clear_attention_after_retry(job)
        if following:
            job_enqueue(job.pk)


def _clear_attention_after_retry(job: Job) -> None:
    """A staff retry of a failed job succeeded: lower the Order's "needs attention" flag that
    the failure raised, and say so on the timeline.

    Only the flag as it stood when staff retried (same reason): if anything flagged the Order
    since (a payment problem, a new failure), it stays up for a human."""
    retry = job.checkpoint.get("retry")
    if not retry or not retry.get("attention_reason"):
        return
    cleared = Order.objects.filter(
        beacon__pk=job.beacon_id, needs_attention=True, attention_reason=retry["attention_reason"]
    ).update(needs_attention=False, attention_reason="")
    if cleared:
        _event(
            job,
            JobState.COMPLETED,
            f"retried job succeeded: the order's needs-attention flag is cleared "
            f"(was: {retry['attention_reason']})",
        )


def _wait(job: Job, token: uuid.UUID, outcome: Wait) -> None:
    with transaction.atomic():
        updated = _guarded(job, token).update(
            state=JobState.WAITING,
            next_attempt_at=outcome.until,
            checkpoint={**job.checkpoint, **outcome.remember},
            lease_token=None,
            lease_expires_at=None,
        )
        if not updated:
            _release(job, token)
            return
        last = job.events.order_by("-at", "-id").values_list("step", "message").first()
        if last != (job.step, outcome.message):
            _event(job, JobState.WAITING, outcome.message)
        # The Beacon may have called back while this step ran: its own enqueue found the job
        # leased, so look again now instead of at `until`.
        called_back = (
            Job.objects.filter(pk=job.pk).values_list("callback_completed_at", flat=True).first()
            != job.callback_completed_at
        )
        if called_back or (outcome.remember and outcome.until <= timezone.now()):
            job_enqueue(job.pk)  # something moved on (a callback, a new placement)
        else:
            job_wake_at(job.pk, outcome.until)  # never a hot loop, even with until <= now


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, then 50-100% of it."""
    ceiling = min(
        settings.JOB_BACKOFF_MAX_SECONDS, settings.JOB_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)
    )
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311  (jitter, not cryptography)


def _fail_transient(job: Job, token: uuid.UUID, error: ExternalError) -> None:
    attempt = job.attempts + 1
    # Undoing is retried far longer than doing: giving up there may leave a server running.
    limit = settings.JOB_COMPENSATE_MAX_ATTEMPTS if job.step == COMPENSATE else job.max_attempts
    if attempt >= limit:
        _fail_permanent(job, token, f"gave up after {attempt} attempts: {error}")
        return
    delay = error.retry_after if error.retry_after is not None else backoff_seconds(attempt)
    when = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        updated = _guarded(job, token).update(
            state=JobState.PENDING,
            attempts=attempt,
            last_error=str(error)[:2000],
            next_attempt_at=when,
            lease_token=None,
            lease_expires_at=None,
        )
        if not updated:
            _release(job, token)
            return
        _event(
            job,
            JobState.PENDING,
            f"attempt {attempt} failed ({error}); retrying in {delay:.0f}s",
            EventLevel.WARNING,
        )
        job_wake_at(job.pk, when)


def _fail_permanent(job: Job, token: uuid.UUID, message: str) -> None:
    """Move to compensation, or fail outright when there is nothing (more) to undo."""
    workflow = WORKFLOWS[job.kind]
    now = timezone.now()
    if not workflow.compensates(job.step):
        if job.step == COMPENSATE:
            message = f"compensation gave up, a human must finish it: {message}"
        with transaction.atomic():
            if not _guarded(job, token).update(
                state=JobState.FAILED,
                last_error=message[:2000],
                finished_at=now,
                lease_token=None,
                lease_expires_at=None,
            ):
                _release(job, token)
                return
            _event(job, JobState.FAILED, message, EventLevel.ERROR)
        _tell_staff(workflow, job, message)
        return
    failure = _failure_record(job, message, JobState.FAILED)
    with transaction.atomic():
        if not _guarded(job, token).update(
            step=COMPENSATE,
            state=JobState.PENDING,
            attempts=0,
            last_error=message[:2000],
            checkpoint={**job.checkpoint, "failure": failure},
            next_attempt_at=now,
            lease_token=None,
            lease_expires_at=None,
        ):
            _release(job, token)
            return
        _event(
            job, JobState.PENDING, f"{job.step} failed: {message}; compensating", EventLevel.ERROR
        )
        job_enqueue(job.pk)


def _tell_staff(workflow: Workflow, job: Job, message: str) -> None:
    """Run the workflow's `gave_up` hook; its own failure (mail down) must not hide the job's."""
    if workflow.gave_up is None:
        return
    try:
        workflow.gave_up(job, message)
    except Exception:
        logger.exception("job %s: telling staff that it gave up failed", job.pk)


def _failure_record(job: Job, message: str, final_state: str) -> dict[str, Any]:
    previous = job.checkpoint.get("failure", {})
    return {
        "step": job.step,
        "message": message[:500],
        "final_state": final_state,
        "count": previous.get("count", 0) + 1,
    }


def _event(job: Job, state: str, message: str, level: str = EventLevel.INFO) -> None:
    # Messages quote exceptions, which may quote a credential: staff read these rows.
    message = redact(message)
    JobEvent.objects.create(job=job, step=job.step, state=state, message=message, level=level)


# --- staff actions ---------------------------------------------------------------------------


def job_cancel(*, job: Job, reason: str = "cancelled by staff") -> bool:
    """Cancel an unfinished job: it compensates (undoes what it made) and ends `cancelled`."""
    return job_abort(job=job, reason=reason, final_state=JobState.CANCELLED)


def job_abort(*, job: Job, reason: str, final_state: str) -> bool:
    """Stop an unfinished job from outside (staff, or the Beacon reporting `failed`).

    A worker running a step right now keeps its lease; its result is discarded because the step
    changed under it, and compensation starts when that lease is released or expires.
    """
    job.refresh_from_db()
    if job.finished or job.step == COMPENSATE:
        return False
    workflow = WORKFLOWS[job.kind]
    now = timezone.now()
    undo = workflow.compensates(job.step) or (
        final_state == JobState.CANCELLED and workflow.compensate is not None
    )
    with transaction.atomic():
        base = Job.objects.filter(pk=job.pk, state__in=UNFINISHED_JOB_STATES, step=job.step)
        if not undo:
            state = final_state
            updated = base.update(state=state, finished_at=now, last_error=reason)
        else:
            state = JobState.PENDING
            updated = base.update(
                step=COMPENSATE,
                state=state,
                attempts=0,
                last_error=reason,
                checkpoint={**job.checkpoint, "failure": _failure_record(job, reason, final_state)},
                next_attempt_at=now,
            )
        if not updated:
            return False
        _event(job, state, reason, EventLevel.WARNING)
        if undo:
            job_enqueue(job.pk)
    if not undo and final_state == JobState.FAILED:
        _tell_staff(workflow, job, reason)
    return True


def job_retry(*, job: Job, requested_by: object = None) -> bool:
    """Start a failed or cancelled job again from its first step, or run a waiting job now.

    `requested_by` (a staff user) is named on the timeline. A job retried from the first step
    remembers the Order's "needs attention" reason of that moment; when the job then completes,
    that flag is cleared (see `_clear_attention_after_retry`)."""
    job.refresh_from_db()
    now = timezone.now()
    # Keep what later attempts must know: the last failure and every placement tried, so a
    # compensation can still find servers at a provider this attempt no longer uses.
    kept = {
        key: job.checkpoint[key] for key in ("failure", "placements_tried") if key in job.checkpoint
    }
    flagged = (
        Order.objects.filter(beacon__pk=job.beacon_id, needs_attention=True)
        .values_list("attention_reason", flat=True)
        .first()
    )
    kept["retry"] = {"by": str(requested_by or "staff"), "attention_reason": flagged or ""}
    try:
        return _retry(job, now, kept, requested_by)
    except IntegrityError:  # another job of this Beacon is unfinished; it must end first
        return False


def _retry(job: Job, now: datetime, kept: dict[str, Any], requested_by: object) -> bool:
    with transaction.atomic():
        if job.finished:
            updated = Job.objects.filter(
                pk=job.pk, state__in=[JobState.FAILED, JobState.CANCELLED]
            ).update(
                state=JobState.PENDING,
                step=WORKFLOWS[job.kind].first_step,
                attempts=0,
                checkpoint=kept,
                last_error="",
                next_attempt_at=now,
                finished_at=None,
                callback_completed_at=None,
            )
            message = "retried by staff from the first step"
        else:
            updated = Job.objects.filter(pk=job.pk, state__in=UNFINISHED_JOB_STATES).update(
                next_attempt_at=now
            )
            message = "staff asked to run the current step now"
        if not updated:
            return False
        by = f" (by {requested_by})" if requested_by is not None else ""
        _event(job, JobState.PENDING, f"{message}{by}")
        job_enqueue(job.pk)
    return True
