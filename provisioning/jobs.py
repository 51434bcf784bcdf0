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

A step ends in one of these ways: `Done`, `Wait` (until a time; the job row's next_attempt_at
holds it and the due-job loop of provisioning.wakeups hands it to a worker then: no worker
sleeps), `Again` (run the step again now, keeping facts), `Back` (to an earlier step, e.g. a
fresh server), `GiveUp` (fail without compensation, keeping what was made for staff), a
transient `ExternalError` (attempt
counted, exponential backoff with jitter, bounded; a wait for a vendor's shared rate budget is
not an attempt) or a permanent one (the workflow's `compensate` step undoes what was made, then
the job fails).
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
from django.db import IntegrityError, connection, transaction
from django.db.models import DateTimeField, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import Order
from integrations.errors import ExternalError
from provisioning.checkpoint import BUDGET_WAITS, Checkpoint
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    EventLevel,
    Job,
    JobEvent,
    JobState,
    job_due,
    job_lease_free,
)
from wopr.lib.redact import redact

logger = logging.getLogger(__name__)

COMPENSATE = "compensate"
# The error code of a vendor's shared request budget (DbRateBudget.check, before sending).
BUDGET_SPENT = "rate_limit_budget"
# A step waits for the budget at most this many times before a wait counts as an attempt.
BUDGET_WAITS_MAX = 30
# How long a job handed out by the due-job loop stays reserved for the worker it was sent to;
# a lost message is handed out again after this.
DISPATCH_LEASE = timedelta(seconds=30)
# A job moved on or created was enqueued at once: the due-job loop leaves it to that message
# for this long (racing it would only send a second message), then treats the message as lost.
ENQUEUED_GRACE = timedelta(seconds=5)


@dataclass(frozen=True)
class Done:
    """The step finished; `checkpoint` is what it produced (saved under the step's name)."""

    checkpoint: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class Wait:
    """Nothing to do before `until` (a provider action running, a callback not yet received).

    A past `until` means "at the due-job loop's next look", never a hot loop."""

    until: datetime
    message: str


@dataclass(frozen=True)
class Again:
    """Run the step again now, keeping `remember` (reserved checkpoint facts, e.g. the
    placements tried) for that run."""

    message: str
    remember: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Back:
    """Go back to an earlier `step` now (a fresh server after a stalled install), keeping
    `remember` (reserved checkpoint facts); the steps after it run again, each looking for its
    own result first as always."""

    step: str
    message: str
    remember: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GiveUp:
    """Fail the job now WITHOUT compensation, whatever the step: what it made is kept for
    staff to look at, and the workflow's `gave_up` hook tells them."""

    message: str


Outcome = Done | Wait | Again | Back | GiveUp
StepFunction = Callable[[Job], Outcome]


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


# --- enqueueing and handing out due jobs ------------------------------------------------------


def job_enqueue(job_id: uuid.UUID | str) -> None:
    """Ask a worker to look at the job once the current transaction commits (ids only); with
    the broker down, the due-job loop or the sweep enqueues it (the Job row is the truth)."""
    from wopr.lib.queue import task_enqueue_after_commit

    # No django-q2 row per successful advance (the Job and its events are the record): saving
    # one costs a transaction and a scan of the saved successes, every step.
    task_enqueue_after_commit(
        "provisioning.tasks.job_advance", str(job_id), group="jobs", save=False
    )


def _due(now: datetime) -> Any:
    return Job.objects.filter(job_due(now)).order_by("next_attempt_at")


def jobs_due(now: datetime | None = None, limit: int = 500) -> list[uuid.UUID]:
    """Unfinished jobs whose next attempt is due and whose lease (if any) has expired."""
    return list(_due(now or timezone.now()).values_list("id", flat=True)[:limit])


def jobs_dispatch_due(*, limit: int = 100) -> list[uuid.UUID]:
    """Hand every due job to one worker: reserve it with a short lease (one token per batch)
    and enqueue `job_advance(job, token)` after commit; that worker takes the lease over.

    On PostgreSQL the due rows are locked with SKIP LOCKED, so loops in several worker
    processes claim disjoint batches without waiting on each other; elsewhere (SQLite, one
    writer at a time) the conditional update alone decides. Returns the ids handed out."""
    from wopr.lib.queue import task_enqueue_after_commit

    now, token = timezone.now(), uuid.uuid4()
    # Waiting jobs and retries after a backoff have no message: the loop is their wake-up.
    woken = Q(state=JobState.WAITING) | Q(attempts__gt=0)
    with transaction.atomic():
        due = _due(now).filter(woken | Q(next_attempt_at__lte=now - ENQUEUED_GRACE))
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        Job.objects.filter(job_lease_free(now), pk__in=ids).update(
            lease_token=token, lease_expires_at=now + DISPATCH_LEASE
        )
        claimed = list(
            Job.objects.filter(pk__in=ids, lease_token=token).values_list("id", flat=True)
        )
        for job_id in claimed:
            task_enqueue_after_commit(
                "provisioning.tasks.job_advance", str(job_id), str(token), group="jobs", save=False
            )
    return claimed


