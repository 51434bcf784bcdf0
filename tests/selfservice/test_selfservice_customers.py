"""Who a sign-in is, and what they see: a verified e-mail claims the unverified orders made with
it; a customer sees and touches only their own Beacons (another's is 404, like none at all)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Customer, Order, Tier
from provisioning.models import Beacon
from tests.factories import BeaconFactory, CustomerFactory

pytestmark = pytest.mark.django_db

LIST = "/api/v1/me/beacons"


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(beacon["name"] for beacon in response.json()["beacons"])


def test_first_sign_in_merges_the_unverified_customers_of_that_address(client, bearer):
    first = BeaconFactory(order__customer=CustomerFactory(email="ada@example.com"))
    second = BeaconFactory(order__customer=CustomerFactory(email="ADA@Example.com"))
    BeaconFactory(order__customer=CustomerFactory(email="bob@example.com"))

    assert names(client.get(LIST, **bearer())) == sorted([first.name, second.name])

    ada = Customer.objects.get(oidc_subject="subject-ada")
    assert ada.verified
    assert set(Order.objects.filter(customer=ada)) == {first.order, second.order}
    assert set(Beacon.objects.filter(owner=ada)) == {first, second}
    # The orders keep their own e-mail and Stripe customer.
    assert Order.objects.get(pk=second.order.pk).email == "ADA@Example.com"
    assert Customer.objects.filter(email__iexact="ada@example.com", email_verified_at=None).count()


def test_later_sign_ins_are_found_by_subject_alone(client, bearer):
    beacon = BeaconFactory(order__customer=CustomerFactory(email="ada@example.com"))
    assert names(client.get(LIST, **bearer())) == [beacon.name]
    # No e-mail in the token now (or a changed one): the subject decides.
    assert names(client.get(LIST, **bearer(email=None, email_verified=None))) == [beacon.name]
    assert names(client.get(LIST, **bearer(email="other@example.com"))) == [beacon.name]
    assert Customer.objects.filter(email_verified_at__isnull=False).count() == 1


def test_an_unverified_email_claim_gets_nothing(client, bearer):
    beacon = BeaconFactory(order__customer=CustomerFactory(email="ada@example.com"))
    response = client.get(LIST, **bearer(email_verified=False))
    assert response.status_code == 403
    assert client.get(LIST, **bearer(email_verified="true")).status_code == 403  # not a boolean
    customer = Customer.objects.get(pk=beacon.owner_id)
    assert not customer.verified and customer.oidc_subject == ""


def test_an_existing_verified_customer_is_used_and_takes_the_unverified_orders(client, bearer):
    verified = CustomerFactory(email="Ada@example.com", email_verified_at=timezone.now())
    own = BeaconFactory(order__customer=verified)
    stray = BeaconFactory(order__customer=CustomerFactory(email="ada@example.com"))
    assert names(client.get(LIST, **bearer())) == sorted([own.name, stray.name])
    verified.refresh_from_db()
    assert verified.oidc_subject == "subject-ada"
    assert Customer.objects.filter(email_verified_at__isnull=False).count() == 1


def test_a_new_address_makes_a_verified_customer_with_no_beacons(client, bearer):
    BeaconFactory(order__customer=CustomerFactory(email="bob@example.com"))
    assert names(client.get(LIST, **bearer(email="new@example.com"))) == []
    assert Customer.objects.get(oidc_subject="subject-ada").email == "new@example.com"


def test_the_list_shows_the_subscription_and_a_pending_tier_change(client, bearer):
    period_end = timezone.now().replace(microsecond=0) + timezone.timedelta(days=20)
    beacon = BeaconFactory(
        order__customer=CustomerFactory(email="ada@example.com"),
        order__subscription_status="active",
        order__subscription_period_end=period_end,
        order__subscription_cancel_at_period_end=True,
        order__tier_change_to=Tier.objects.get(slug="t2"),
    )
    (listed,) = client.get(LIST, **bearer()).json()["beacons"]
    assert listed["id"] == str(beacon.pk)
    assert listed["fqdn"] == beacon.fqdn
    assert (listed["bundle"], listed["tier"], listed["period"]) == ("starter", "t1", "monthly")
    assert listed["subscription_status"] == "active"
    assert listed["cancel_at_period_end"] is True
    assert listed["pending_tier_change"] == "t2"
    assert listed["current_period_end"].startswith(period_end.strftime("%Y-%m-%dT%H:%M:%S"))


def test_the_list_costs_the_same_queries_for_one_beacon_or_many(client, bearer):
    ada = CustomerFactory(email="ada@example.com")
    BeaconFactory(order__customer=ada)
    client.get(LIST, **bearer())  # the first sign-in merges; count the steady state
    with CaptureQueriesContext(connection) as one:
        assert len(names(client.get(LIST, **bearer()))) == 1
    for _ in range(6):
        BeaconFactory(order__customer=ada, order__tier_change_to=Tier.objects.get(slug="t3"))
    with CaptureQueriesContext(connection) as seven:
        assert len(names(client.get(LIST, **bearer()))) == 7
    assert len(seven) == len(one) <= 4, [query["sql"] for query in seven]


@pytest.mark.parametrize("action", ["billing-portal", "cancel", "welcome"])
def test_another_customers_beacon_is_404_like_a_missing_one(client, bearer, action):
    BeaconFactory(order__customer=CustomerFactory(email="ada@example.com"))
    theirs = BeaconFactory(order__customer=CustomerFactory(email="bob@example.com"))
    url = f"/api/v1/me/beacons/{theirs.pk}/{action}"
    other = client.post(url, "{}", content_type="application/json", **bearer())
    missing = client.post(
        f"/api/v1/me/beacons/{uuid.uuid4()}/{action}", "{}", "application/json", **bearer()
    )
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    if action == "cancel":
        assert client.delete(url, **bearer()).status_code == 404
    theirs.order.refresh_from_db()
    assert theirs.order.customer.email == "bob@example.com"
    assert not theirs.order.subscription_cancel_at_period_end


def test_each_customer_has_their_own_request_budget(client, bearer, settings):
    settings.THROTTLE_SELFSERVICE = "2/min"
    ada, grace = bearer(), bearer(sub="subject-grace", email="grace@example.com")
    assert [client.get(LIST, **ada).status_code for _ in range(2)] == [200, 200]
    refused = client.get(LIST, **ada)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert client.get(LIST, **grace).status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("unverified", [0, 2])
def test_concurrent_first_sign_ins_make_one_verified_customer(unverified):
    """Five first requests at once (a browser opening tabs): one verified Customer, all of the
    address's orders on it, whichever request won. The unique verified e-mail and the row locks
    decide the race."""
    import threading

    from django.db import connection

    from billing.selfservice import customer_sign_in

    beacons = [
        BeaconFactory(order__customer=CustomerFactory(email="ada@example.com"))
        for _ in range(unverified)
    ]
    barrier = threading.Barrier(5)
    found: list[int | None] = []

    def sign_in() -> None:
        barrier.wait()
        try:
            customer = customer_sign_in(
                subject="subject-ada", email="Ada@Example.com", email_verified=True
            )
            found.append(customer.pk if customer else None)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign_in) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (verified,) = Customer.objects.filter(email_verified_at__isnull=False)
    assert found == [verified.pk] * 5
    assert {beacon.order.pk for beacon in beacons} == set(
        Order.objects.filter(customer=verified).values_list("pk", flat=True)
    )


def test_an_email_claim_never_takes_over_a_customer_bound_to_another_subject(client, bearer):
    """Another provider account claiming the victim's address as verified gets 403, not the
    victim's Beacons; the unverified orders of that address stay where they are; the victim
    still signs in."""
    victim = CustomerFactory(
        email="ada@example.com", email_verified_at=timezone.now(), oidc_subject="subject-ada"
    )
    own = BeaconFactory(order__customer=victim)
    stray = BeaconFactory(order__customer=CustomerFactory(email="ADA@example.com"))

    refused = client.get(LIST, **bearer(sub="subject-mallory"))

    assert refused.status_code == 403
    assert "contact support" in refused.json()["error"]["message"]
    assert "ada@example.com" not in refused.content.decode().lower()
    assert not Customer.objects.filter(oidc_subject="subject-mallory").exists()
    assert Beacon.objects.get(pk=stray.pk).owner_id == stray.owner_id != victim.pk
    assert names(client.get(LIST, **bearer())) == [own.name]


def test_the_loser_of_a_first_sign_in_race_is_refused_a_winner_of_another_subject(monkeypatch):
    """The race path (the unique verified e-mail refused our row; the winner's row is read)
    applies the same rule: a winner bound to another subject is not handed out."""
    from django.db import IntegrityError

    from billing import selfservice

    CustomerFactory(
        email="ada@example.com", email_verified_at=timezone.now(), oidc_subject="subject-ada"
    )

    def lost_race(email: str) -> Customer:
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(selfservice, "_verified_customer", lost_race)
    with pytest.raises(selfservice.SignInRefused):
        selfservice.customer_sign_in(
            subject="subject-mallory", email="Ada@example.com", email_verified=True
        )
    winner = selfservice.customer_sign_in(
        subject="subject-other", email="new@example.com", email_verified=True
    )
    assert winner is None  # no verified row of that address: nothing to hand out
