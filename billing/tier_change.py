"""A customer's tier change: asked of Stripe with proration, applied when Stripe says it is paid.

`tier_change_request` validates the change, records it on the Order (`tier_change_to`, claimed
with a conditional update so two requests cannot both go), reads the subscription for its item
and updates that item's price with `proration_behavior=always_invoice` and
`payment_behavior=pending_if_incomplete`: Stripe invoices the difference at once and changes
the subscription only once that invoice is paid (until then the change waits in the
subscription's `pending_update`, which Stripe drops after 23 hours). The POST carries an
idempotency key made of the order, the tier and the time of the claim: a retry of the same
request replays Stripe's first answer, a later change is a new one.

The receiving side is billing.tier_follow (called by billing.subscriptions): once Stripe says
the new price is on the subscription, Order.tier moves and provisioning resizes the Beacon.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from django.db.models import Q
from django.utils import timezone

from billing.models import Order, Price, SubscriptionStatus, Tier
from billing.selfservice import (
    NotPossible,
    StripeFailed,
    StripeUnconfigured,
    stripe_client_for,
)
from billing.tier_follow import stripe_id
from provisioning.models import Beacon, BeaconStatus
from provisioning.provision import healthy_providers, size_number
from provisioning.resize import size_position

logger = logging.getLogger(__name__)

# Stripe keeps a pending update for 23 hours; after that the Order may ask again.
PENDING_UPDATE_LIFETIME = timedelta(hours=23)


class TierRefused(Exception):
    """The asked tier is not one this Beacon can move to; the message is for the customer."""


@dataclass(frozen=True)
class TierChange:
    """Stripe's answer: `paid` (the subscription has the new price already) or `pending`
    (the proration invoice awaits payment; `invoice_id` names it)."""

    tier: str
    state: str
    invoice_id: str


def tier_change_pending(order: Order, now: datetime | None = None) -> bool:
    """Whether a change is waiting for its invoice to be paid (and Stripe still holds it)."""
    at = order.tier_change_requested_at
    if order.tier_change_to_id is None or at is None:
        return False
    return at > (now or timezone.now()) - PENDING_UPDATE_LIFETIME


def tier_price(order: Order, tier: Tier) -> Price:
    """The sellable Stripe price of the order's bundle and period at `tier`, in its mode."""
    price = Price.objects.filter(
        bundle_id=order.bundle_id, tier=tier, period=order.period, mode=order.stripe_mode
    ).first()
    if price is None or not price.sellable or not price.stripe_price_id:
        raise TierRefused(f"The {tier.slug} tier cannot be bought for this Beacon.")
    return price


def _tier_problem(beacon: Beacon, tier: Tier) -> str:
    """Why the Beacon's server cannot move to `tier` ('' when it can)."""
    number = size_number(beacon.bundle, tier)
    provider = beacon.provider
    if provider is None or provider not in healthy_providers(beacon.region, number):
        return f"The {tier.slug} tier's server is not available in this region right now."
    here = size_position(provider.kind, beacon.server_size)
    if here is not None and number < here:
        return (
            f"Moving down to {tier.slug} needs a smaller server, and a server's disk cannot "
            "shrink: please contact support."
        )
    return ""


def _state_problem(beacon: Beacon, order: Order) -> str:
    """Why the subscription's or the Beacon's state forbids a change now ('' when it may)."""
    if beacon.status != BeaconStatus.ACTIVE:
        return "Only a running Beacon can change tier."
    if not order.stripe_subscription_id or order.subscription_status != SubscriptionStatus.ACTIVE:
        return "Only an active subscription can change tier."
    if order.subscription_cancel_at_period_end:
        return "The subscription ends at its period end; keep it first."
    return ""