# --- advancing -------------------------------------------------------------------------------


def _claim(job_id: uuid.UUID | str, handed: uuid.UUID | str | None) -> uuid.UUID | None:
    """Lease the job if it is due and free (or reserved for us by the due-job loop)."""
    token, now = uuid.uuid4(), timezone.now()
    free = job_lease_free(now) | Q(lease_token=handed) if handed else job_lease_free(now)
    claimed = Job.objects.filter(
        free, pk=job_id, state__in=UNFINISHED_JOB_STATES, next_attempt_at__lte=now
    ).update(
        state=JobState.RUNNING,
        lease_token=token,
        lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        # The first claim starts the job: set here, not by an UPDATE of its own.
        started_at=Coalesce(F("started_at"), Value(now, output_field=DateTimeField())),
    )
    return token if claimed else None


# What a step reads of its Beacon, loaded with the Job in one query (steps use `job.beacon`).
STEP_RELATED = (
    "beacon",
    "beacon__order",
    "beacon__owner",
    "beacon__provider",
    "beacon__bundle",
    "beacon__tier",
)


@dataclass(frozen=True)
class Advanced:
    """What one advance did: the job's Beacon, and whether this step finished the job (None:
    the step's result was discarded, so only the row can tell)."""

    beacon_id: uuid.UUID
    finished: bool | None


def job_advance(*, job_id: uuid.UUID | str, lease: uuid.UUID | str | None = None) -> bool:
    """Run the job's current step if it is due and nobody else holds it. True if it ran.

    `lease` is the token of the due-job loop's reservation, when it sent this message."""
    return job_step_run(job_id=job_id, lease=lease) is not None


def job_step_run(
    *, job_id: uuid.UUID | str, lease: uuid.UUID | str | None = None
) -> Advanced | None:
    """`job_advance`, telling what happened: None when the step did not run."""
    token = _claim(job_id, lease)
    if token is None:
        return None
    job = Job.objects.select_related(*STEP_RELATED).get(pk=job_id)
    return Advanced(job.beacon_id, _record(job, token, _run_step(job)))


def _run_step(job: Job) -> Outcome | ExternalError:
    """The step's outcome, or the error it ended with (an unforeseen one counts as transient)."""
    try:
        return WORKFLOWS[job.kind].function(job.step)(job)
    except ExternalError as error:
        return error
    except Exception as error:  # a bug or an unforeseen failure: bounded retries, then fail
        logger.exception("job %s step %s raised", job.pk, job.step)
        return ExternalError(f"{type(error).__name__}: {error}", transient=True)


def _record(job: Job, token: uuid.UUID, outcome: Outcome | ExternalError) -> bool | None:
    """Save the outcome; whether it finished the job (None: discarded, the job moved on)."""
    if isinstance(outcome, Done):
        return _finish_step(job, token, WORKFLOWS[job.kind], outcome)
    if isinstance(outcome, Wait):
        return _pause(job, token, outcome.until, outcome.message)
    if isinstance(outcome, Again):
        return _pause(job, token, timezone.now(), outcome.message, outcome.remember, again=True)
    if isinstance(outcome, Back):
        return _go_back(job, token, WORKFLOWS[job.kind], outcome)
    if isinstance(outcome, GiveUp):
        return _fail_permanent(job, token, outcome.message, compensate=False)
    if outcome.code == BUDGET_SPENT and Checkpoint(job.checkpoint).budget_waits < BUDGET_WAITS_MAX:
        return _wait_for_budget(job, token, outcome)
    if outcome.transient:
        return _fail_transient(job, token, outcome)
    return _fail_permanent(job, token, str(outcome))


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


RELEASED = {"lease_token": None, "lease_expires_at": None}


