"""accounts.services against the fake Authentik: found by attribute, then by e-mail (adopted),
else created; never twice under retries or a lost answer; groups follow the lifecycle."""

from __future__ import annotations

import json

import pytest

from accounts.services import (
    GONE_STATUSES,
    GROUP_HOLDING_STATUSES,
    SKIPPED,
    account_ensure,
    account_groups_sync,
    account_welcome_context,
    beacon_group_names,
    username_candidates,
)
from billing.models import Customer
from fakes.authentik import API
from integrations.errors import IdentityError
from provisioning.models import BeaconStatus
from tests.factories import BeaconFactory, CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db

STARTER_GROUPS = {"wopr-starter", "wopr-nextcloud", "wopr-vaultwarden"}


def beacon_for(customer: Customer | None = None, *, status: str = BeaconStatus.PROVISIONING):
    order = OrderFactory(customer=customer or CustomerFactory())
    return BeaconFactory(order=order, status=status, modules=["nextcloud", "vaultwarden"])


def add_user_calls(fake) -> list[str]:
    return [r.url.path for r in fake.writes() if r.url.path.endswith("/add_user/")]


def test_a_new_customer_gets_one_user_with_the_bundle_and_module_groups(authentik):
    beacon = beacon_for()

    account = account_ensure(beacon=beacon)

    (user,) = authentik.users.values()
    assert account.new is True and account.user_pk == str(user["pk"])
    assert user["username"] == beacon.owner.email and user["path"] == "customers"
    assert user["attributes"] == {
        "wopr_customer_id": str(beacon.owner.pk),
        "wopr_created_for": str(beacon.pk),
    }
    assert authentik.user_group_names(user["pk"]) == STARTER_GROUPS
    assert Customer.objects.get(pk=beacon.owner.pk).authentik_user_pk == str(user["pk"])
    assert beacon_group_names(beacon) == sorted(STARTER_GROUPS)


def test_a_user_carrying_our_customer_id_is_found_not_duplicated(authentik):
    beacon = beacon_for()
    marked = authentik.add_user(
        "ada-old", email="other@example.com", attributes={"wopr_customer_id": str(beacon.owner.pk)}
    )

    account = account_ensure(beacon=beacon)

    assert (account.user_pk, account.new) == (str(marked["pk"]), False)
    assert len(authentik.users) == 1
    assert "found by customer id" in account.message


def test_a_user_with_the_same_email_is_adopted_and_marked(authentik):
    beacon = beacon_for()
    staff_made = authentik.add_user("ada", email=beacon.owner.email, attributes={"team": "x"})

    account = account_ensure(beacon=beacon)

    assert (account.user_pk, account.new) == (str(staff_made["pk"]), False)
    assert staff_made["attributes"] == {"team": "x", "wopr_customer_id": str(beacon.owner.pk)}
    assert len(authentik.users) == 1 and "adopted" in account.message


def test_a_second_customer_row_with_the_same_email_shares_the_user_without_taking_the_mark(
    authentik,
):
    first = beacon_for()
    second = beacon_for(CustomerFactory(email=first.owner.email))
    one = account_ensure(beacon=first)

    two = account_ensure(beacon=second)

    assert one.user_pk == two.user_pk and two.new is False
    (user,) = authentik.users.values()
    assert user["attributes"]["wopr_customer_id"] == str(first.owner.pk)


def test_a_lost_create_answer_makes_no_second_user_and_the_account_stays_new(authentik):
    beacon = beacon_for()
    authentik.inject(method="POST", path_prefix=f"{API}/core/users/", drop=True)

    with pytest.raises(IdentityError) as caught:
        account_ensure(beacon=beacon)
    assert caught.value.transient is True
    account = account_ensure(beacon=beacon)

    assert len(authentik.users) == 1
    assert account.new is True
    creates = [r for r in authentik.writes() if r.url.path == f"{API}/core/users/"]
    assert len(creates) == 1


def test_a_transient_failure_then_a_retry_adds_each_group_once(authentik):
    beacon = beacon_for()
    authentik.inject(method="POST", path_prefix=f"{API}/core/groups/", status=503, times=1)

    with pytest.raises(IdentityError):
        account_ensure(beacon=beacon)
    account_ensure(beacon=beacon)
    account_ensure(beacon=beacon)

    assert len(add_user_calls(authentik)) == 3
    assert len(authentik.groups) == 3 and len(authentik.users) == 1


def test_a_taken_username_gets_the_next_free_one(authentik):
    beacon = beacon_for()
    authentik.add_user(beacon.owner.email, email="someone-else@example.com")

    account_ensure(beacon=beacon)

    usernames = sorted(user["username"] for user in authentik.users.values())
    assert usernames == [beacon.owner.email, f"{beacon.owner.email}-2"]


def test_usernames_keep_to_authentiks_alphabet():
    first, second = list(username_candidates("Ada Lovelace@Example.com"))[:2]

    assert (first, second) == ("ada-lovelace@example.com", "ada-lovelace@example.com-2")


