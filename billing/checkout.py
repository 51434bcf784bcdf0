"""The storefront's side of billing: the public catalogue, beacon-name availability, and turning
a validated checkout request into an Order and a Stripe Checkout Session, at most once per order.

Stripe is called through a `stripe.StripeClient` built per call from settings (the key of the
active mode, `STRIPE_API_BASE`), so nothing global in stripe-python changes. Every create carries
an idempotency key derived from our own ids, and a repeated request (same `order_id`) whose Order
already has a session is answered from the database without calling Stripe.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from billing.catalog import region_locations
from billing.models import Bundle, Customer, Order, OrderStatus, Price, StripeMode, Tier
from billing.services import beacon_name_problem, customer_create_unverified
from billing.webhooks import stripe_api_key

logger = logging.getLogger(__name__)

# A pending Order holds its beacon name while its Checkout Session can still be paid: sessions
# are created to expire after CHECKOUT_SESSION_LIFETIME (Stripe's minimum is 30 minutes after
# creation by Stripe's clock, so a minute more absorbs request latency and clock skew). Orders
# from before sessions carried an expiry hold it for Stripe's default day. One whose session was
# never created holds it only briefly, so a Stripe outage does not lock names.
CHECKOUT_SESSION_LIFETIME = timedelta(minutes=31)
STRIPE_MIN_SESSION_LIFETIME = timedelta(minutes=30)
NAME_HOLD = timedelta(hours=24)
NAME_HOLD_WITHOUT_SESSION = timedelta(minutes=10)
STRIPE_TIMEOUT_SECONDS = 20


class CheckoutError(Exception):
    """A checkout that cannot go ahead; the message is safe to show the buyer."""


class CheckoutDisabled(CheckoutError):
    """No Stripe secret key for the active mode."""


class OrderMismatch(CheckoutError):
    """`order_id` names an Order that this request cannot repeat."""


class StripeFailed(CheckoutError):
    """Stripe refused or failed; details are in the log (with Stripe's request id)."""


def active_mode() -> str:
    return StripeMode.LIVE if settings.STRIPE_LIVE_MODE else StripeMode.TEST


def checkout_enabled() -> bool:
    return bool(stripe_api_key(livemode=settings.STRIPE_LIVE_MODE))


# --- what the storefront may offer -----------------------------------------------------------


def region_availability(on_sale: dict[str, set[int]] | None = None) -> dict[str, bool]:
    """Region -> whether a healthy provider can take a Beacon (of some size) there now."""
    # Imported here: the provisioning package imports billing at load time.
    from provisioning.provision import sizes_on_sale

    return {region: bool(sizes) for region, sizes in (on_sale or sizes_on_sale()).items()}


def region_problem(region: str) -> str | None:
    """'unknown', 'unavailable' (no healthy provider serves it) or None."""
    from provisioning.provision import healthy_providers

    if not region_locations(region):
        return "unknown"
    return None if healthy_providers(region) else "unavailable"


def offer_problem(*, bundle: Bundle, tier: Tier, region: str) -> str | None:
    """'unavailable' when no healthy provider has the server size this bundle needs at this
    tier in `region` (a size missing at a provider takes only what needs it off sale)."""
    from provisioning.provision import healthy_providers, size_number

    return None if healthy_providers(region, size_number(bundle, tier)) else "unavailable"


def offer_regions(
    bundle: Bundle, tiers: list[Tier], on_sale: dict[str, set[int]]
) -> dict[str, list[str]]:
    """Tier slug -> the regions where the bundle at that tier can be bought now."""
    from provisioning.provision import size_number

    return {
        tier.slug: [
            region for region, sizes in on_sale.items() if size_number(bundle, tier) in sizes
        ]
        for tier in tiers
    }


def catalog_public() -> dict[str, Any]:
    """Active bundles with their prices in the active Stripe mode, tiers, regions, and where
    each bundle and tier can be bought now."""
    from provisioning.provision import sizes_on_sale

    on_sale = sizes_on_sale()
    all_tiers = list(Tier.objects.order_by("number"))
    mode = active_mode()
    prices = Price.objects.filter(mode=mode).select_related("tier").order_by("tier__number")
    bundles = Bundle.objects.filter(active=True).prefetch_related(Prefetch("prices", prices))
    return {
        "mode": mode,
        "bundles": [
            _bundle_public(bundle, all_tiers, on_sale) for bundle in bundles.order_by("slug")
        ],
        "tiers": list(
            Tier.objects.order_by("number").values(
                "slug", "number", "storage_gb", "ram_gb", "max_users", "backup_days"
            )
        ),
        "regions": [
            {"slug": slug, "available": available}
            for slug, available in region_availability(on_sale).items()
        ],
    }


def _bundle_public(bundle: Bundle, tiers: list[Tier], on_sale: dict[str, set[int]]) -> dict:
    """One bundle of the public catalogue: its apps, where it sells, its prices (prefetched)."""
    prices = sorted(bundle.prices.all(), key=lambda p: (p.tier.number, p.period != "monthly"))
    return {
        "slug": bundle.slug,
        "name": bundle.name,
        "kind": bundle.kind,
        "apps": list(bundle.modules),
        "available_regions": offer_regions(bundle, tiers, on_sale),
        "prices": [
            {
                "tier": price.tier.slug,
                "period": price.period,
                "amount": price.amount_cents,
                "currency": price.currency,
                "sellable": price.sellable,
            }
            for price in prices
        ],
    }


def offer_price(*, bundle: Bundle, tier: Tier, period: str) -> Price | None:
    """The price of the offer in the active mode (None when the catalogue has none)."""
    return Price.objects.filter(bundle=bundle, tier=tier, period=period, mode=active_mode()).first()


def _orders_holding(name: str) -> QuerySet[Order]:
    """Pending Orders whose session can still be paid (or may still be created) for `name`.

    Judged by the session's own expiry, not by the Order's status alone: a lost
    checkout.session.expired event leaves an Order pending, but never its name held.
    """
    now = timezone.now()
    session_payable = Q(stripe_checkout_session_id__isnull=False) & (
        Q(checkout_expires_at__gt=now)
        | Q(checkout_expires_at__isnull=True, created_at__gte=now - NAME_HOLD)
    )
    session_coming = Q(
        stripe_checkout_session_id__isnull=True, created_at__gte=now - NAME_HOLD_WITHOUT_SESSION
    )
    return Order.objects.filter(beacon_name=name, status=OrderStatus.PENDING).filter(
        session_payable | session_coming
    )


def beacon_name_reason(
    name: str, *, order_id: uuid.UUID | None = None, email: str = "", bundle: str = ""
) -> str | None:
    """'invalid', 'reserved', 'taken' (a Beacon has it or a pending Order holds it), 'held'
    or None.

    `order_id`: the Order being repeated, whose own hold does not count. `email` and `bundle`
    (a checkout's): a Beacon in its cancellation grace period does not hold its name against
    the same e-mail address and bundle, whose payment takes it back (provisioning.takeback);
    'held' when only the bundle differs. Anyone else is told 'taken', nothing more.
    """
    problem = beacon_name_problem(name)
    if problem == "taken" and email:
        problem = _take_back_reason(name, email, bundle)
    if problem:
        return problem
    holders = _orders_holding(name)
    if order_id is not None:
        holders = holders.exclude(pk=order_id)
    return "taken" if holders.exists() else None


def _take_back_reason(name: str, email: str, bundle: str) -> str:
    from provisioning.takeback import OTHER_BUNDLE, beacon_take_back_name_problem

    problem = beacon_take_back_name_problem(name=name, email=email, bundle_slug=bundle)
    if not problem:
        return ""
    return "held" if problem == OTHER_BUNDLE else "taken"


# --- checkout --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutRequest:
    """A validated checkout request (see billing.serializers.CheckoutInputSerializer)."""

    bundle: Bundle
    tier: Tier
    price: Price
    period: str
    beacon_name: str
    region: str
    email: str
    name: str = ""
    custom_domain: str = ""
    order_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CheckoutStarted:
    order: Order
    checkout_url: str
    session_id: str


def checkout_start(*, request: CheckoutRequest) -> CheckoutStarted:
    """The Order and its Checkout Session for `request`, each created at most once.

    Raises CheckoutDisabled, OrderMismatch or StripeFailed.
    """
    if not checkout_enabled():
        raise CheckoutDisabled("Checkout is disabled: no Stripe key is configured.")
    order = _order_for(request)
    if order.stripe_checkout_session_id:
        return _started(order)
    client = stripe_client()
    customer = order.customer or _order_customer_attach(order)
    expires_at = _session_expiry(order)
    # The expiry is part of the key: a repeat within the window replays the same request; one
    # after it asks for a new session (the lost one, whose URL nobody saw, soon expires).
    idempotency_key = f"wopr-checkout-{order.pk}-{int(expires_at.timestamp())}"
    try:
        customer_id = _stripe_customer_id(client, customer, mode=order.stripe_mode)
        params = _session_params(order, request, customer_id, expires_at)
        session = client.v1.checkout.sessions.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as error:
        logger.warning(
            "stripe: %s while starting checkout for order %s (HTTP %s, code %s, request %s)",
            type(error).__name__,
            order.pk,
            error.http_status,
            error.code,
            error.request_id,
        )
        raise StripeFailed("The payment provider failed; try again shortly.") from error
    return _store_session(order, session, customer_id)


def stripe_client(mode: str | None = None) -> stripe.StripeClient:
    """A client with the secret key of `mode` (default: the active mode), so a test order is
    never sent to live Stripe; `STRIPE_API_BASE` (a mock in tests) when set."""
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        stripe_api_key(livemode=(mode or active_mode()) == StripeMode.LIVE),
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=2,  # safe: every create carries an idempotency key
        http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS),
    )


