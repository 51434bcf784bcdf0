"""Orders and customers: turning a paid Checkout Session into a Beacon, exactly once."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.db.models import Exists, Subquery
from django.utils import timezone

from billing.catalog import BEACON_NAME_RE, region_locations, reserved_beacon_names
from billing.models import Bundle, Customer, Order, OrderStatus, StripeMode, Tier
from billing.subscriptions import (
    ENDED_STATUSES,
    order_payment_failures_attach,
    order_subscription_catch_up,
    order_subscription_early,
    stripe_id,
)
from billing.validation import (
    session_email,
    session_input_problems,
    usable_custom_domain,
    usable_email,
)
from provisioning.models import Beacon
from provisioning.services import beacon_create_for_order
from provisioning.takeback import beacon_take_back, beacon_take_back_problem

logger = logging.getLogger(__name__)

# The Order's fields that what Stripe said before the checkout (order_subscription_early) sets.
EARLY_FIELDS = (
    "subscription_status",
    "subscription_status_at",
    "subscription_period_end",
    "subscription_ended_at",
    "status",
)


def customer_create_unverified(*, email: str, name: str = "") -> Customer:
    """A new Customer of its own for one order's buyer, whose e-mail nobody has verified.

    Never an existing Customer found by e-mail: whoever types an address proves nothing, so an
    order joins another record (and its Stripe customer) only once identity is verified.
    """
    return Customer.objects.create(email=email, name=name)


def customer_for_stripe_customer(
    *, stripe_customer_id: str, mode: str, email: str, name: str = ""
) -> Customer:
    """Our Customer holding `stripe_customer_id` in `mode`, or a new unverified one that does
    (see customer_id_for_stripe_customer, which the webhook uses without loading the row)."""
    customer_id = customer_id_for_stripe_customer(
        stripe_customer_id=stripe_customer_id, mode=mode, email=email, name=name
    )
    return Customer.objects.get(pk=customer_id)


def customer_id_for_stripe_customer(
    *, stripe_customer_id: str, mode: str, email: str, name: str = ""
) -> int:
    """The id of our Customer holding `stripe_customer_id` in `mode`, or of a new unverified
    one that does, in one statement.

    For sessions made outside the storefront: the Stripe customer id comes from a signed event,
    not from anything a buyer types, so the Customer that holds it is the buyer's own. An
    upsert on the (partial) unique index of that column: a concurrent event for the same
    Stripe customer waits for the first and then gets the same row.
    """
    connection = connections[router.db_for_write(Customer)]
    quote = connection.ops.quote_name
    column, other = Customer.stripe_id_field(mode), Customer.stripe_id_field(_other_mode(mode))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    # Only quoted identifiers of our own model are formatted in; every value is a parameter.
    sql = (
        f"INSERT INTO {quote(Customer._meta.db_table)} "  # noqa: S608
        f"({quote('email')}, {quote('name')}, {quote(column)}, {quote(other)}, "
        f"{quote('authentik_user_pk')}, {quote('oidc_subject')}, "
        f"{quote('created_at')}) VALUES (%s, %s, %s, %s, '', '', %s) "
        # The index's own predicate (customer_unique_stripe_<mode>_id), so both databases match it.
        f"ON CONFLICT ({quote(column)}) WHERE NOT ({quote(column)} = '') "
        f"DO UPDATE SET {quote(column)} = EXCLUDED.{quote(column)} RETURNING {quote('id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [email, name[:200], stripe_customer_id, "", now])
        return int(cursor.fetchone()[0])


def _other_mode(mode: str) -> str:
    return StripeMode.TEST if mode == StripeMode.LIVE else StripeMode.LIVE


def _buyer_customer_id(*, order: Order, stripe_customer_id: str) -> int:
    """The id of the Customer a paid Order without one belongs to (see the two functions
    above)."""
    if stripe_customer_id:
        return customer_id_for_stripe_customer(
            stripe_customer_id=stripe_customer_id,
            mode=order.stripe_mode,
            email=order.email,
            name=order.name,
        )
    return customer_create_unverified(email=order.email, name=order.name).pk


def beacon_name_problem_offline(name: str) -> str:
    """Why `name` cannot be a Beacon name whoever holds it: 'invalid', 'reserved' or ''."""
    if not BEACON_NAME_RE.match(name or ""):
        return "invalid"
    return "reserved" if name in reserved_beacon_names() else ""


def beacon_name_problem(name: str, *, order: Order | None = None) -> str:
    """Why `name` cannot be a Beacon name ('' when it can)."""
    problem = beacon_name_problem_offline(name)
    if problem:
        return problem
    taken = Beacon.objects.filter(name=name)
    if order is not None:
        taken = taken.exclude(order=order)
    if not taken.exists():
        return ""
    return "" if order is not None and _can_take_back(order) else "taken"


def _can_take_back(order: Order) -> bool:
    """Whether the paid `order` may take back the Beacon holding its name: the same customer's,
    in its cancellation grace period (provisioning.takeback)."""
    beacon = Beacon.objects.select_related("order", "owner").filter(name=order.beacon_name).first()
    return beacon is not None and not beacon_take_back_problem(
        beacon=beacon, email=order.email, bundle_id=order.bundle_id, customer_id=order.customer_id
    )


def _beacon_for_paid_order(order: Order, *, take_back: bool, **create: bool) -> None:
    """Create the paid Order's Beacon, or take back the one in grace holding its name. A take-back
    refused under the lock (its decommission moved on meanwhile) leaves the name taken: the
    Order is flagged for staff, as any paid Order whose name is taken."""
    if not take_back:
        beacon_create_for_order(order=order, **create)
        return
    if beacon_take_back(order=order) is None:
        reason = f"beacon name {order.beacon_name!r} is taken"
        Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reason=reason)
        logger.warning("order %s paid but not provisioned: %s", order.pk, reason)


def order_problems(order: Order) -> list[str]:
    """What stops an Order from being provisioned; empty when nothing does."""
    return _problems(order, beacon_name_problem(order.beacon_name, order=order))


def _problems(order: Order, name_problem: str) -> list[str]:
    """The Order's problems, given what is wrong with its Beacon name ("" when nothing)."""
    problems = []
    if order.bundle_id is None:
        problems.append("unknown bundle")
    if order.tier_id is None:
        problems.append("unknown tier")
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