def test_without_authentik_url_nothing_is_called_and_it_says_so(settings):
    settings.AUTHENTIK_URL = ""
    beacon = beacon_for()

    account = account_ensure(beacon=beacon)
    synced = account_groups_sync(beacon=beacon)

    assert account.skipped and account.message == SKIPPED == synced.message
    assert "development" in SKIPPED
    assert Customer.objects.get(pk=beacon.owner.pk).authentik_user_pk == ""


def test_suspension_keeps_groups_another_active_beacon_needs(authentik):
    customer = CustomerFactory()
    starter = beacon_for(customer)
    other = beacon_for(customer)
    other.modules = ["nextcloud", "immich"]
    other.save()
    for beacon in (starter, other):
        account_ensure(beacon=beacon)
    pk = int(Customer.objects.get(pk=customer.pk).authentik_user_pk)
    type(starter).objects.filter(pk__in=[starter.pk, other.pk]).update(status="active")
    type(starter).objects.filter(pk=starter.pk).update(status=BeaconStatus.SUSPENDED)
    starter.refresh_from_db()

    account_groups_sync(beacon=starter)

    # wopr-starter is the bundle of both: kept; vaultwarden only the suspended one's: gone.
    assert authentik.user_group_names(pk) == {"wopr-starter", "wopr-nextcloud", "wopr-immich"}
    assert authentik.users[pk]["is_active"] is True


def test_resumption_adds_them_back_and_the_last_beacon_gone_deactivates(authentik):
    beacon = beacon_for()
    account_ensure(beacon=beacon)
    pk = int(Customer.objects.get(pk=beacon.owner.pk).authentik_user_pk)

    for status, groups, active in [
        (BeaconStatus.SUSPENDED, set(), True),
        (BeaconStatus.ACTIVE, STARTER_GROUPS, True),
        (BeaconStatus.DECOMMISSIONED, set(), False),
    ]:
        type(beacon).objects.filter(pk=beacon.pk).update(status=status)
        beacon.refresh_from_db()
        account_groups_sync(beacon=beacon)
        assert authentik.user_group_names(pk) == groups, status
        assert authentik.users[pk]["is_active"] is active, status


def test_a_new_paid_beacon_reactivates_a_deactivated_user(authentik):
    customer = CustomerFactory()
    gone = beacon_for(customer, status=BeaconStatus.DECOMMISSIONED)
    account_ensure(beacon=gone)
    account_groups_sync(beacon=gone)
    pk = int(Customer.objects.get(pk=customer.pk).authentik_user_pk)
    assert authentik.users[pk]["is_active"] is False

    account = account_ensure(beacon=beacon_for(customer))

    assert authentik.users[pk]["is_active"] is True and "re-activated" in account.message
    patches = [json.loads(r.content) for r in authentik.writes() if r.method == "PATCH"]
    assert patches == [{"is_active": False}, {"is_active": True}]


def test_a_sync_that_changes_nothing_writes_nothing(authentik):
    beacon = beacon_for(status=BeaconStatus.ACTIVE)
    account_ensure(beacon=beacon)
    writes = len(authentik.writes())

    account_groups_sync(beacon=beacon)

    assert len(authentik.writes()) == writes


def test_the_status_names_are_provisionings():
    assert set(BeaconStatus.values) >= GROUP_HOLDING_STATUSES | GONE_STATUSES


def recovery_calls(fake) -> int:
    return len([r for r in fake.requests if r.url.path.endswith("/recovery/")])


def test_the_welcome_link_is_fetched_only_when_shown_and_only_once(authentik):
    beacon = beacon_for()
    account = account_ensure(beacon=beacon)

    context = account_welcome_context(beacon=beacon, new=True, user_pk=account.user_pk)
    assert recovery_calls(authentik) == 0
    link = context["account"]["set_password_url"]

    assert link() == link() == authentik.recovery_links[int(account.user_pk)]
    assert recovery_calls(authentik) == 1
    assert link() not in repr(context)


def test_a_refused_link_falls_back_and_a_transient_failure_is_retried(authentik):
    beacon = beacon_for()
    pk = account_ensure(beacon=beacon).user_pk
    path = f"{API}/core/users/{pk}/recovery/"
    authentik.inject(method="POST", path_prefix=path, status=503, body={"detail": "down"})
    authentik.inject(
        method="POST", path_prefix=path, status=400, body={"non_field_errors": ["No flow"]}
    )

    with pytest.raises(IdentityError):
        account_welcome_context(beacon=beacon, new=True, user_pk=pk)["account"][
            "set_password_url"
        ]()
    refused = account_welcome_context(beacon=beacon, new=True, user_pk=pk)

    assert refused["account"]["set_password_url"]() == ""
    existing = account_welcome_context(beacon=beacon, new=False, user_pk=pk)
    assert existing["account"]["set_password_url"] is None
    assert account_welcome_context(beacon=beacon, new=False, user_pk="") == {"account": None}