def _same_request(order: Order, request: CheckoutRequest) -> bool:
    return (
        order.bundle_id == request.bundle.pk
        and order.tier_id == request.tier.pk
        and order.period == request.period
        and order.beacon_name == request.beacon_name
        and order.region == request.region
        and order.email.lower() == request.email.lower()
        and order.custom_domain == request.custom_domain
        and order.stripe_mode == active_mode()
    )


def _repeat(order: Order, request: CheckoutRequest) -> Order:
    if not _same_request(order, request):
        raise OrderMismatch("An order with this id exists with other details.")
    if order.status != OrderStatus.PENDING:
        raise OrderMismatch(f"This order is {order.status}; start a new checkout without it.")
    return order


def _order_for(request: CheckoutRequest) -> Order:
    """The pending Order this request repeats, or a new one (with the buyer's order id)."""
    if request.order_id is not None:
        existing = Order.objects.filter(pk=request.order_id).first()
        if existing is not None:
            return _repeat(existing, request)
    order = Order(
        id=request.order_id or uuid.uuid4(),
        bundle=request.bundle,
        tier=request.tier,
        period=request.period,
        beacon_name=request.beacon_name,
        region=request.region,
        custom_domain=request.custom_domain,
        email=request.email,
        name=request.name,
        stripe_mode=active_mode(),
        status=OrderStatus.PENDING,
    )
    try:
        with transaction.atomic():
            # Each checkout gets a Customer of its own: the e-mail is unverified (see Customer).
            order.customer = customer_create_unverified(email=request.email, name=request.name)
            order.save(force_insert=True)
    except IntegrityError:  # the same order id, sent twice at once: the other one won
        return _repeat(Order.objects.get(pk=order.pk), request)
    return order


