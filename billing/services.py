"""Orders and customers: turning a paid Checkout Session into a Beacon, exactly once."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.catalog import BEACON_NAME_RE, region_locations, reserved_beacon_names
from billing.models import Bundle, Customer, Order, OrderStatus, StripeMode, Tier
from billing.validation import (
    session_email,
    session_input_problems,
    usable_custom_domain,
    usable_email,
)
from provisioning.models import Beacon
from provisioning.services import beacon_create_for_order

logger = logging.getLogger(__name__)


def customer_create_unverified(*, email: str, name: str = "") -> Customer:
    """A new Customer of its own for one order's buyer, whose e-mail nobody has verified.

    Never an existing Customer found by e-mail: whoever types an address proves nothing, so an
    order joins another record (and its Stripe customer) only once identity is verified.
    """
    return Customer.objects.create(email=email, name=name)


def customer_for_stripe_customer(
    *, stripe_customer_id: str, mode: str, email: str, name: str = ""
) -> Customer:
    """Our Customer holding `stripe_customer_id` in `mode`, or a new unverified one that does.

    For sessions made outside the storefront: the Stripe customer id comes from a signed event,
    not from anything a buyer types, so the Customer that holds it is the buyer's own.
    """
    field = Customer.stripe_id_field(mode)
    found = Customer.objects.filter(**{field: stripe_customer_id}).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Customer.objects.create(email=email, name=name, **{field: stripe_customer_id})
    except IntegrityError:  # a concurrent event for the same Stripe customer won
        return Customer.objects.get(**{field: stripe_customer_id})


def _stripe_id(value: Any) -> str:
    """A Stripe id from an expandable field (an id string or an object with an id)."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _buyer_customer(*, order: Order, stripe_customer_id: str) -> Customer:
    """The Customer a paid Order without one belongs to (see the two functions above)."""
    if stripe_customer_id:
        return customer_for_stripe_customer(
            stripe_customer_id=stripe_customer_id,
            mode=order.stripe_mode,
            email=order.email,
            name=order.name,
        )
    return customer_create_unverified(email=order.email, name=order.name)


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
    # Untrusted input: only a usable address or domain is kept (nothing is ever sent to the
    # rest); session_input_problems tells staff what was wrong.
    email = usable_email(session_email(session))
    customer = session.get("customer")
    order = Order(
        bundle=Bundle.objects.filter(slug=metadata.get("wopr_bundle", "")).first(),
        tier=Tier.objects.filter(slug=metadata.get("wopr_tier", "")).first(),
        period=str(metadata.get("wopr_period", "monthly"))[:10],
        beacon_name=str(metadata.get("wopr_beacon_name", ""))[:63],
        # SPEC §3: a session naming a bundle and tier but no region is honoured in the default.
        region=str(metadata.get("wopr_region") or settings.DEFAULT_REGION)[:32],
        custom_domain=usable_custom_domain(metadata.get("wopr_custom_domain", "")),
        email=email,
        name=(details.get("name") or "")[:200],
        stripe_mode=StripeMode.LIVE if livemode else StripeMode.TEST,
        stripe_checkout_session_id=session["id"],
        stripe_metadata=metadata,
    )
    if email:
        order.customer = _buyer_customer(order=order, stripe_customer_id=_stripe_id(customer))
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
        updates["stripe_customer_id"] = _stripe_id(customer)
    if order.status != OrderStatus.PAID:
        updates.update(status=OrderStatus.PAID, paid_at=timezone.now())
    problems = order_problems(order) + session_input_problems(session)
    problems += [mismatch] if mismatch else []
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
        order.customer = _buyer_customer(order=order, stripe_customer_id=order.stripe_customer_id)
        Order.objects.filter(pk=order.pk).update(customer=order.customer)
    beacon_create_for_order(order=order)
    return order
