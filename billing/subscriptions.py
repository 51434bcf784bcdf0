"""Life after purchase: Stripe's view of each subscription and its invoices (SPEC §4).

Receivers call the `*_record` functions inside the webhook's transaction. Each keeps the newest
fact Stripe gave us, comparing Stripe's own event times (never arrival order), and asks the
Beacon to converge after commit (provisioning.services.beacon_converge). The e-mails go out
from tasks, outside any transaction, once per cause.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from djstripe.models import Event

from billing.models import (
    STRIPE_EVENT_OBJECT_ID,
    Order,
    OrderStatus,
    PaymentFailure,
    Price,
    StripeMode,
    SubscriptionStatus,
)
from billing.tier_follow import order_tier_follow
from documents.emails import email_send_once
from provisioning.models import Beacon, BeaconStatus
from provisioning.services import beacon_converge_request

logger = logging.getLogger(__name__)

# When two events carry the same Stripe second, the later state in a subscription's life wins.
STATUS_ORDER = ("", "incomplete", "trialing", "active", "past_due", "unpaid", "paused")
STATUS_ORDER += ("incomplete_expired", "canceled")
STATUS_PRECEDENCE = {status: rank for rank, status in enumerate(STATUS_ORDER)}
ENDED_STATUSES = {SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED}
# Event types whose object is a subscription: replayed for an Order that learns its subscription
# id after them (the checkout event arrived late).
SUBSCRIPTION_EVENT_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
)
ZERO_DECIMAL_CURRENCIES = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf"}
ZERO_DECIMAL_CURRENCIES |= {"ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


# --- reading Stripe objects ----------------------------------------------------------------------


def stripe_time(value: Any) -> datetime | None:
    """A Stripe timestamp (seconds since the epoch) as an aware datetime."""
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def stripe_id(value: Any) -> str:
    """The id of a Stripe reference, expanded (a dict) or not (a string)."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def money_display(cents: int, currency: str) -> str:
    """An amount as a customer reads it: `$15.99`, `€7.00`, `¥1,500`, `12.50 CHF`."""
    code = (currency or "usd").lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        number = f"{Decimal(cents):,.0f}"
    else:
        number = f"{Decimal(cents) / 100:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{number}" if symbol else f"{number} {code.upper()}"


def invoice_subscription_id(invoice: dict[str, Any]) -> str:
    """The invoice's subscription (top level before API 2025-03-31, under `parent` since)."""
    direct = stripe_id(invoice.get("subscription"))
    if direct:
        return direct
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return stripe_id(details.get("subscription"))


def subscription_period_end(subscription: dict[str, Any]) -> datetime | None:
    """current_period_end (top level before API 2025-03-31, on each item since)."""
    if subscription.get("current_period_end"):
        return stripe_time(subscription["current_period_end"])
    items = (subscription.get("items") or {}).get("data") or []
    ends = [item["current_period_end"] for item in items if item.get("current_period_end")]
    return stripe_time(max(ends)) if ends else None


def _stripe_online(livemode: bool) -> bool:
    key = settings.STRIPE_LIVE_SECRET_KEY if livemode else settings.STRIPE_TEST_SECRET_KEY
    return bool(key)


def subscription_synced(subscription_id: str, *, livemode: bool) -> dict[str, Any] | None:
    """dj-stripe's synced copy of the subscription when Stripe is reachable: online, dj-stripe
    re-fetches it from Stripe before our receivers run, so it is Stripe's current view."""
    if not _stripe_online(livemode):
        return None
    from djstripe.models import Subscription

    row = Subscription.objects.filter(id=subscription_id).only("stripe_data").first()
    return dict(row.stripe_data) if row is not None and row.stripe_data else None


def events_about(object_id: str) -> QuerySet[Event]:
    """dj-stripe's stored events whose object is `object_id`, found through the index on that
    expression (billing migration 0005): never a scan of the whole, ever-growing event log."""
    return Event.objects.alias(object_id=STRIPE_EVENT_OBJECT_ID).filter(object_id=object_id)