def _order_customer_attach(order: Order) -> Customer:
    """A Customer of its own for a pending Order that has none (made before customers were
    per order); the first attach wins a concurrent repeat."""
    customer = customer_create_unverified(email=order.email, name=order.name)
    if not Order.objects.filter(pk=order.pk, customer__isnull=True).update(customer=customer):
        customer.delete()
    order.refresh_from_db(fields=["customer"])
    return order.customer or customer


def _session_expiry(order: Order) -> datetime:
    """When the Order's session is to expire: kept, so a repeat sends the same request, until
    it is too close for Stripe to accept; then a fresh one."""
    now = timezone.now()
    kept = order.checkout_expires_at
    if kept is not None and kept >= now + STRIPE_MIN_SESSION_LIFETIME:
        return kept
    fresh = (now + CHECKOUT_SESSION_LIFETIME).replace(microsecond=0)
    Order.objects.filter(pk=order.pk, stripe_checkout_session_id__isnull=True).update(
        checkout_expires_at=fresh
    )
    order.checkout_expires_at = fresh
    return fresh


def _stripe_customer_id(client: stripe.StripeClient, customer: Customer, *, mode: str) -> str:
    """The Stripe customer of our Customer in `mode`, created once.

    Never looked up at Stripe by e-mail or anything else a stranger could type: the id comes
    from our own row, or Stripe creates it under an idempotency key made of our row's id. A
    storefront checkout's Customer is its own (unverified), so this never reuses the Stripe
    customer of someone who merely has the same e-mail address.
    """
    field = Customer.stripe_id_field(mode)
    known = customer.stripe_customer_id_for(mode)
    if known:
        return known
    params: dict[str, Any] = {
        "email": customer.email,
        "metadata": {"wopr_customer_id": str(customer.pk)},
    }
    if customer.name:
        params["name"] = customer.name
    created = client.v1.customers.create(
        params=params,  # type: ignore[arg-type]
        options={"idempotency_key": f"wopr-customer-{customer.pk}-{mode}"},
    )
    Customer.objects.filter(pk=customer.pk, **{field: ""}).update(**{field: created.id})
    customer.refresh_from_db(fields=[field])
    return customer.stripe_customer_id_for(mode)