def _finish_step(job: Job, token: uuid.UUID, workflow: Workflow, outcome: Done) -> bool | None:
    now = timezone.now()
    checkpoint = Checkpoint(job.checkpoint)
    updates: dict[str, Any] = {
        "checkpoint": checkpoint.with_result(job.step, outcome.checkpoint, now),
        "attempts": 0,
        "next_attempt_at": now,
        **RELEASED,
    }
    following = None if job.step == COMPENSATE else workflow.next_step(job.step)
    if following:
        updates.update(step=following, state=JobState.PENDING)
    elif job.step == COMPENSATE:
        updates.update(state=checkpoint.final_state, finished_at=now)
    else:
        updates.update(state=JobState.COMPLETED, finished_at=now)
    with transaction.atomic():
        if not _guarded(job, token).update(**updates):
            _release(job, token)
            return None
        _event(job, updates["state"], outcome.message or f"{job.step} done")
        if updates["state"] == JobState.COMPLETED:
            _clear_attention_after_retry(job)
        if following:
            job_enqueue(job.pk)
    return not following


def _go_back(job: Job, token: uuid.UUID, workflow: Workflow, outcome: Back) -> bool | None:
    """Move the job back to an earlier step of its workflow (never forward, never from
    compensation: that is a bug, and fails the job as one)."""
    names = [name for name, _ in workflow.steps]
    if job.step not in names or outcome.step not in names[: names.index(job.step)]:
        return _fail_permanent(job, token, f"cannot go back from {job.step} to {outcome.step}")
    with transaction.atomic():
        updated = _guarded(job, token).update(
            step=outcome.step,
            state=JobState.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            callback_completed_at=None,
            checkpoint=Checkpoint(job.checkpoint).with_facts(**outcome.remember),
            **RELEASED,
        )
        if not updated:
            _release(job, token)
            return None
        _event(job, JobState.PENDING, outcome.message, EventLevel.WARNING)
        job_enqueue(job.pk)
    return False


def _clear_attention_after_retry(job: Job) -> None:
    """A staff retry of a failed job succeeded: lower the Order's "needs attention" flag that
    the failure raised, and say so on the timeline.

    Only the flag as it stood when staff retried (same reason): if anything flagged the Order
    since (a payment problem, a new failure), it stays up for a human."""
    reason = Checkpoint(job.checkpoint).retry_attention_reason
    if not reason:
        return
    cleared = Order.objects.filter(
        beacon__pk=job.beacon_id, needs_attention=True, attention_reason=reason
    ).update(needs_attention=False, attention_reason="")
    if cleared:
        _event(
            job,
            JobState.COMPLETED,
            f"retried job succeeded: the order's needs-attention flag is cleared (was: {reason})",
        )


def _pause(
    job: Job,
    token: uuid.UUID,
    until: datetime,
    message: str,
    facts: dict[str, Any] | None = None,
    *,
    again: bool = False,
) -> bool | None:
    """Wait until `until` keeping `facts`; `again`: run the step now (a worker is asked)."""
    with transaction.atomic():
        updated = _guarded(job, token).update(
            state=JobState.PENDING if again else JobState.WAITING,  # pending: a message is sent
            next_attempt_at=until,
            checkpoint=Checkpoint(job.checkpoint).with_facts(**(facts or {})),
            **RELEASED,
        )
        if not updated:
            _release(job, token)
            return None
        callback_at, last = _row_after_pause(job)
        if last != (job.step, message):
            _event(job, JobState.WAITING, message)
        # The Beacon may have called back while this step ran: its own enqueue found the job
        # leased, so look again now instead of at `until`.
        called_back = callback_at != job.callback_completed_at
        if called_back and not again:
            # Our update above moved next_attempt_at back to `until` over the callback's "now".
            Job.objects.filter(pk=job.pk, state=JobState.WAITING).update(
                next_attempt_at=timezone.now()
            )
        if again or called_back:
            job_enqueue(job.pk)
    return False


def _row_after_pause(job: Job) -> tuple[datetime | None, tuple[str, str] | None]:
    """The job's callback time and its last event's (step, message), in one query: a repeated
    wait writes no new event, and a callback that came during the step is seen."""
    events = JobEvent.objects.filter(job=OuterRef("pk")).order_by("-at", "-id")
    row = (
        Job.objects.filter(pk=job.pk)
        .annotate(
            last_step=Subquery(events.values("step")[:1]),
            last_message=Subquery(events.values("message")[:1]),
        )
        .values_list("callback_completed_at", "last_step", "last_message")
        .get()
    )
    return row[0], (None if row[1] is None else (row[1], row[2]))