def invoice_paid_at(invoice_id: str, *, livemode: bool) -> datetime | None:
    """When Stripe told us the invoice was paid (dj-stripe's synced invoice online; its
    `invoice.paid` event in dj-stripe's event log in any mode), or None."""
    from djstripe.models import Invoice

    if _stripe_online(livemode):
        row = Invoice.objects.filter(id=invoice_id).only("stripe_data").first()
        data = row.stripe_data if row is not None else {}
        if data.get("status") == "paid":
            paid = (data.get("status_transitions") or {}).get("paid_at")
            return stripe_time(paid) or timezone.now()
    event = (
        events_about(invoice_id)
        .filter(type="invoice.paid")
        .order_by("created")
        .only("created")
        .first()
    )
    return event.created if event is not None else None


# --- subscriptions ---------------------------------------------------------------------------


def _is_newer(order: Order, status: str, at: datetime) -> bool:
    """Whether (status, at) is newer than what the Order holds. A canceled subscription never
    comes back in Stripe, so nothing overrides it."""
    if order.subscription_status == SubscriptionStatus.CANCELED:
        return False
    held = order.subscription_status_at
    if held is None or at != held:
        return held is None or at > held
    return STATUS_PRECEDENCE.get(status, 0) > STATUS_PRECEDENCE.get(order.subscription_status, 0)


def _subscription_updates(
    order: Order, subscription: dict[str, Any], status: str, at: datetime
) -> dict[str, Any]:
    """The Order's fields that change if `status` as of `at` is newer than what it holds
    ({} when it is not)."""
    if status not in STATUS_PRECEDENCE or not _is_newer(order, status, at):
        return {}
    updates: dict[str, Any] = {"subscription_status": status, "subscription_status_at": at}
    if "cancel_at_period_end" in subscription:  # the customer cancelled (or took it back)
        updates["subscription_cancel_at_period_end"] = bool(subscription["cancel_at_period_end"])
    period_end = subscription_period_end(subscription)
    if period_end:
        updates["subscription_period_end"] = period_end
    if status in ENDED_STATUSES:
        updates["subscription_ended_at"] = stripe_time(subscription.get("ended_at")) or at
        if order.status == OrderStatus.PAID:
            updates["status"] = OrderStatus.CANCELLED
    return updates


def _subscription_apply(
    order: Order, subscription: dict[str, Any], status: str, at: datetime
) -> bool:
    """Store `status` as of `at` if it is newer than what the Order holds; True if it was."""
    updates = _subscription_updates(order, subscription, status, at)
    if not updates:
        return False
    Order.objects.filter(pk=order.pk).update(**updates)
    order.refresh_from_db()
    return True


def subscription_answer_record(*, order: Order, subscription: dict[str, Any]) -> bool:
    """Record the subscription Stripe answered our own update with (self-service): Stripe's
    current view as of now, so an event from before the update, arriving late, cannot undo it."""
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        status = str(subscription.get("status") or "")
        changed = _subscription_apply(locked, subscription, status, timezone.now())
    if changed:
        _converge_order_beacon(locked)
    return changed