def order_metadata(order: Order) -> dict[str, str]:
    """What the session and its subscription carry, so the webhook can find the Order."""
    metadata = {
        "wopr_order_id": str(order.pk),
        "wopr_bundle": order.bundle.slug if order.bundle else "",
        "wopr_tier": order.tier.slug if order.tier else "",
        "wopr_period": order.period,
        "wopr_beacon_name": order.beacon_name,
        "wopr_region": order.region,
    }
    if order.custom_domain:
        metadata["wopr_custom_domain"] = order.custom_domain
    return metadata


def _line_item(request: CheckoutRequest) -> dict[str, Any]:
    price = request.price
    if price.stripe_price_id:
        return {"price": price.stripe_price_id, "quantity": 1}
    # No Stripe price set by staff yet: describe it inline so checkout works from day one.
    return {
        "price_data": {
            "currency": price.currency,
            "unit_amount": price.amount_cents,
            "recurring": {"interval": "year" if price.period == "yearly" else "month"},
            "product_data": {"name": f"{request.bundle.name} ({request.tier.slug})"},
        },
        "quantity": 1,
    }


def _page_url(template: str, order: Order) -> str:
    return template.replace("{ORDER_ID}", str(order.pk))


def _session_params(
    order: Order, request: CheckoutRequest, customer_id: str, expires_at: datetime
) -> dict[str, Any]:
    metadata = order_metadata(order)
    return {
        "mode": "subscription",
        "customer": customer_id,
        "expires_at": int(expires_at.timestamp()),
        "client_reference_id": str(order.pk),
        "line_items": [_line_item(request)],
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": _page_url(settings.STOREFRONT_SUCCESS_URL, order),
        "cancel_url": _page_url(settings.STOREFRONT_CANCEL_URL, order),
    }


def _store_session(order: Order, session: Any, customer_id: str) -> CheckoutStarted:
    """Keep the session on the Order (the first one stored wins a concurrent repeat)."""
    # The session's URL is kept beside the metadata we sent, so a repeat needs no Stripe call.
    kept = {**order_metadata(order), "checkout_url": session.get("url") or ""}
    try:
        with transaction.atomic():
            Order.objects.filter(pk=order.pk, stripe_checkout_session_id__isnull=True).update(
                stripe_checkout_session_id=session["id"],
                stripe_customer_id=customer_id,
                stripe_metadata=kept,
            )
    except IntegrityError as error:  # Stripe answered with another order's session
        logger.error("stripe returned session %s, already another order's", session["id"])
        raise StripeFailed("The payment provider failed; try again shortly.") from error
    order.refresh_from_db()
    return _started(order)


def _started(order: Order) -> CheckoutStarted:
    url = (order.stripe_metadata or {}).get("checkout_url") or ""
    if not url:
        logger.error(
            "checkout session %s of order %s has no URL", order.stripe_checkout_session_id, order.pk
        )
        raise StripeFailed("The payment provider returned no checkout page; try again shortly.")
    return CheckoutStarted(
        order=order, checkout_url=url, session_id=order.stripe_checkout_session_id or ""
    )


# --- Stripe's answer -------------------------------------------------------------------------


def checkout_session_expired(*, session: dict[str, Any]) -> bool:
    """The session can no longer be paid: its pending Order expires and frees its name.

    True when an Order changed. A conditional update, so a paid Order never expires and a
    redelivered event changes nothing.
    """
    metadata = session.get("metadata") or {}
    match = Q(stripe_checkout_session_id=session["id"])
    try:
        order_id = uuid.UUID(
            str(metadata.get("wopr_order_id") or session.get("client_reference_id"))
        )
    except ValueError:
        order_id = None
    if order_id is not None:
        match |= Q(pk=order_id, stripe_checkout_session_id__isnull=True)
    return bool(
        Order.objects.filter(match, status=OrderStatus.PENDING).update(status=OrderStatus.EXPIRED)
    )