def _wait_for_budget(job: Job, token: uuid.UUID, error: ExternalError) -> bool | None:
    """The vendor's shared request budget is spent: wait for its reset without counting an
    attempt (a busy vendor must not fail purchases), at most BUDGET_WAITS_MAX times a step."""
    waits = Checkpoint(job.checkpoint).budget_waits + 1
    until = timezone.now() + timedelta(seconds=max(error.retry_after or 0.0, 1.0))
    message = f"waiting for the vendor's request budget ({error})"
    return _pause(job, token, until, message, {BUDGET_WAITS: waits})


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, then 50-100% of it."""
    ceiling = min(
        settings.JOB_BACKOFF_MAX_SECONDS, settings.JOB_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)
    )
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311  (jitter, not cryptography)


def _fail_transient(job: Job, token: uuid.UUID, error: ExternalError) -> bool | None:
    attempt = job.attempts + 1
    # Undoing is retried far longer than doing: giving up there may leave a server running.
    limit = settings.JOB_COMPENSATE_MAX_ATTEMPTS if job.step == COMPENSATE else job.max_attempts
    if attempt >= limit:
        return _fail_permanent(job, token, f"gave up after {attempt} attempts: {error}")
    delay = error.retry_after if error.retry_after is not None else backoff_seconds(attempt)
    with transaction.atomic():
        updated = _guarded(job, token).update(
            state=JobState.PENDING,
            attempts=attempt,
            last_error=str(error)[:2000],
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            **RELEASED,
        )
        if not updated:
            _release(job, token)
            return None
        _event(
            job,
            JobState.PENDING,
            f"attempt {attempt} failed ({error}); retrying in {delay:.0f}s",
            EventLevel.WARNING,
        )
    return False


def _fail_permanent(
    job: Job, token: uuid.UUID, message: str, *, compensate: bool = True
) -> bool | None:
    """Move to compensation, or fail outright when there is nothing (more) to undo or the
    step asked not to (`compensate=False`)."""
    workflow = WORKFLOWS[job.kind]
    undo = compensate and workflow.compensates(job.step)
    if not undo and job.step == COMPENSATE:
        message = f"compensation gave up, a human must finish it: {message}"
    with transaction.atomic():
        if not _guarded(job, token).update(
            **_stopped(job, message, JobState.FAILED, undo), **RELEASED
        ):
            _release(job, token)
            return None
        if undo:
            _event(
                job,
                JobState.PENDING,
                f"{job.step} failed: {message}; compensating",
                EventLevel.ERROR,
            )
            job_enqueue(job.pk)
        else:
            _event(job, JobState.FAILED, message, EventLevel.ERROR)
    if not undo:
        _tell_staff(workflow, job, message)
    return not undo


def _stopped(job: Job, reason: str, final_state: str, undo: bool) -> dict[str, Any]:
    """The row's new fields when the job stops: compensating now (`undo`), or `final_state`."""
    if not undo:
        return {"state": final_state, "last_error": reason[:2000], "finished_at": timezone.now()}
    checkpoint = Checkpoint(job.checkpoint)
    failure = checkpoint.failure_record(job.step, reason, final_state)
    return {
        "step": COMPENSATE,
        "state": JobState.PENDING,
        "attempts": 0,
        "last_error": reason[:2000],
        "checkpoint": checkpoint.with_facts(failure=failure),
        "next_attempt_at": timezone.now(),
    }


def _tell_staff(workflow: Workflow, job: Job, message: str) -> None:
    """Run the workflow's `gave_up` hook; its own failure (mail down) must not hide the job's."""
    if workflow.gave_up is None:
        return
    try:
        workflow.gave_up(job, message)
    except Exception:
        logger.exception("job %s: telling staff that it gave up failed", job.pk)


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
    undo = workflow.compensates(job.step) or (
        final_state == JobState.CANCELLED and workflow.compensate is not None
    )
    with transaction.atomic():
        base = Job.objects.filter(pk=job.pk, state__in=UNFINISHED_JOB_STATES, step=job.step)
        if not base.update(**_stopped(job, reason, final_state, undo)):
            return False
        _event(job, JobState.PENDING if undo else final_state, reason, EventLevel.WARNING)
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
    flagged = (
        Order.objects.filter(beacon__pk=job.beacon_id, needs_attention=True)
        .values_list("attention_reason", flat=True)
        .first()
    )
    retry = {
        "by": str(requested_by or "staff"),
        "attention_reason": flagged or "",
        "at": timezone.now().isoformat(),
    }
    kept = Checkpoint(job.checkpoint).kept_on_retry(retry=retry)
    try:
        return _retry(job, timezone.now(), kept, requested_by)
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