@dataclass(frozen=True)
class Offer:
    """What a session's metadata names, read in one query: the bundle, the tier's id, and
    whether a Beacon already has the name."""

    bundle: Bundle | None
    tier_id: int | None
    name_taken: bool


def _offer_read(bundle_slug: str, tier_slug: str, beacon_name: str) -> Offer:
    """The catalogue rows a new Order needs, once (one query; three for an unknown bundle)."""
    tier_id = Tier.objects.filter(slug=tier_slug).values("pk")[:1]
    taken = Beacon.objects.filter(name=beacon_name)
    bundle = (
        Bundle.objects.filter(slug=bundle_slug)
        .annotate(wopr_tier_id=Subquery(tier_id), wopr_name_taken=Exists(taken))
        .first()
    )
    if bundle is None:
        tier_pk = Tier.objects.filter(slug=tier_slug).values_list("pk", flat=True).first()
        return Offer(bundle=None, tier_id=tier_pk, name_taken=taken.exists())
    return Offer(bundle=bundle, tier_id=bundle.wopr_tier_id, name_taken=bundle.wopr_name_taken)


def _order_from_metadata(session: dict[str, Any], livemode: bool) -> tuple[Order, bool]:
    """An unsaved, paid Order for a session sold outside the storefront, built from its
    metadata, and whether a Beacon already has its name.

    Unknown bundle or tier still makes a (paid, needs-attention) Order, so staff see it.
    """
    metadata = session.get("metadata") or {}
    details = session.get("customer_details") or {}
    beacon_name = str(metadata.get("wopr_beacon_name", ""))[:63]
    offer = _offer_read(metadata.get("wopr_bundle", ""), metadata.get("wopr_tier", ""), beacon_name)
    subscription = session.get("subscription")
    order = Order(
        bundle=offer.bundle,
        tier_id=offer.tier_id,
        period=str(metadata.get("wopr_period", "monthly"))[:10],
        beacon_name=beacon_name,
        # SPEC §3: a session naming a bundle and tier but no region is honoured in the default.
        region=str(metadata.get("wopr_region") or settings.DEFAULT_REGION)[:32],
        custom_domain=usable_custom_domain(metadata.get("wopr_custom_domain", "")),
        # Untrusted input: only a usable address or domain is kept (nothing is ever sent to the
        # rest); session_input_problems tells staff what was wrong.
        email=usable_email(session_email(session)),
        name=(details.get("name") or "")[:200],
        stripe_mode=StripeMode.LIVE if livemode else StripeMode.TEST,
        stripe_checkout_session_id=session["id"],
        stripe_subscription_id=stripe_id(subscription) or None,
        stripe_customer_id=stripe_id(session.get("customer")),
        stripe_metadata=metadata,
        status=OrderStatus.PAID,
        paid_at=timezone.now(),
        **session_amount(session),
    )
    return order, offer.name_taken


def _new_order_problems(order: Order, session: dict[str, Any], name_taken: bool) -> list[str]:
    """What stops a new Order from being provisioned (order_problems, without its queries)."""
    name_problem = beacon_name_problem_offline(order.beacon_name) or ("taken" if name_taken else "")
    return _problems(order, name_problem) + session_input_problems(session)


