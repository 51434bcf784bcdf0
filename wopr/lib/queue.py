"""Enqueueing django-q2 tasks after commit, surviving a broker outage.

The rows are the truth (a Job, a Beacon marked for converging, an unsent dunning e-mail) and the
sweep (`provisioning.tasks.jobs_sweep`, every JOB_SWEEP_MINUTES) enqueues whatever is due. So a
broker that is down when a transaction commits loses nothing: the message is logged and skipped,
and the request that stored the work (a Stripe webhook) is still acknowledged instead of
answering 500 and making Stripe deliver an event that is already stored.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from redis.exceptions import RedisError

from wopr.lib.redact import redact

logger = logging.getLogger(__name__)

# What a broker outage raises: redis-py's errors, and socket errors from below it.
BROKER_ERRORS = (RedisError, OSError)


def task_enqueue(func: str, *args: Any, group: str, save: bool = True) -> str | None:
    """Enqueue `func(*args)` (ids only, never secrets); None when the broker is unreachable.
    `save=False`: django-q2 keeps no row for a success (failures are still saved)."""
    from django_q.tasks import async_task

    try:
        return async_task(func, *args, group=group, save=save)
    except BROKER_ERRORS as exc:
        logger.warning(
            "could not enqueue %s (%s: %s); the sweep will enqueue it",
            func,
            type(exc).__name__,
            redact(str(exc)),
        )
        return None


def task_enqueue_after_commit(func: str, *args: Any, group: str, save: bool = True) -> None:
    """`task_enqueue` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: task_enqueue(func, *args, group=group, save=save))
