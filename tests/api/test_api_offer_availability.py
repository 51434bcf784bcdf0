"""A server size missing at the only provider: the catalogue shows what needs it unavailable,
checkout refuses it with a clear 400, and everything else stays on sale."""

from __future__ import annotations

import pytest

from billing.models import Order
from provisioning.models import Provider

pytestmark = pytest.mark.django_db

CATALOG = "/api/v1/catalog"
CHECKOUT = "/api/v1/checkout"
REGIONS = ["eu-central", "us-east", "us-west"]


@pytest.fixture
def size_3_missing():
    """What a health sweep records when the provider no longer offers size 3 (cpx42)."""
    Provider.objects.update_or_create(
        name="fake",
        defaults={"kind": "fake", "health_status": "degraded", "unavailable_sizes": ["cpx42"]},
    )


def bundle(body: dict, slug: str) -> dict:
    return next(item for item in body["bundles"] if item["slug"] == slug)


def test_the_catalogue_says_where_each_bundle_and_tier_can_be_bought(api):
    body = api.get(CATALOG).json()

    assert bundle(body, "starter")["available_regions"] == {
        "t1": REGIONS,
        "t2": REGIONS,
        "t3": REGIONS,
    }


def test_a_missing_size_takes_only_the_offers_needing_it_off_the_catalogue(api, size_3_missing):
    body = api.get(CATALOG).json()

    assert [region["available"] for region in body["regions"]] == [True, True, True]
    starter = bundle(body, "starter")  # sizes 1, 2, 3 for t1, t2, t3
    assert starter["available_regions"] == {"t1": REGIONS, "t2": REGIONS, "t3": []}
    professional = bundle(body, "professional")  # size 3 at least
    assert professional["available_regions"] == {"t1": [], "t2": [], "t3": []}
    enterprise = bundle(body, "enterprise")  # size 4
    assert enterprise["available_regions"]["t1"] == REGIONS


def test_checkout_refuses_an_offer_whose_size_is_missing_with_a_clear_400(
    post_json, checkout_payload, settings, size_3_missing
):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_123"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # never reached: validation fails first

    response = post_json(CHECKOUT, checkout_payload(bundle="starter", tier="t3"))

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["tier"]
    assert "cannot be bought in this region right now" in error["fields"]["tier"][0]
    assert Order.objects.count() == 0


def test_checkout_of_an_offer_whose_size_is_there_goes_on(
    post_json, checkout_payload, size_3_missing
):
    # Valid in every field: it reaches the payment step (no Stripe key here: 503, not 400).
    response = post_json(CHECKOUT, checkout_payload(bundle="starter", tier="t2"))

    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "checkout_disabled"
