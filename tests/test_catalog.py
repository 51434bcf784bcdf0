"""The catalogue: billing/data/catalog.json, loaded by the data migration and `load_catalog`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from billing.catalog import CATALOG_PATH, reserved_beacon_names, server_size
from billing.models import Bundle, Price, Tier

pytestmark = pytest.mark.django_db

CATALOG = json.loads(CATALOG_PATH.read_text())
SHARED_CATALOG = Path(__file__).resolve().parents[2] / "shared" / "catalog.json"
PERIODS = ("monthly", "yearly")
MODES = ("test", "live")


def snapshot() -> dict[str, list[dict]]:
    """Every catalogue row, every field."""
    return {
        model.__name__: [model_to_dict(row) for row in model.objects.order_by("pk")]
        for model in (Bundle, Tier, Price)
    }


def test_the_migration_loaded_every_bundle_with_its_modules():
    bundles = {bundle.slug: bundle for bundle in Bundle.objects.all()}

    assert set(bundles) == set(CATALOG["bundles"])
    for slug, spec in CATALOG["bundles"].items():
        bundle = bundles[slug]
        assert (bundle.name, bundle.kind, bundle.min_size) == (
            spec["name"],
            spec["kind"],
            spec["min_size"],
        )
        assert bundle.modules == spec["modules"]
    assert len(bundles["enterprise"].modules) == len(CATALOG["bundles"]["enterprise"]["modules"])
    assert len(bundles["enterprise"].modules) > len(bundles["starter"].modules)


def test_the_migration_loaded_every_tier_with_its_limits():
    tiers = {tier.slug: tier for tier in Tier.objects.all()}

    assert set(tiers) == set(CATALOG["tiers"])
    for slug, limits in CATALOG["tiers"].items():
        tier = tiers[slug]
        assert tier.number == int(slug.removeprefix("t"))
        assert {name: getattr(tier, name) for name in limits} == limits


def test_every_offer_has_a_price_per_period_and_mode():
    offers = sum(len(spec["monthly_price_cents"]) for spec in CATALOG["bundles"].values())

    assert Price.objects.count() == offers * len(PERIODS) * len(MODES)
    for slug, spec in CATALOG["bundles"].items():
        for tier, monthly in spec["monthly_price_cents"].items():
            for mode in MODES:
                price = Price.objects.get(
                    bundle__slug=slug, tier__slug=tier, period="monthly", mode=mode
                )
                assert price.amount_cents == (monthly or 0)


def test_a_yearly_price_is_ten_monthly_prices():
    monthly = {
        (p.bundle_id, p.tier_id, p.mode): p.amount_cents
        for p in Price.objects.filter(period="monthly")
    }
    yearly = {
        (p.bundle_id, p.tier_id, p.mode): p.amount_cents
        for p in Price.objects.filter(period="yearly")
    }

    assert set(yearly) == set(monthly)
    assert yearly == {key: 10 * amount for key, amount in monthly.items()}
    starter = Price.objects.get(
        bundle__slug="starter", tier__slug="t1", period="yearly", mode="test"
    )
    assert starter.amount_cents == 10 * CATALOG["bundles"]["starter"]["monthly_price_cents"]["t1"]


def test_enterprise_t3_is_custom_priced_and_not_sellable():
    prices = Price.objects.filter(bundle__slug="enterprise", tier__slug="t3")

    assert prices.count() == len(PERIODS) * len(MODES)
    for price in prices:
        assert price.amount_cents == 0
        assert price.sellable is False
    assert Price.objects.get(
        bundle__slug="enterprise", tier__slug="t2", period="monthly", mode="live"
    ).sellable


def test_load_catalog_twice_changes_nothing():
    before = snapshot()

    first, second = io.StringIO(), io.StringIO()
    call_command("load_catalog", stdout=first)
    after_first = snapshot()
    call_command("load_catalog", stdout=second)
    after_second = snapshot()

    assert after_first == before
    assert after_second == before
    assert "loaded: 0 created," in first.getvalue()
    assert "loaded: 0 created," in second.getvalue()


def test_load_catalog_restores_a_drifted_amount_and_keeps_the_stripe_price_id():
    price = Price.objects.get(
        bundle__slug="starter", tier__slug="t2", period="monthly", mode="test"
    )
    expected = price.amount_cents
    Price.objects.filter(pk=price.pk).update(amount_cents=1, stripe_price_id="price_set_by_staff")
    count = Price.objects.count()

    call_command("load_catalog", stdout=io.StringIO())

    price.refresh_from_db()
    assert price.amount_cents == expected
    assert price.stripe_price_id == "price_set_by_staff"
    assert Price.objects.count() == count


def test_load_catalog_recreates_a_deleted_bundle():
    Bundle.objects.filter(slug="family").delete()
    out = io.StringIO()

    call_command("load_catalog", stdout=out)

    family = Bundle.objects.get(slug="family")
    offers = len(CATALOG["bundles"]["family"]["monthly_price_cents"])
    assert family.prices.count() == offers * len(PERIODS) * len(MODES)
    assert f"loaded: {1 + offers * len(PERIODS) * len(MODES)} created," in out.getvalue()


@pytest.mark.skipif(not SHARED_CATALOG.exists(), reason="../shared/ is absent (a user's clone)")
def test_the_shipped_catalogue_is_the_shared_one():
    assert json.loads(CATALOG_PATH.read_text()) == json.loads(SHARED_CATALOG.read_text())


@pytest.mark.parametrize(
    ("provider", "size", "expected"),
    [
        ("hetzner", 2, "cpx32"),
        ("hetzner", 4, "cpx52"),
        ("digitalocean", 1, "s-2vcpu-4gb"),
        ("fake", 2, "cpx32"),  # the fake provider borrows Hetzner's names
    ],
)
def test_server_size_names_the_provider_server_type(provider, size, expected):
    assert server_size(provider, size) == expected


def test_reserved_names_include_admin():
    reserved = reserved_beacon_names()

    assert "admin" in reserved
    assert reserved == frozenset(CATALOG["reserved_beacon_names"])
