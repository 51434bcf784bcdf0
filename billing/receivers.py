"""Receivers of dj-stripe's webhook signals: record facts and enqueue work, nothing else.

They run inside the webhook's transaction, in no set order, and make no HTTP calls; provider
work happens in Jobs enqueued after commit. `HANDLERS` maps event types to receivers so the
offline path (no Stripe account, see billing.webhooks) calls exactly the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from billing.services import checkout_session_paid
from billing.subscriptions import (
    invoice_paid_record,
    invoice_payment_failed_record,
    subscription_event_record,
    trial_ending_record,
)

logger = logging.getLogger(__name__)


def on_checkout_session_completed(
    sender: Any = None, event: Event | None = None, **kwargs: Any
) -> None:
    """A finished checkout: provision when paid; async payments wait for their own event."""
    session = event.data["object"]
    if session.get("mode") not in (None, "subscription"):
        logger.info("ignoring checkout session %s in mode %s", session["id"], session["mode"])
        return
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        logger.info(
            "checkout session %s not paid yet (%s)", session["id"], session.get("payment_status")
        )
        return
    checkout_session_paid(session=session, livemode=bool(event.livemode))


def on_checkout_session_async_payment_succeeded(
    sender: Any = None, event: Event | None = None, **kwargs: Any
) -> None:
    """A delayed payment (bank debit) went through: provision now."""
    checkout_session_paid(session=event.data["object"], livemode=bool(event.livemode))


def on_checkout_session_expired(
    sender: Any = None, event: Event | None = None, **kwargs: Any
) -> None:
    """The session can no longer be paid: its pending Order expires and frees its name."""
    # Imported here: billing.checkout imports billing.webhooks, which imports this module.
    from billing.checkout import checkout_session_expired

    checkout_session_expired(session=event.data["object"])


def on_invoice_payment_failed(
    sender: Any = None, event: Event | None = None, **kwargs: Any
) -> None:
    """A renewal payment failed: one PaymentFailure per invoice, dunning e-mail, maybe suspend."""
    invoice_payment_failed_record(
        invoice=event.data["object"], event_created=event.created, livemode=bool(event.livemode)
    )


def on_invoice_paid(sender: Any = None, event: Event | None = None, **kwargs: Any) -> None:
    """An invoice was paid: its failure is settled and a suspended Beacon may resume."""
    invoice_paid_record(invoice=event.data["object"], event_created=event.created)


def on_subscription_changed(sender: Any = None, event: Event | None = None, **kwargs: Any) -> None:
    """customer.subscription.created/updated/deleted/paused/resumed: keep Stripe's newest view
    of the subscription; the Beacon follows it (suspend, resume, decommission)."""
    subscription_event_record(
        subscription=event.data["object"],
        deleted=event.type == "customer.subscription.deleted",
        event_created=event.created,
        livemode=bool(event.livemode),
    )


def on_subscription_trial_will_end(
    sender: Any = None, event: Event | None = None, **kwargs: Any
) -> None:
    """Three days before a trial ends: the reminder e-mail."""
    on_subscription_changed(sender=sender, event=event)
    trial_ending_record(subscription=event.data["object"])


HANDLERS: dict[str, Callable[..., None]] = {
    "checkout.session.completed": on_checkout_session_completed,
    "checkout.session.async_payment_succeeded": on_checkout_session_async_payment_succeeded,
    "checkout.session.expired": on_checkout_session_expired,
    "invoice.payment_failed": on_invoice_payment_failed,
    "invoice.paid": on_invoice_paid,
    "customer.subscription.created": on_subscription_changed,
    "customer.subscription.updated": on_subscription_changed,
    "customer.subscription.deleted": on_subscription_changed,
    "customer.subscription.paused": on_subscription_changed,
    "customer.subscription.resumed": on_subscription_changed,
    "customer.subscription.trial_will_end": on_subscription_trial_will_end,
}

for _type, _handler in HANDLERS.items():
    WEBHOOK_SIGNALS[_type].connect(_handler, sender=Event, dispatch_uid=f"wopr:{_type}")


def dispatch(event: Event) -> None:
    """Call our receiver for `event` directly (the offline path; dj-stripe's own handlers,
    which re-fetch objects from Stripe, are skipped)."""
    handler = HANDLERS.get(event.type)
    if handler is not None:
        handler(sender=Event, event=event)
