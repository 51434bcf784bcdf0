"""End to end with a real OpenID Connect provider on loopback (panva's oidc-provider, laid out
as Authentik's; tests/oidc_provider.py): a customer signs in with the code flow, and the access
token the provider issues lists their Beacons, found by the verified e-mail on first use."""

from __future__ import annotations

import pytest

from billing.customer_auth import oidc_keys_forget
from billing.models import Customer
from tests.factories import BeaconFactory, CustomerFactory
from tests.oidc_provider import OidcAccount, tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def real_provider(oidc_provider, settings):
    settings.OIDC_ISSUER = oidc_provider.issuer.rstrip("/")
    settings.OIDC_API_AUDIENCE = oidc_provider.audience
    oidc_keys_forget()
    yield oidc_provider
    oidc_keys_forget()


def test_a_token_from_the_provider_lists_the_customers_beacons(client, real_provider):
    beacon = BeaconFactory(order__customer=CustomerFactory(email="grace@example.com"))
    BeaconFactory(order__customer=CustomerFactory(email="someone@example.com"))
    grace = OidcAccount(sub="selfservice-grace", email="grace@example.com", name="Grace")
    access = tokens(real_provider, account=grace, client=real_provider.customer).access_token

    response = client.get("/api/v1/me/beacons", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert response.status_code == 200, response.content
    assert [listed["id"] for listed in response.json()["beacons"]] == [str(beacon.pk)]
    assert Customer.objects.get(oidc_subject="selfservice-grace").email == "grace@example.com"


def test_the_id_token_is_not_an_access_token_for_the_api(client, real_provider):
    """Its audience is the client id, not the API's: refused."""
    hopper = OidcAccount(sub="selfservice-hopper", email="hopper@example.com")
    got = tokens(real_provider, account=hopper, client=real_provider.customer)
    response = client.get("/api/v1/me/beacons", HTTP_AUTHORIZATION=f"Bearer {got.id_token}")
    assert response.status_code == 401


def test_an_unverified_address_at_the_provider_gets_no_beacons(client, real_provider):
    BeaconFactory(order__customer=CustomerFactory(email="eve@example.com"))
    eve = OidcAccount(sub="selfservice-eve", email="eve@example.com", email_verified=False)
    access = tokens(real_provider, account=eve, client=real_provider.customer).access_token
    response = client.get("/api/v1/me/beacons", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert response.status_code == 403
