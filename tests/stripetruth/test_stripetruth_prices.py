"""`manage.py stripe_sync_prices`: the catalogue's Stripe prices matched by lookup key or created
once, and the start-up check naming offers without one.

The Prism mock does not serve prices and products; every such request is checked against
Stripe's own spec of the same commit (tests/stripetruth/stripe_wire.py), and so is every answer
the small stand-in below gives (Stripe's example price and product, changed as Stripe would).
"""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from billing.models import Price
from tests.stripetruth.stripe_wire import WireCall, decode_brackets, stripe_fixture
from wopr.checks import check_offers_have_stripe_prices

pytestmark = pytest.mark.django_db


class StripePrices:
    """Prices and products as Stripe keeps them: a lookup key belongs to one price at a time,
    moved only by `transfer_lookup_key`; a repeated Idempotency-Key replays its answer."""

    def __init__(self, wire) -> None:
        self.prices: dict[str, dict[str, Any]] = {}
        self.products: set[str] = set()
        self.replays: dict[str, tuple[int, dict[str, Any]]] = {}
        wire.responders["GET /v1/prices"] = self.list_prices
        wire.responders["POST /v1/prices"] = self.replayed(self.create_price)
        wire.responders["GET /v1/products/wopr_starter"] = self.get_product
        wire.responders["POST /v1/products"] = self.replayed(self.create_product)

    def replayed(self, create):
        def answer(call: WireCall) -> tuple[int, dict[str, Any]]:
            if call.idempotency_key not in self.replays:
                self.replays[call.idempotency_key] = create(decode_brackets(call.form))
            return self.replays[call.idempotency_key]

        return answer

    def add(self, key: str, amount: int, interval: str = "month", active: bool = True) -> str:
        price = copy.deepcopy(stripe_fixture("price"))
        price.update(id=f"price_{len(self.prices) + 1}", lookup_key=key, active=active)
        price.update(unit_amount=amount, unit_amount_decimal=str(amount))
        price["recurring"]["interval"] = interval
        self.prices[price["id"]] = price
        return price["id"]

    def list_prices(self, call: WireCall) -> tuple[int, dict[str, Any]]:
        keys = decode_brackets(call.query).get("lookup_keys", [])
        data = [p for p in self.prices.values() if p["lookup_key"] in keys]
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/prices"}

    def create_price(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        holder = [p for p in self.prices.values() if p["lookup_key"] == form["lookup_key"]]
        if holder and form.get("transfer_lookup_key") != "true":
            message = f"A price ({holder[0]['id']}) already uses that lookup key."
            return 400, {"error": {"type": "invalid_request_error", "message": message}}
        for price in holder:
            price["lookup_key"] = None
        price_id = self.add(
            form["lookup_key"], int(form["unit_amount"]), form["recurring"]["interval"]
        )
        self.prices[price_id].update(product=form["product"], metadata=form["metadata"])
        return 200, self.prices[price_id]

    def get_product(self, call: WireCall) -> tuple[int, dict[str, Any]]:
        if "wopr_starter" in self.products:
            return 200, stripe_fixture("product", id="wopr_starter", name="Starter")
        missing = {"type": "invalid_request_error", "code": "resource_missing", "message": "No"}
        return 404, {"error": missing}

    def create_product(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.products.add(form["id"])
        return 200, stripe_fixture("product", id=form["id"], name=form["name"])


@pytest.fixture
def stripe_prices(wire) -> StripePrices:
    """Sellable in test mode: starter t1 monthly and yearly, t2 monthly (the rest free)."""
    Price.objects.exclude(bundle__slug="starter").update(amount_cents=0)
    Price.objects.filter(bundle__slug="starter", tier__slug="t3").update(amount_cents=0)
    Price.objects.filter(bundle__slug="starter", tier__slug="t2", period="yearly").update(
        amount_cents=0
    )
    return StripePrices(wire)


def sellable() -> dict[str, Price]:
    rows = Price.objects.filter(mode="test", amount_cents__gt=0).select_related("bundle", "tier")
    return {f"{p.bundle.slug}/{p.tier.slug}/{p.period}": p for p in rows}


def sync(*args: str) -> str:
    out = io.StringIO()
    call_command("stripe_sync_prices", *args, stdout=out)
    return out.getvalue()


def test_prices_are_matched_by_lookup_key_and_the_missing_created_once(wire, stripe_prices):
    offers = sellable()
    assert sorted(offers) == ["starter/t1/monthly", "starter/t1/yearly", "starter/t2/monthly"]
    same = stripe_prices.add("wopr_starter_t1_monthly", offers["starter/t1/monthly"].amount_cents)
    stale = stripe_prices.add("wopr_starter_t1_yearly", 1, interval="year")

    printed = sync()

    now = {offer: price.stripe_price_id for offer, price in sellable().items()}
    assert now["starter/t1/monthly"] == same
    assert now["starter/t1/yearly"] not in ("", stale)
    assert now["starter/t2/monthly"].startswith("price_")
    assert "stored" in printed and "replaced" in printed and "created" in printed
    creates = wire.to("POST", "/v1/prices")
    assert [c.param("lookup_key") for c in creates] == [
        "wopr_starter_t1_yearly",
        "wopr_starter_t2_monthly",
    ]
    assert [c.param("transfer_lookup_key") for c in creates] == ["true", None]
    yearly = creates[0]
    assert yearly.param("recurring[interval]") == "year"
    assert yearly.param("unit_amount") == str(offers["starter/t1/yearly"].amount_cents)
    assert yearly.param("product") == "wopr_starter"
    assert yearly.param("metadata[wopr_tier]") == "t1"
    assert all(c.idempotency_key.startswith("wopr-price-test-") for c in creates)
    assert len(wire.to("POST", "/v1/products")) == 1
    assert wire.problems() == []
    posts = len(wire.to("POST", "/"))

    again = sync()

    assert len(wire.to("POST", "/")) == posts  # nothing created twice
    assert again.count("unchanged") == 3
    assert {o: p.stripe_price_id for o, p in sellable().items()} == now


def test_a_create_whose_answer_was_lost_is_replayed_not_repeated(wire, stripe_prices):
    Price.objects.filter(mode="test", amount_cents__gt=0).exclude(tier__slug="t2").update(
        amount_cents=0
    )
    sync()
    first = wire.to("POST", "/v1/prices")[-1]
    Price.objects.filter(mode="test").update(stripe_price_id="")  # as if the answer was lost

    sync()

    second = wire.to("POST", "/v1/prices")[-1]
    assert second.idempotency_key == first.idempotency_key
    assert second.body["id"] == first.body["id"]
    assert len(stripe_prices.prices) == 1


def test_a_dry_run_changes_nothing(wire, stripe_prices):
    printed = sync("--dry-run")

    assert "would be created" in printed
    assert [c.method for c in wire.calls] == ["GET"]
    assert all(price.stripe_price_id == "" for price in sellable().values())


def test_a_missing_key_or_a_refusal_exits_non_zero_saying_why(wire, stripe_prices, settings):
    settings.STRIPE_LIVE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_LIVE_SECRET_KEY is not set"):
        sync("--mode", "live")
    assert wire.calls == []
    refusal = {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}
    wire.answer("GET /v1/prices", refusal, status=401)
    with pytest.raises(CommandError, match="Stripe refused"):
        sync()


def test_the_start_up_check_names_offers_without_a_stripe_price(wire, stripe_prices):
    [warning] = check_offers_have_stripe_prices()

    assert warning.id == "wopr.W130"
    assert "starter/t1/monthly" in warning.msg and "starter/t2/monthly" in warning.msg
    assert "stripe_sync_prices" in warning.hint
    sync()
    assert check_offers_have_stripe_prices() == []
