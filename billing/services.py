"""Orders and customers: turning a paid Checkout Session into a Beacon, exactly once."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.catalog import BEACON_NAME_RE, region_locations, reserved_beacon_names
from billing.models import Bundle, Customer, Order, OrderStatus, StripeMode, Tier
from provisioning.models import Beacon
from provisioning.services import beacon_create_for_order

logger = logging.getLogger(__name__)


def customer_get_or_create(*, email: str, name: str = "") -> Customer:
    """Our Customer for an e-mail address (case-insensitive, unique in the database)."""
    found = Customer.objects.filter(email__iexact=email).first()
    if found:
        return found
    try:
        with transaction.atomic():
            return Customer.objects.create(email=email, name=name)
    except IntegrityError:
        return Customer.objects.get(email__iexact=email)


def beacon_name_problem(name: str, *, order: Order | None = None) -> str:
    """Why `name` cannot be a Beacon name ('' when it can)."""
    if not BEACON_NAME_RE.match(name or ""):
        return "invalid"
    if name in reserved_beacon_names():
        return "reserved"
    taken = Beacon.objects.filter(name=name)
    if order is not None:
        taken = taken.exclude(order=order)
    return "taken" if taken.exists() else ""


def order_problems(order: Order) -> list[str]:
    """What stops an Order from being provisioned; empty when nothing does."""
    problems = []
    if order.bundle_id is None:
        problems.append("unknown bundle")
    if order.tier_id is None:
        problems.append("unknown tier")
    name_problem = beacon_name_problem(order.beacon_name, order=order)
    if name_problem:
        problems.append(f"beacon name {order.beacon_name!r} is {name_problem}")
    if not region_locations(order.region):
        problems.append(f"unknown region {order.region!r}")
    if not order.email:
        problems.append("no customer e-mail")
    return problems


def _parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _session_order(session: dict[str, Any]) -> tuple[Order | None, str]:
    """The storefront Order this session belongs to (locked for the rest of the transaction),
    and a problem when the session names an Order that is not its own.

    `client_reference_id` can be set by whoever makes a Payment Link, so a named Order is only
    trusted when it carries this session's id, or carries none yet and agrees with the
    session's metadata (the checkout API stores the id right after Stripe answers).
    """
    orders = Order.objects.select_for_update()
    own = orders.filter(stripe_checkout_session_id=session["id"]).first()
    if own is not None:
        return own, ""
    metadata = session.get("metadata") or {}
    order_id = _parse_uuid(metadata.get("wopr_order_id") or session.get("client_reference_id"))
    named = orders.filter(pk=order_id).first() if order_id is not None else None
    if named is None:
        return None, ""
    if named.stripe_checkout_session_id is None and _metadata_agrees(named, metadata):
        return named, ""
    return None, f"the session names order {named.pk}, which belongs to another checkout"


def _metadata_agrees(order: Order, metadata: dict[str, Any]) -> bool:
    return (
        metadata.get("wopr_bundle") == (order.bundle.slug if order.bundle else None)
        and metadata.get("wopr_tier") == (order.tier.slug if order.tier else None)
        and metadata.get("wopr_beacon_name") == order.beacon_name
    )


def _order_from_metadata(session: dict[str, Any], livemode: bool) -> Order:
    """An Order for a session sold outside the storefront, built from its metadata.

    Unknown bundle or tier still makes a (paid, needs-attention) Order, so staff see it.
    """
    metadata = session.get("metadata") or {}
    details = session.get("customer_details") or {}
    email = details.get("email") or session.get("customer_email") or ""
    order = Order(
        bundle=Bundle.objects.filter(slug=metadata.get("wopr_bundle", "")).first(),
        tier=Tier.objects.filter(slug=metadata.get("wopr_tier", "")).first(),
        period=metadata.get("wopr_period", "monthly"),
        beacon_name=str(metadata.get("wopr_beacon_name", ""))[:63],
        region=str(metadata.get("wopr_region", ""))[:32],
        custom_domain=str(metadata.get("wopr_custom_domain", ""))[:253],
        email=email,
        name=(details.get("name") or "")[:200],
        stripe_mode=StripeMode.LIVE if livemode else StripeMode.TEST,
        stripe_checkout_session_id=session["id"],
        stripe_metadata=metadata,
    )
    if email:
        order.customer = customer_get_or_create(email=email, name=order.name)
    try:
        with transaction.atomic():
            order.save()
    except IntegrityError:  # a concurrent delivery of another event for the same session won
        return Order.objects.select_for_update().get(stripe_checkout_session_id=session["id"])
    return order


def checkout_session_paid(*, session: dict[str, Any], livemode: bool) -> Order:
    """Mark the session's Order paid and create its Beacon and provision Job, once.

    Runs inside the webhook transaction. An Order that cannot be provisioned (unknown bundle,
    a name now taken, ...) is marked as needing attention and nothing is provisioned.
    """
    order, mismatch = _session_order(session)
    if order is None:
        order = _order_from_metadata(session, livemode)
    subscription = session.get("subscription")
    customer = session.get("customer")
    updates: dict[str, Any] = {}
    if not order.stripe_checkout_session_id:
        updates["stripe_checkout_session_id"] = session["id"]
    if subscription and not order.stripe_subscription_id:
        updates["stripe_subscription_id"] = (
            subscription if isinstance(subscription, str) else subscription.get("id")
        )
    if customer and not order.stripe_customer_id:
        updates["stripe_customer_id"] = customer if isinstance(customer, str) else customer["id"]
    if order.status != OrderStatus.PAID:
        updates.update(status=OrderStatus.PAID, paid_at=timezone.now())
    problems = order_problems(order) + ([mismatch] if mismatch else [])
    if order.needs_attention and not problems and not hasattr(order, "beacon"):
        # Flagged by an earlier delivery (e.g. a mismatched order): staff decide, not a retry.
        problems = [order.attention_reason or "needs attention"]
    if problems and not hasattr(order, "beacon"):
        updates.update(needs_attention=True, attention_reason="; ".join(problems))
    if updates:
        Order.objects.filter(pk=order.pk).update(**updates)
        order.refresh_from_db()
    if problems:
        logger.warning("order %s paid but not provisioned: %s", order.pk, "; ".join(problems))
        return order
    if order.customer is None:
        order.customer = customer_get_or_create(email=order.email, name=order.name)
        Order.objects.filter(pk=order.pk).update(customer=order.customer)
    beacon_create_for_order(order=order)
    return order