def _order_for_subscription(subscription_id: str) -> Order | None:
    if not subscription_id:
        return None
    return Order.objects.select_for_update().filter(stripe_subscription_id=subscription_id).first()


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _resubscribed_order(subscription: dict[str, Any]) -> Order | None:
    """The Order a new, paying subscription revives.

    Its metadata names the Order (`wopr_order_id`) or the Beacon (`wopr_beacon_id`) whose
    subscription ended and whose Beacon is not decommissioned yet. The Order moves to the new
    subscription; the old id is kept in its metadata.
    """
    if subscription.get("status") not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        return None
    metadata = subscription.get("metadata") or {}
    order_id = _uuid(metadata.get("wopr_order_id"))
    beacon_id = _uuid(metadata.get("wopr_beacon_id"))
    candidates = Order.objects.select_for_update(of=("self",)).filter(
        subscription_status__in=ENDED_STATUSES,
        beacon__status__in=[
            BeaconStatus.ACTIVE,
            BeaconStatus.SUSPENDED,
            BeaconStatus.DECOMMISSIONING,
        ],
    )
    if order_id is not None:
        order = candidates.filter(pk=order_id).first()
    elif beacon_id is not None:
        order = candidates.filter(beacon__pk=beacon_id).first()
    else:
        order = None
    if order is None:
        return None
    previous = [*order.stripe_metadata.get("previous_subscriptions", [])]
    previous.append(order.stripe_subscription_id)
    Order.objects.filter(pk=order.pk).update(
        stripe_subscription_id=subscription["id"],
        subscription_status="",
        subscription_status_at=None,
        subscription_ended_at=None,
        status=OrderStatus.PAID,
        stripe_metadata={**order.stripe_metadata, "previous_subscriptions": previous},
    )
    order.refresh_from_db()
    logger.info("order %s resubscribed with %s", order.pk, subscription["id"])
    return order


def _note_plan_change(order: Order, subscription: dict[str, Any]) -> None:
    """A new bundle or tier is recorded for staff: a resize is done by hand (SPEC §4)."""
    items = (subscription.get("items") or {}).get("data") or []
    price_ids = [stripe_id(item.get("price")) for item in items]
    price = (
        Price.objects.select_related("bundle", "tier")
        .filter(stripe_price_id__in=[price_id for price_id in price_ids if price_id])
        .first()
    )
    if price is None or (price.bundle_id, price.tier_id) == (order.bundle_id, order.tier_id):
        return
    reason = f"subscription changed to {price}: resize the Beacon in the admin"
    if order.attention_reason != reason:
        Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reason=reason)


def _converge_order_beacon(order: Order) -> None:
    beacon_id = Beacon.objects.filter(order=order).values_list("pk", flat=True).first()
    if beacon_id is not None:
        beacon_converge_request(beacon_id=beacon_id)


def subscription_event_record(
    *, subscription: dict[str, Any], deleted: bool, event_created: datetime, livemode: bool
) -> Order | None:
    """Record what a customer.subscription.* event says about its subscription.

    Online, dj-stripe's freshly synced copy is Stripe's current view and wins; offline, the
    event's object counts only if the event is newer than the status we hold. An event for a
    subscription no Order knows yet stays in dj-stripe's event log and is replayed when the
    checkout arrives (`order_subscription_catch_up`).
    """
    synced = subscription_synced(subscription["id"], livemode=livemode)
    view, at = (synced, timezone.now()) if synced else (subscription, event_created)
    status = str(view.get("status") or "")
    if deleted and not synced:
        status = SubscriptionStatus.CANCELED
    order = _order_for_subscription(subscription["id"]) or _resubscribed_order(view)
    if order is None:
        logger.info("subscription %s: no order yet, kept for its checkout", subscription["id"])
        return None
    changed = _subscription_apply(order, view, status, at)
    if changed:  # only a view newer than the Order's: a late or repeated event moves no tier
        order_tier_follow(order=order, subscription=view)
    _note_plan_change(order, view)
    if changed:
        _converge_order_beacon(order)
    return order


def _early_views(
    subscription_id: str, livemode: bool
) -> list[tuple[dict[str, Any], str, datetime]]:
    """What Stripe said about the subscription before its Order knew it, oldest first, as
    (subscription, status, at): its stored events, then dj-stripe's synced copy online."""
    events = (
        events_about(subscription_id)
        .filter(type__in=SUBSCRIPTION_EVENT_TYPES)
        .only("type", "data", "created")
        .order_by("created", "djstripe_id")
    )
    views = []
    for event in events:
        view = event.data["object"]
        deleted = event.type == "customer.subscription.deleted"
        status = SubscriptionStatus.CANCELED if deleted else str(view.get("status") or "")
        views.append((view, status, event.created))
    synced = subscription_synced(subscription_id, livemode=livemode)
    if synced:
        views.append((synced, str(synced.get("status") or ""), timezone.now()))
    return views