def checkout_session_paid(*, session: dict[str, Any], livemode: bool) -> Order:
    """Mark the session's Order paid and create its Beacon and provision Job, once.

    Runs inside the webhook transaction. An Order that cannot be provisioned (unknown bundle,
    a name now taken, ...) is marked as needing attention and nothing is provisioned. What
    Stripe said about the subscription before this event (kept in the event log) applies
    first: a subscription already deleted leaves the Order cancelled and builds nothing.
    """
    order, mismatch = _session_order(session)
    if order is None:
        return _new_order_paid(session, livemode, mismatch)
    return _known_order_paid(order, session, mismatch)


def _new_order_paid(session: dict[str, Any], livemode: bool, mismatch: str) -> Order:
    """A session sold outside the storefront: its Order is written once, already paid.

    A concurrent delivery of another event of the same session fails on the session's unique
    constraint and rolls back; Stripe delivers it again and it then finds this Order.
    """
    order, name_taken = _order_from_metadata(session, livemode)
    take_back = name_taken and _can_take_back(order)
    problems = _new_order_problems(order, session, name_taken and not take_back)
    problems += [mismatch] if mismatch else []
    if order.email:
        order.customer_id = _buyer_customer_id(
            order=order, stripe_customer_id=order.stripe_customer_id
        )
    if problems:
        order.needs_attention, order.attention_reason = True, "; ".join(problems)
    early = order_subscription_early(order=order)
    order.save(force_insert=True)
    early |= order_payment_failures_attach(order=order)
    if problems:
        logger.warning("order %s paid but not provisioned: %s", order.pk, "; ".join(problems))
    elif order.status == OrderStatus.CANCELLED:
        logger.info("order %s: its subscription ended before the checkout; nothing built", order.pk)
    else:
        _beacon_for_paid_order(order, take_back=take_back, new_order=True, converge=early)
    return order


def _known_order_paid(order: Order, session: dict[str, Any], mismatch: str) -> Order:
    """A storefront Order (locked by `_session_order`) paid: provisioned once."""
    if order.status == OrderStatus.CANCELLED and order.subscription_status in ENDED_STATUSES:
        return order  # its subscription ended before the checkout: nothing to build, ever
    updates = _paid_updates(order, session)
    problems = order_problems(order) + session_input_problems(session)
    problems += [mismatch] if mismatch else []
    built = hasattr(order, "beacon")
    if order.needs_attention and not problems and not built:
        # Flagged by an earlier delivery (e.g. a mismatched order): staff decide, not a retry.
        problems = [order.attention_reason or "needs attention"]
    if problems and not built:
        updates.update(needs_attention=True, attention_reason="; ".join(problems))
    if order.customer_id is None and not problems:
        updates["customer_id"] = _buyer_customer_id(
            order=order,
            stripe_customer_id=updates.get("stripe_customer_id", "") or order.stripe_customer_id,
        )
    for field, value in updates.items():
        setattr(order, field, value)
    if problems or built:
        if updates:
            Order.objects.filter(pk=order.pk).update(**updates)
        if problems:
            logger.warning("order %s paid but not provisioned: %s", order.pk, "; ".join(problems))
        order_subscription_catch_up(order=order)
        return order
    return _known_order_build(order, updates)


def _known_order_build(order: Order, updates: dict[str, Any]) -> Order:
    before = {field: getattr(order, field) for field in EARLY_FIELDS}
    early = order_subscription_early(order=order)
    updates.update({f: getattr(order, f) for f in EARLY_FIELDS if getattr(order, f) != before[f]})
    if updates:
        Order.objects.filter(pk=order.pk).update(**updates)
    early |= order_payment_failures_attach(order=order)
    if order.status == OrderStatus.CANCELLED:
        logger.info("order %s: its subscription ended before the checkout; nothing built", order.pk)
        return order
    # order_problems let a held name through only when this Order may take its Beacon back.
    held = Beacon.objects.filter(name=order.beacon_name).exclude(order=order).exists()
    _beacon_for_paid_order(order, take_back=held, converge=early)
    return order


def _paid_updates(order: Order, session: dict[str, Any]) -> dict[str, Any]:
    """The fields a paid session sets on its (storefront) Order."""
    subscription, customer = session.get("subscription"), session.get("customer")
    updates: dict[str, Any] = {}
    if not order.stripe_checkout_session_id:
        updates["stripe_checkout_session_id"] = session["id"]
    if subscription and not order.stripe_subscription_id:
        updates["stripe_subscription_id"] = stripe_id(subscription)
    if customer and not order.stripe_customer_id:
        updates["stripe_customer_id"] = stripe_id(customer)
    if order.status != OrderStatus.PAID:
        updates.update(status=OrderStatus.PAID, paid_at=timezone.now())
    if order.amount_cents is None:
        updates.update(session_amount(session))
    return updates


def session_amount(session: dict[str, Any]) -> dict[str, Any]:
    """The Order fields for what a paid Checkout Session charged (`amount_total`, in the
    currency's minor unit, and `currency`); {} when the session does not say."""
    amount = session.get("amount_total")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        return {}
    return {"amount_cents": amount, "currency": str(session.get("currency") or "")[:3].lower()}
