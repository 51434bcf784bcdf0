"""GET /api/v1/catalog and GET /api/v1/beacon-names/<name>."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.catalog_cache import catalog_forget, catalog_stamp
from billing.models import Bundle, OrderStatus, Price, Tier
from provisioning.models import HealthStatus, Provider
from tests.factories import BeaconFactory, OrderFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/catalog"


def test_catalog_lists_bundles_tiers_prices_and_regions(api):
    response = api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "test"
    assert len(body["bundles"]) == Bundle.objects.count() == 26
    starter = next(bundle for bundle in body["bundles"] if bundle["slug"] == "starter")
    assert starter["name"] == "Starter"
    assert starter["kind"] == "sovereign"
    assert starter["apps"] == Bundle.objects.get(slug="starter").modules
    assert starter["prices"][:2] == [
        {"tier": "t1", "period": "monthly", "amount": 1599, "currency": "usd", "sellable": True},
        {"tier": "t1", "period": "yearly", "amount": 15990, "currency": "usd", "sellable": True},
    ]
    assert len(starter["prices"]) == 6
    enterprise = next(bundle for bundle in body["bundles"] if bundle["slug"] == "enterprise")
    t3 = [price for price in enterprise["prices"] if price["tier"] == "t3"]
    assert {price["sellable"] for price in t3} == {False}
    assert body["tiers"][0] == {
        "slug": "t1",
        "number": 1,
        "storage_gb": 50,
        "ram_gb": 4,
        "max_users": 5,
        "backup_days": 7,
    }
    assert body["regions"] == [
        {"slug": "eu-central", "available": True},
        {"slug": "us-east", "available": True},
        {"slug": "us-west", "available": True},
    ]


def test_catalog_shows_the_prices_of_the_active_mode(api, settings):
    Price.objects.filter(
        bundle__slug="starter", tier__slug="t1", period="monthly", mode="live"
    ).update(amount_cents=1799)
    settings.STRIPE_LIVE_MODE = True

    body = api.get(URL).json()

    starter = next(bundle for bundle in body["bundles"] if bundle["slug"] == "starter")
    assert body["mode"] == "live"
    assert starter["prices"][0]["amount"] == 1799


def test_inactive_bundles_are_not_offered(api):
    Bundle.objects.filter(slug="starter").update(active=False)

    slugs = [bundle["slug"] for bundle in api.get(URL).json()["bundles"]]

    assert "starter" not in slugs


def test_a_region_without_a_healthy_provider_is_unavailable(api):
    Provider.objects.update_or_create(
        name="fake", defaults={"kind": "fake", "health_status": HealthStatus.CRITICAL}
    )

    regions = api.get(URL).json()["regions"]

    assert {region["available"] for region in regions} == {False}


def test_catalog_is_cacheable_and_answers_304_to_its_etag(api):
    first = api.get(URL)

    assert first["Cache-Control"] == "public, max-age=60"
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = api.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert api.get(URL, HTTP_IF_NONE_MATCH='"stale", ' + etag).status_code == 304
    assert api.get(URL, HTTP_IF_NONE_MATCH='"stale"').status_code == 200


def test_the_etag_changes_with_the_catalogue(api):
    before = api.get(URL)["ETag"]
    Price.objects.filter(bundle__slug="starter", tier__slug="t1", mode="test").update(
        amount_cents=1699
    )

    after = api.get(URL, HTTP_IF_NONE_MATCH=before)

    assert after.status_code == 200
    assert after["ETag"] != before


def test_catalog_query_count_is_pinned(api, django_assert_max_num_queries):
    api.get(URL)  # the provider rows exist from here on
    with CaptureQueriesContext(connection) as queries:
        api.get(URL)
    # Issue 10: the catalogue is rendered once per version (billing.catalog_cache); a request
    # reads the version stamp only. (Before: provider sync, usable providers, tiers, bundles,
    # their prices, tiers: 6 on every request.)
    assert len(queries) == 1
    with django_assert_max_num_queries(1):
        api.get(URL)


def test_a_catalogue_built_afresh_is_at_most_8_queries(api, django_assert_max_num_queries):
    api.get(URL)
    catalog_forget()
    # the version stamp; provider sync, the usable providers, tiers, bundles, prices, tiers; the
    # stamp again (nothing was written meanwhile, so the body is kept for that version)
    with django_assert_max_num_queries(8):
        assert api.get(URL).status_code == 200


def test_a_cached_catalogue_and_its_304_build_nothing(api, monkeypatch):
    first = api.get(URL)

    def unexpected_build():
        raise AssertionError("the catalogue was built again")

    monkeypatch.setattr("billing.api.catalog_public", unexpected_build)
    again = api.get(URL)
    not_modified = api.get(URL, HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.content == first.content
    assert again["ETag"] == first["ETag"]
    assert again["Content-Type"] == "application/json"
    assert not_modified.status_code == 304


@pytest.mark.parametrize(
    "write",
    [
        lambda: Bundle.objects.filter(slug="starter").update(name="Starter+"),
        lambda: Tier.objects.filter(slug="t1").update(max_users=6),
        lambda: Price.objects.filter(mode="test").update(amount_cents=1),
        lambda: Price.objects.filter(bundle__slug="starter", mode="live").delete(),
        lambda: Provider.objects.update_or_create(name="fake", defaults={"weight": 7}),
        lambda: Provider.objects.filter(name="fake").update(unavailable_sizes=["cx22"]),
    ],
    ids=["bundle", "tier", "price", "price-delete", "provider-save", "provider-update"],
)
def test_every_write_to_what_the_catalogue_shows_moves_its_version(api, write):
    api.get(URL)  # the provider rows exist from here on
    before = catalog_stamp()

    write()

    assert before is not None
    assert catalog_stamp() != before


def test_a_provider_turning_critical_reaches_the_cached_catalogue_at_once(api):
    before = api.get(URL)
    assert {region["available"] for region in before.json()["regions"]} == {True}

    Provider.objects.filter(name="fake").update(health_status=HealthStatus.CRITICAL)
    after = api.get(URL, HTTP_IF_NONE_MATCH=before["ETag"])

    assert after.status_code == 200
    assert {region["available"] for region in after.json()["regions"]} == {False}


# --- beacon names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("free-name", None),
        ("www", "reserved"),
        ("A1b", "invalid"),
        ("x", "invalid"),
        ("-abc", "invalid"),
        ("a" * 33, "invalid"),
        ("taken1", "taken"),
        ("held1", "taken"),
        ("gone1", None),
    ],
)
def test_beacon_name_availability(api, name, reason):
    BeaconFactory(name="taken1", order__beacon_name="taken1")
    OrderFactory(beacon_name="held1", status=OrderStatus.PENDING)
    OrderFactory(beacon_name="gone1", status=OrderStatus.EXPIRED)

    response = api.get(f"/api/v1/beacon-names/{name}")

    assert response.status_code == 200
    assert response.json() == {"name": name, "available": reason is None, "reason": reason}


def test_beacon_name_query_count_is_pinned(api, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        api.get("/api/v1/beacon-names/free-name")