def order_subscription_early(*, order: Order) -> bool:
    """Set on `order` (in memory, for its caller to save) what Stripe said about its
    subscription before the checkout event told us which Order it belongs to: a deletion that
    beat the checkout leaves the Order cancelled, so no Beacon is built. True if it said any."""
    if not order.stripe_subscription_id:
        return False
    live = order.stripe_mode == StripeMode.LIVE
    changed = False
    for view, status, at in _early_views(order.stripe_subscription_id, live):
        for field, value in _subscription_updates(order, view, status, at).items():
            setattr(order, field, value)
            changed = True
    return changed


def order_payment_failures_attach(*, order: Order) -> bool:
    """Attach the invoice failures that beat the checkout to its Order and queue their dunning
    e-mails (sent once each); True if there were any."""
    subscription_id = order.stripe_subscription_id
    if not subscription_id:
        return False
    orphans = PaymentFailure.objects.filter(
        stripe_subscription_id=subscription_id, order__isnull=True
    )
    if not orphans.update(order=order):
        return False
    unnotified = PaymentFailure.objects.filter(
        order=order, paid_at__isnull=True, notified_at__isnull=True
    )
    for failure_id in unnotified.values_list("pk", flat=True):
        _task_after_commit("billing.tasks.payment_failure_notify", failure_id)
    return True


def order_subscription_catch_up(*, order: Order) -> None:
    """Apply what Stripe said about the Order's subscription before the Order knew its id
    (subscription and invoice events that beat the checkout event), then converge. For an
    Order whose Beacon already exists (a later event of the same session)."""
    order.refresh_from_db()
    if not order.stripe_subscription_id:
        return
    order_payment_failures_attach(order=order)
    live = order.stripe_mode == StripeMode.LIVE
    for view, status, at in _early_views(order.stripe_subscription_id, live):
        _subscription_apply(order, view, status, at)
    _converge_order_beacon(order)


def trial_ending_record(*, subscription: dict[str, Any]) -> None:
    """Queue the trial-ending reminder (sent once per subscription and trial end)."""
    order = Order.objects.filter(stripe_subscription_id=subscription["id"]).first()
    trial_end = subscription.get("trial_end")
    if order is None or not trial_end:
        return
    _task_after_commit("billing.tasks.trial_ending_notify", str(order.pk), int(trial_end))


def _task_after_commit(task: str, *args: Any) -> None:
    from wopr.lib.queue import task_enqueue_after_commit

    task_enqueue_after_commit(task, *args, group="emails")


# --- invoices --------------------------------------------------------------------------------


def invoice_payment_failed_record(
    *, invoice: dict[str, Any], event_created: datetime, livemode: bool
) -> PaymentFailure:
    """One PaymentFailure per invoice, holding the newest attempt Stripe reported; the dunning
    e-mail is queued after commit (sent once per invoice) and the Beacon re-evaluated."""
    subscription_id = invoice_subscription_id(invoice)
    order = _order_for_subscription(subscription_id)
    try:
        with transaction.atomic():
            failure, _ = PaymentFailure.objects.get_or_create(
                stripe_invoice_id=invoice["id"],
                defaults={"stripe_subscription_id": subscription_id, "order": order},
            )
    except IntegrityError:  # a concurrent delivery of another event for this invoice won
        failure = PaymentFailure.objects.get(stripe_invoice_id=invoice["id"])
    failure = PaymentFailure.objects.select_for_update().get(pk=failure.pk)
    attempts = int(invoice.get("attempt_count") or 1)
    updates: dict[str, Any] = {"attempt_count": max(failure.attempt_count, attempts)}
    if failure.failed_at is None or event_created >= failure.failed_at:
        updates.update(
            failed_at=event_created,
            next_payment_attempt=stripe_time(invoice.get("next_payment_attempt")),
            amount_due_cents=int(invoice.get("amount_due") or 0),
            currency=str(invoice.get("currency") or "usd")[:3],
            hosted_invoice_url=str(invoice.get("hosted_invoice_url") or "")[:500],
        )
    if failure.order_id is None and order is not None:
        updates["order"] = order
    if failure.paid_at is None:
        # invoice.paid may have beaten this (older) failure: a paid invoice suspends nothing.
        updates["paid_at"] = invoice_paid_at(invoice["id"], livemode=livemode)
    PaymentFailure.objects.filter(pk=failure.pk).update(**updates)
    failure.refresh_from_db()
    if failure.paid_at is None and failure.notified_at is None:
        _task_after_commit("billing.tasks.payment_failure_notify", failure.pk)
    if order is not None:
        _converge_order_beacon(order)
    return failure


