"""No charge without a Beacon: where the provision workflow opens and withdraws an order's
remedy (billing.OrderRemedy). The Stripe calls themselves are billing's (billing.remedy), asked
for by task name: provisioning imports no billing flow.

The remedy row is the claim: one per order (a unique order), so a compensation that runs again,
a retried job that fails again or a redelivered task finds the row and starts nothing twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Order, OrderRemedy, RemedyPolicy, RemedyState
from wopr.lib.queue import task_enqueue_after_commit

RUN_TASK = "billing.tasks.order_remedy_run"


def remedy_policy(*, staff_only: bool) -> str:
    """FAILED_ORDER_POLICY, or `staff` whatever it says when a human must look first."""
    return RemedyPolicy.STAFF if staff_only else str(settings.FAILED_ORDER_POLICY)


def order_remedy_open(
    *, order_id: uuid.UUID | str, reason: str, staff_only: bool = False
) -> OrderRemedy:
    """The order's remedy, created once: policy `refund` starts the refund and cancellation
    (REFUNDING, then a task after commit; ids only), policy `staff` queues it (QUEUED).

    `staff_only`: queue it whatever the policy (a job that gave up may have left a working or
    half-made Beacon: staff decide between finishing it and refunding). A remedy withdrawn
    because the Beacon was made after all is opened again when a later attempt fails."""
    policy = remedy_policy(staff_only=staff_only)
    state = RemedyState.REFUNDING if policy == RemedyPolicy.REFUND else RemedyState.QUEUED
    fields = {
        "policy": policy,
        "state": state,
        "reason": reason[:2000],
        "done_at": None,
        "last_error": "",
    }
    with transaction.atomic():
        started = _create(order_id, fields) or _reopen(order_id, fields)
        remedy = OrderRemedy.objects.get(order_id=order_id)
        if started and state == RemedyState.REFUNDING:
            task_enqueue_after_commit(RUN_TASK, remedy.pk, group="billing")
    return remedy


def _create(order_id: uuid.UUID | str, fields: dict[str, Any]) -> bool:
    """Insert the order's remedy; False when one exists (the unique order decides a race)."""
    try:
        with transaction.atomic():
            OrderRemedy.objects.create(order_id=order_id, **fields)
    except IntegrityError:
        return False
    return True


def _reopen(order_id: uuid.UUID | str, fields: dict[str, Any]) -> bool:
    """A withdrawn remedy whose Beacon failed again: open it again (conditional: once)."""
    reopened = OrderRemedy.objects.filter(order_id=order_id, state=RemedyState.WITHDRAWN)
    return bool(reopened.update(**fields, decided_by=None))


def order_remedy_withdraw(*, order_id: uuid.UUID | str) -> bool:
    """The Beacon was made after all (a staff retry succeeded): a remedy nobody carried out
    (queued, or refused by Stripe before it moved any money) is withdrawn. True if it was."""
    untouched = Q(state=RemedyState.QUEUED) | Q(
        state=RemedyState.FAILED, refunded_at__isnull=True, subscription_cancelled_at__isnull=True
    )
    withdrawn = OrderRemedy.objects.filter(untouched, order_id=order_id).update(
        state=RemedyState.WITHDRAWN, done_at=timezone.now()
    )
    return bool(withdrawn)


def remedy_email_context(order: Order) -> dict[str, Any]:
    """What the customer's failure e-mail says about their money: `refunding` (the policy
    refunds at once) or the staff promise (`staff_hours`)."""
    remedy = OrderRemedy.objects.filter(order=order).first()
    refunding = remedy is not None and remedy.policy == RemedyPolicy.REFUND
    return {"remedy": remedy, "refunding": refunding, "staff_hours": settings.FAILED_ORDER_HOURS}
