"""The receiving side of a tier change: Order.tier follows the price Stripe says is paid.

Called by billing.subscriptions for a subscription event newer than what the Order holds (the
out-of-order guard on `subscription_status_at`); the Beacon's converge then starts the resize
(provisioning.resize). The asking side is billing.tier_change.
"""

from __future__ import annotations

import logging
from typing import Any

from billing.models import Order, Price, SubscriptionStatus

logger = logging.getLogger(__name__)


def stripe_id(value: Any) -> str:
    """The id of a Stripe reference, expanded (a dict) or not (a string)."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def order_tier_follow(*, order: Order, subscription: dict[str, Any]) -> bool:
    """Move Order.tier to the tier of the subscription's price when that is another tier of
    the order's bundle and the subscription is active. A pending (unpaid) update keeps the old
    price on the items, so it moves nothing. True when the tier moved."""
    if subscription.get("status") != SubscriptionStatus.ACTIVE or order.bundle_id is None:
        return False
    items = (subscription.get("items") or {}).get("data") or []
    price_ids = [stripe_id(item.get("price")) for item in items]
    price = Price.objects.filter(
        stripe_price_id__in=[price_id for price_id in price_ids if price_id],
        bundle_id=order.bundle_id,
    ).first()
    if price is None or price.tier_id == order.tier_id:
        return False
    Order.objects.filter(pk=order.pk).update(
        tier_id=price.tier_id, tier_change_to=None, tier_change_requested_at=None
    )
    logger.info("order %s: Stripe says the change to tier %s is paid", order.pk, price.tier_id)
    order.refresh_from_db()
    return True