def invoice_paid_record(*, invoice: dict[str, Any], event_created: datetime) -> None:
    """Settle the invoice's PaymentFailure. A past-due or unpaid subscription whose failed
    invoices are all paid is active again (Stripe's rule; the subscription.updated saying so
    may come before or after this, and the newest wins)."""
    PaymentFailure.objects.filter(stripe_invoice_id=invoice["id"], paid_at__isnull=True).update(
        paid_at=event_created
    )
    order = _order_for_subscription(invoice_subscription_id(invoice))
    if order is None:
        return
    still_open = PaymentFailure.objects.filter(
        stripe_subscription_id=order.stripe_subscription_id, paid_at__isnull=True
    ).exists()
    overdue = (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID)
    if order.subscription_status in overdue and not still_open:
        _subscription_apply(order, {}, SubscriptionStatus.ACTIVE, event_created)
    _converge_order_beacon(order)


# --- the e-mails (called from tasks, outside any transaction) ----------------------------------


def payment_failure_notify(*, payment_failure_id: int) -> str:
    """The dunning e-mail for one invoice, at most once: the amount due and the next attempt."""
    failure = (
        PaymentFailure.objects.select_related("order", "order__beacon")
        .filter(pk=payment_failure_id)
        .first()
    )
    if failure is None or failure.order is None:
        return "no order to tell yet"
    if not failure.order.email:
        PaymentFailure.objects.filter(pk=failure.pk).update(notified_at=timezone.now())
        return "the order has no e-mail address"
    if failure.paid_at is not None:
        return "invoice already paid"
    if failure.order.subscription_status in ENDED_STATUSES:
        return "the subscription has ended; the cancellation e-mail says what happens"
    order = failure.order
    beacon = getattr(order, "beacon", None)
    message = email_send_once(
        key=f"payment_failed:{failure.stripe_invoice_id}",
        template="payment_failed",
        to=order.email,
        context={
            "order": order,
            "beacon": beacon,
            "amount": money_display(failure.amount_due_cents, failure.currency),
            "attempt_count": failure.attempt_count,
            "next_payment_attempt": failure.next_payment_attempt,
            "invoice_url": failure.hosted_invoice_url,
        },
        beacon=beacon,
        order=order,
    )
    PaymentFailure.objects.filter(pk=failure.pk, notified_at__isnull=True).update(
        notified_at=timezone.now()
    )
    return f"payment_failed e-mail {message.status}"


def trial_ending_notify(*, order_id: str, trial_end: int) -> str:
    """The trial-ending reminder, at most once per subscription and trial end date."""
    order = Order.objects.select_related("beacon").filter(pk=order_id).first()
    if order is None or not order.email or order.subscription_status in ENDED_STATUSES:
        return "nobody to remind"
    ends = stripe_time(trial_end)
    if ends is None or ends <= timezone.now():
        # A reminder delivered late (an outage, a replay) would announce a date in the past.
        return "the trial has already ended: no reminder"
    beacon = getattr(order, "beacon", None)
    message = email_send_once(
        key=f"trial_ending:{order.stripe_subscription_id}:{trial_end}",
        template="trial_ending",
        to=order.email,
        context={"order": order, "beacon": beacon, "trial_end": ends},
        beacon=beacon,
        order=order,
    )
    return f"trial_ending e-mail {message.status}"
