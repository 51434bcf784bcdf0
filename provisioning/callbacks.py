"""The Beacon's per-job callback token and the record of what a Beacon reports.

The token is derived from SECRET_KEY and a random per-job salt, so a retried step can rebuild
the same user data without the database ever holding a usable token: only its SHA-256 is
stored, and it is compared in constant time. It stops working when the job finishes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from provisioning.checkpoint import Checkpoint
from provisioning.jobs import job_abort, job_enqueue
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    EventLevel,
    InstallStage,
    Job,
    JobEvent,
    JobState,
)
from wopr.lib.redact import redact

# The install protocol (README, "Install progress protocol"): in this order, `installing` once per
# module; `failed` at any point.
CALLBACK_STATUSES = ("booted", "installing", "configuring_sso", "complete", "failed")
MESSAGE_MAX_CHARS = 1000
LOG_TAIL_MAX_CHARS = 16000
# How much of a failed install's log tail the job's timeline keeps (its last characters).
LOG_TAIL_KEPT_CHARS = 4000


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


@dataclass(frozen=True)
class StageReport:
    """One report of a Beacon's installer (validated by the API's serializer)."""

    status: str
    message: str = ""
    module: str = ""
    index: int | None = None
    total: int | None = None
    log_tail: str = ""

    @property
    def stage(self) -> str:
        """The idempotency key within a job's server round: the status, or
        `installing:<module>`."""
        return f"installing:{self.module}" if self.status == "installing" else self.status

    def event_message(self) -> str:
        """The timeline's line: secrets redacted, a failed install's log tail truncated."""
        text = f"Beacon: {self.status}"
        if self.status == "installing":
            text += f" {self.module} ({self.index}/{self.total})"
        if self.message:
            text += f": {self.message}"
        if self.log_tail:
            text += f"\n--- install log (last lines) ---\n{self.log_tail[-LOG_TAIL_KEPT_CHARS:]}"
        return redact(text)


def job_callback_record(*, job: Job, status: str, wake: bool = True, **fields: object) -> bool:
    """Record one report of the Beacon (`fields`: message, module, index, total, log_tail);
    True when it is new, False for a repeat (nothing new is recorded). See
    `install_stages_record`."""
    if status not in CALLBACK_STATUSES:
        raise ValueError(f"unknown callback status {status!r}")
    report = StageReport(status=status, **_without_token(job, fields))  # type: ignore[arg-type]
    return install_stages_record(job=job, reports=[report], wake=wake)[0]


def _without_token(job: Job, fields: dict[str, object]) -> dict[str, object]:
    """The report's texts with the job's own token blanked: an installer that echoes its
    bootstrap.json (or runs `curl -v`) into its log must not store a usable token with us."""
    if not job.callback_token_salt:
        return fields
    token = job_callback_token(job)
    return {
        key: value.replace(token, "[redacted]") if isinstance(value, str) else value
        for key, value in fields.items()
    }


def install_stages_record(
    *, job: Job, reports: Sequence[StageReport], wake: bool = True
) -> list[bool]:
    """Record reports once per (job, server round, stage), each new one with a line on the
    job's timeline; returns, per report, whether it was new. `complete` ends the wait,
    `failed` fails the job; both act on a repeat too (each is idempotent itself), so a job
    that staff retried hears its new server.

    `wake=False`: no worker is asked to advance the job (the caller is the job's own step,
    which holds its lease and ends the wait itself). New stages cost one transaction of two
    inserts, however many (the fake Beacon records several at once); no read first: the
    unique constraint finds a repeat."""
    round_ = Checkpoint(job.checkpoint).install_round
    fresh = list({report.stage: report for report in reports}.values())
    new = _stages_insert_all(job, round_, fresh)
    for report in reports:
        _act(job, report, wake)
    return [report.stage in new for report in reports]


def _stages_insert_all(job: Job, round_: int, fresh: list[StageReport]) -> set[str]:
    """Insert every fresh stage in one transaction; the stage keys this call recorded."""
    try:
        with transaction.atomic():
            _stages_insert(job, round_, fresh)
        return {report.stage for report in fresh}
    except IntegrityError:  # a repeat, or some were recorded before: the others one at a time
        if len(fresh) == 1:
            return set()
        recorded = set(job.install_stages.filter(round=round_).values_list("stage", flat=True))
        return {
            report.stage
            for report in fresh
            if report.stage not in recorded and _stages_insert_one(job, round_, report)
        }


def _stages_insert(job: Job, round_: int, reports: Sequence[StageReport]) -> None:
    """The stage rows and their timeline lines (the caller holds the transaction)."""
    InstallStage.objects.bulk_create(_stage_row(job, round_, report) for report in reports)
    JobEvent.objects.bulk_create(
        JobEvent(
            job=job,
            step=job.step,
            state=job.state,
            level=EventLevel.ERROR if report.status == "failed" else EventLevel.INFO,
            message=report.event_message(),
        )
        for report in reports
    )


def _stages_insert_one(job: Job, round_: int, report: StageReport) -> bool:
    """Whether this report's stage was new (and is now recorded)."""
    try:
        with transaction.atomic():
            _stages_insert(job, round_, [report])
    except IntegrityError:
        return False
    return True


def _stage_row(job: Job, round_: int, report: StageReport) -> InstallStage:
    return InstallStage(
        job=job,
        round=round_,
        stage=report.stage,
        module=report.module,
        index=report.index,
        total=report.total,
        message=redact(report.message),
    )


def _act(job: Job, report: StageReport, wake: bool) -> None:
    """What a report does to the job beyond the record."""
    if report.status == "complete":
        now = timezone.now()
        updated = Job.objects.filter(
            pk=job.pk, state__in=UNFINISHED_JOB_STATES, callback_completed_at__isnull=True
        ).update(callback_completed_at=now, next_attempt_at=now)
        if updated:
            job.callback_completed_at = now
            if wake:
                job_enqueue(job.pk)
    elif report.status == "failed":
        reason = redact(f"the Beacon reported a failure: {report.message}")[:MESSAGE_MAX_CHARS]
        transaction.on_commit(
            lambda: job_abort(job=job, reason=reason, final_state=JobState.FAILED)
        )
