"""The catalogue's Stripe prices, created or matched by lookup key (`manage.py
stripe_sync_prices`), and the start-up check that names offers without one.

Every sellable Price (amount > 0) of a mode has the lookup key `wopr_<bundle>_<tier>_<period>`.
Stripe is asked for those keys (`GET /v1/prices?lookup_keys[]=...`, ten per request):

- found, active, and the same amount, currency and interval: its id is stored on our row;
- found but different (the catalogue's amount changed): Stripe prices are immutable, so a new
  price is created with `transfer_lookup_key=true`, which moves the key to it. Subscribers
  keep the price they bought; new checkouts use the new one;
- missing: the bundle's Product (id `wopr_<bundle>`, fetched or created) and the Price are
  created.

Creates carry an Idempotency-Key derived from what is created (mode, key, amount, currency,
interval), so a lost answer retried makes nothing twice; a rerun finds everything by its key
and creates nothing. `dry_run` only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from django.db import DatabaseError

from billing.checkout import stripe_client
from billing.models import Price, StripeMode
from billing.stripe_sync import stripe_error_text
from billing.webhooks import stripe_api_key

LOOKUP_KEYS_PER_REQUEST = 10  # Stripe's limit for `lookup_keys`


class PriceSyncError(Exception):
    """The mode has no key, or Stripe refused; the message is safe to print."""


@dataclass(frozen=True)
class PriceSyncLine:
    """What was done (or, in a dry run, would be done) for one Price."""

    offer: str
    lookup_key: str
    action: str  # unchanged | stored | created | replaced
    stripe_price_id: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.offer:<28} {self.lookup_key:<34} {self.action:<10} {self.stripe_price_id}"
        return f"{text} ({self.detail})" if self.detail else text


def price_lookup_key(price: Price) -> str:
    return f"wopr_{price.bundle.slug}_{price.tier.slug}_{price.period}"


def _interval(price: Price) -> str:
    return "year" if price.period == "yearly" else "month"


def _offer(price: Price) -> str:
    return f"{price.bundle.slug}/{price.tier.slug}/{price.period}"


def prices_sync(*, mode: str, dry_run: bool = False) -> list[PriceSyncLine]:
    """Match or create the Stripe price of every sellable Price of `mode`."""
    if not stripe_api_key(livemode=mode == StripeMode.LIVE):
        raise PriceSyncError(f"STRIPE_{mode.upper()}_SECRET_KEY is not set")
    prices = list(
        Price.objects.filter(mode=mode, amount_cents__gt=0)
        .select_related("bundle", "tier")
        .order_by("bundle__slug", "tier__number", "period")
    )
    client = stripe_client(mode)
    try:
        found = _prices_by_lookup_key(client, [price_lookup_key(p) for p in prices])
        return [_price_sync(client, price, found, dry_run=dry_run) for price in prices]
    except stripe.StripeError as error:
        raise PriceSyncError(f"Stripe refused: {stripe_error_text(error)}") from error


def _prices_by_lookup_key(client: stripe.StripeClient, keys: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(0, len(keys), LOOKUP_KEYS_PER_REQUEST):
        batch = keys[start : start + LOOKUP_KEYS_PER_REQUEST]
        listing = client.v1.prices.list(
            params={"lookup_keys": batch, "limit": LOOKUP_KEYS_PER_REQUEST}
        )
        found.update({price.lookup_key: price for price in listing.data if price.lookup_key})
    return found


def _same(price: Price, stripe_price: Any) -> bool:
    recurring = stripe_price.get("recurring") or {}
    return bool(
        stripe_price.get("active")
        and stripe_price.get("unit_amount") == price.amount_cents
        and stripe_price.get("currency") == price.currency.lower()
        and recurring.get("interval") == _interval(price)
        and (recurring.get("interval_count") or 1) == 1
    )


def _price_sync(
    client: stripe.StripeClient, price: Price, found: dict[str, Any], *, dry_run: bool
) -> PriceSyncLine:
    key = price_lookup_key(price)
    existing = found.get(key)
    if existing is not None and _same(price, existing):
        if existing.id == price.stripe_price_id:
            return PriceSyncLine(_offer(price), key, "unchanged", existing.id)
        if not dry_run:
            Price.objects.filter(pk=price.pk).update(stripe_price_id=existing.id)
        return PriceSyncLine(_offer(price), key, "stored", existing.id, _was(price))
    action = "created" if existing is None else "replaced"
    detail = "" if existing is None else f"Stripe had {_describe(existing)} as {existing.id}"
    if dry_run:
        return PriceSyncLine(_offer(price), key, f"would be {action}", "", detail)
    created = _price_create(client, price, transfer=existing is not None)
    Price.objects.filter(pk=price.pk).update(stripe_price_id=created.id)
    return PriceSyncLine(_offer(price), key, action, created.id, detail)


def _was(price: Price) -> str:
    return f"was {price.stripe_price_id}" if price.stripe_price_id else ""


def _describe(stripe_price: Any) -> str:
    recurring = stripe_price.get("recurring") or {}
    state = "" if stripe_price.get("active") else "inactive "
    amount = f"{stripe_price.get('unit_amount')} {stripe_price.get('currency')}"
    return f"{state}{amount}/{recurring.get('interval', '?')}"


def _price_create(client: stripe.StripeClient, price: Price, *, transfer: bool) -> Any:
    """Create the Stripe price of `price` (its Product first when Stripe has none)."""
    key = price_lookup_key(price)
    product = _product_ensure(client, price)
    interval = _interval(price)
    idempotency = f"wopr-price-{price.mode}-{key}-{price.amount_cents}-{price.currency}-{interval}"
    params: dict[str, Any] = {
        "product": product,
        "currency": price.currency.lower(),
        "unit_amount": price.amount_cents,
        "recurring": {"interval": interval},
        "lookup_key": key,
        "metadata": {
            "wopr_bundle": price.bundle.slug,
            "wopr_tier": price.tier.slug,
            "wopr_period": price.period,
        },
    }
    if transfer:
        params["transfer_lookup_key"] = True
    return client.v1.prices.create(
        params=params,  # type: ignore[arg-type]
        options={"idempotency_key": idempotency},
    )


def _product_ensure(client: stripe.StripeClient, price: Price) -> str:
    """The bundle's Product id (`wopr_<bundle>`), created once when Stripe has none."""
    product_id = f"wopr_{price.bundle.slug}"
    try:
        return client.v1.products.retrieve(product_id).id
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise
    created = client.v1.products.create(
        params={
            "id": product_id,
            "name": price.bundle.name,
            "metadata": {"wopr_bundle": price.bundle.slug},
        },
        options={"idempotency_key": f"wopr-product-{price.mode}-{product_id}"},
    )
    return created.id


# --- the start-up check ------------------------------------------------------------------------


def offers_without_stripe_price(*, mode: str) -> list[str]:
    """The active bundles' sellable offers of `mode` that have no Stripe price id
    ("bundle/tier/period"); empty when the catalogue tables do not exist yet."""
    try:
        rows = (
            Price.objects.filter(
                mode=mode, amount_cents__gt=0, bundle__active=True, stripe_price_id=""
            )
            .select_related("bundle", "tier")
            .order_by("bundle__slug", "tier__number", "period")
        )
        return [_offer(price) for price in rows]
    except DatabaseError:  # before the first migrate: nothing to say yet
        return []
