"""GET /api/v1/catalog and GET /api/v1/beacon-names/<name>."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Bundle, OrderStatus, Price
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
    # provider sync (1 per configured provider) and the usable providers, once for every
    # region and size; tiers (for each bundle's available regions); bundles, their prices; tiers.
    assert len(queries) == 6
    with django_assert_max_num_queries(6):
        api.get(URL)


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