def tier_change_request(*, beacon: Beacon, tier: Tier) -> TierChange:
    """Ask Stripe to move the Beacon's subscription to `tier`, prorated, paid first.

    TierRefused (bad tier for this Beacon), NotPossible (state, or another change pending),
    StripeUnconfigured or StripeFailed (nothing changed at Stripe, or a retry may finish it)."""
    order = beacon.order
    if tier.pk == order.tier_id:
        raise TierRefused(f"The Beacon is on the {tier.slug} tier already.")
    price = tier_price(order, tier)
    problem = _tier_problem(beacon, tier)
    if problem:
        raise TierRefused(problem)
    problem = _state_problem(beacon, order)
    if problem:
        raise NotPossible(problem)
    requested_at = _claim(order, tier)
    return _stripe_update(order, tier, price, requested_at)


def _claim(order: Order, tier: Tier) -> datetime:
    """Record the change on the Order, or find this same change recorded (a retry); another
    change still pending refuses."""
    now = timezone.now()
    order.refresh_from_db(fields=["tier_change_to", "tier_change_requested_at"])
    if order.tier_change_to_id == tier.pk and tier_change_pending(order, now):
        return order.tier_change_requested_at  # type: ignore[return-value]
    free = Q(tier_change_to__isnull=True) | Q(
        tier_change_requested_at__lte=now - PENDING_UPDATE_LIFETIME
    )
    claimed = Order.objects.filter(free, pk=order.pk).update(
        tier_change_to=tier, tier_change_requested_at=now
    )
    if not claimed:
        raise NotPossible("Another tier change is waiting for its payment.")
    return now


def _release(order: Order, requested_at: datetime) -> None:
    """Forget a claim Stripe refused for good (nothing changed there)."""
    Order.objects.filter(pk=order.pk, tier_change_requested_at=requested_at).update(
        tier_change_to=None, tier_change_requested_at=None
    )


def _stripe_update(order: Order, tier: Tier, price: Price, requested_at: datetime) -> TierChange:
    """GET the subscription for its item, POST the item's new price (prorated, paid first)."""
    subscription_id = str(order.stripe_subscription_id)
    key = f"wopr-tier-{order.pk}-{tier.slug}-{int(requested_at.timestamp())}"
    try:
        client = stripe_client_for(order.stripe_mode)
        current = client.v1.subscriptions.retrieve(subscription_id)
        updated = client.v1.subscriptions.update(
            subscription_id,
            params=_update_params(current.to_dict(), price),
            options={"idempotency_key": key},
        )
    except (StripeUnconfigured, NotPossible):  # nothing was asked of Stripe: the claim goes
        _release(order, requested_at)
        raise
    except stripe.StripeError as error:
        if _refused(error):  # Stripe said no: nothing changed there, the claim goes
            _release(order, requested_at)
        raise _failed(error, order) from error
    return _answer(updated.to_dict(), tier)


def _update_params(subscription: dict[str, Any], price: Price) -> dict[str, Any]:
    items = (subscription.get("items") or {}).get("data") or []
    if len(items) != 1:
        raise NotPossible("This subscription cannot change tier here; please contact support.")
    return {
        "items": [{"id": items[0]["id"], "price": price.stripe_price_id}],
        "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete",
    }


def _refused(error: stripe.StripeError) -> bool:
    status = error.http_status or 0
    return 400 <= status < 500 and status not in (409, 429)


def _failed(error: stripe.StripeError, order: Order) -> StripeFailed:
    logger.warning(
        "stripe: %s during a tier change for order %s (HTTP %s, code %s, request %s)",
        type(error).__name__,
        order.pk,
        error.http_status,
        error.code,
        error.request_id,
    )
    return StripeFailed("The payment provider failed; nothing changed, try again shortly.")


def _answer(subscription: dict[str, Any], tier: Tier) -> TierChange:
    pending = bool(subscription.get("pending_update"))
    invoice = stripe_id(subscription.get("latest_invoice"))
    return TierChange(tier=tier.slug, state="pending" if pending else "paid", invoice_id=invoice)
