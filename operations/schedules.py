"""The periodic work, each schedule declared once here from its setting.

django-q2 fires what its Schedule table holds. `schedules_sync` writes every schedule below
into that table from its setting after each `migrate` (a post_migrate handler, see
provisioning.apps), and `make run` and every container role that serves (web, worker) migrate
at each start: so a changed setting takes effect at the next start. It is idempotent.

Settings win. A start rewrites each schedule's function, interval and repeats, so an edit or a
pause made in the admin lasts until the next start; to change or stop one for good, change its
setting (0 minutes removes the provider health and reconcile schedules; the job sweep is the
safety net for lost messages and waiting steps, and cannot be switched off).

Waiting jobs are not django-q2 schedules: each qcluster's due-job loop (provisioning.wakeups)
looks every JOB_DUE_POLL_SECONDS at the job rows' next_attempt_at. Per-job `wake-job-<id>` rows
of older versions are removed here. The time of the
next run is kept when the interval is unchanged (restarts do not push it back), and brought
forward when a shorter interval makes it come sooner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

MINUTES = "I"  # django_q.models.Schedule.MINUTES (the historical model has no constants)


@dataclass(frozen=True)
class Periodic:
    """One schedule: its name in django-q2, the task it runs, and the setting holding its
    interval in minutes (the smallest value allowed: 0 means it may be switched off)."""

    name: str
    func: str
    setting: str
    minimum: int


PERIODIC = (
    Periodic("wopr-jobs-sweep", "provisioning.tasks.jobs_sweep", "JOB_SWEEP_MINUTES", 1),
    Periodic(
        "wopr-provider-health",
        "operations.tasks.provider_health_sweep",
        "PROVIDER_HEALTH_SWEEP_MINUTES",
        0,
    ),
    Periodic("wopr-reconcile", "operations.tasks.reconcile_sweep", "RECONCILE_SWEEP_MINUTES", 0),
    # Starts each active Beacon's daily snapshot job (those with today's are skipped) and
    # prunes expired snapshots of idle Beacons; hourly is plenty.
    Periodic("wopr-backups-daily", "backups.tasks.backups_daily", "BACKUPS_DAILY_MINUTES", 0),
)
# The due-job loop's interval (seconds): at most 1, so a step waiting N s runs within N + 1 s.
DUE_POLL_SETTING, DUE_POLL_RANGE = "JOB_DUE_POLL_SECONDS", (0.05, 1.0)


def schedules_sync(*, using: str = "default", model: Any = None) -> dict[str, str]:
    """Create, update or remove each schedule to match its setting; returns what was done per
    schedule name (created, updated, unchanged, removed, absent). `model` is django-q2's
    Schedule (a migration state's version of it after `migrate`)."""
    if model is None:
        from django_q.models import Schedule as model

    done = {}
    # Several replicas migrate at once: the row locks make them take turns, each finding the
    # work done by the one before.
    with transaction.atomic(using=using):
        for periodic in PERIODIC:
            minutes = int(getattr(settings, periodic.setting))
            rows = model.objects.using(using).select_for_update().filter(name=periodic.name)
            if minutes <= 0 and periodic.minimum == 0:
                done[periodic.name] = "removed" if rows.delete()[0] else "absent"
                continue
            row = rows.order_by("pk").first()
            done[periodic.name] = _upsert(model, row, periodic, max(minutes, 1), using)
        model.objects.using(using).filter(name__startswith="wake-job-").delete()
    changed = {name: outcome for name, outcome in done.items() if outcome != "unchanged"}
    if changed:
        logger.info("schedules: %s", ", ".join(f"{k} {v}" for k, v in changed.items()))
    return done


def _upsert(model: Any, row: Any, periodic: Periodic, minutes: int, using: str) -> str:
    now = timezone.now()
    wanted = {
        "func": periodic.func,
        "schedule_type": MINUTES,
        "minutes": minutes,
        "repeats": -1,
        "cron": None,
    }
    if row is None:
        model.objects.using(using).create(name=periodic.name, next_run=now, **wanted)
        return "created"
    soonest = now + timedelta(minutes=minutes)
    if all(getattr(row, field) == value for field, value in wanted.items()) and (
        row.next_run is not None and row.next_run <= soonest
    ):
        return "unchanged"
    for field, value in wanted.items():
        setattr(row, field, value)
    if row.next_run is None or row.next_run > soonest:
        row.next_run = soonest
    row.save(using=using)
    return "updated"


def schedules_post_migrate(
    sender: Any, *, using: str = "default", apps: Any = None, **kwargs: Any
) -> None:
    """post_migrate receiver (connected once, for django-q2's app). Does nothing when
    django-q2's tables are not there (a migrate that stopped short of them)."""
    try:
        model = apps.get_model("django_q", "Schedule") if apps is not None else None
    except LookupError:
        return
    schedules_sync(using=using, model=model)


@register("wopr")
def check_schedule_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Each interval is a whole number of minutes, at least its minimum."""
    errors: list[CheckMessage] = []
    for periodic in PERIODIC:
        value = getattr(settings, periodic.setting, None)
        if not isinstance(value, int) or value < periodic.minimum:
            allowed = "1 or more" if periodic.minimum else "0 (off) or more"
            errors.append(
                Error(
                    f"{periodic.setting} must be a whole number of minutes, {allowed}.",
                    id="wopr.E090",
                    obj=periodic.name,
                )
            )
    low, high = DUE_POLL_RANGE
    poll = getattr(settings, DUE_POLL_SETTING, None)
    if not isinstance(poll, int | float) or not low <= poll <= high:
        errors.append(
            Error(f"{DUE_POLL_SETTING} must be between {low} and {high} seconds.", id="wopr.E091")
        )
    return errors
