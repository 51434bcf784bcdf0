"""django-q2 entry points of billing: the customer e-mails about money. Arguments are ids only."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from django_q.tasks import async_task

from billing.models import PaymentFailure
from billing.remedy import order_remedy_run as _order_remedy_run
from billing.remedy import remedies_sweep as _remedies_sweep
from billing.subscriptions import payment_failure_notify as _payment_failure_notify
from billing.subscriptions import trial_ending_notify as _trial_ending_notify

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 500
DUNNING_RETRY_FOR = timedelta(days=3)


def payment_failure_notify(payment_failure_id: int) -> str:
    """The dunning e-mail for one failed invoice (sent once)."""
    return _payment_failure_notify(payment_failure_id=payment_failure_id)


def trial_ending_notify(order_id: str, trial_end: int) -> str:
    """The trial-ending reminder (sent once per trial end)."""
    return _trial_ending_notify(order_id=order_id, trial_end=trial_end)


def welcome_resend(beacon_id: str, key: str) -> str:
    """Kept for messages queued under this name before the resend moved to provisioning
    (provisioning.welcome.welcome_resend_queue queues provisioning.tasks.welcome_resend):
    remove once no such message can be waiting."""
    from provisioning.tasks import welcome_resend as _welcome_resend

    return _welcome_resend(beacon_id, key)


def order_remedy_run(remedy_id: int) -> str:
    """Refund and cancel for an order that got no Beacon (each call once; see billing.remedy)."""
    return _order_remedy_run(remedy_id=remedy_id)


def remedies_sweep() -> int:
    """Ask again for remedies under way and unsent "refunded" e-mails (with the job sweep)."""
    return _remedies_sweep()


def dunning_sweep() -> int:
    """Enqueue every dunning e-mail that did not go out (a lost task, mail down), for as long
    as it helps. Scheduled with the job sweep (JOB_SWEEP_MINUTES); returns how many."""
    unsent = PaymentFailure.objects.filter(
        order__isnull=False,
        paid_at__isnull=True,
        notified_at__isnull=True,
        created_at__gte=timezone.now() - DUNNING_RETRY_FOR,
    )
    failure_ids = list(unsent.values_list("pk", flat=True)[:SWEEP_LIMIT])
    for failure_id in failure_ids:
        async_task("billing.tasks.payment_failure_notify", failure_id, group="emails")
    if failure_ids:
        logger.info("dunning sweep enqueued %d e-mail(s)", len(failure_ids))
    return len(failure_ids)
