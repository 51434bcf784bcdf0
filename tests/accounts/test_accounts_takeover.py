"""No buyer can take over a user staff made: a user found by the checkout e-mail (which the buyer
typed) is adopted for sign-in only, never re-enabled nor deactivated; only users we created
follow their Beacons' lifecycle; and no buyer is ever put in a staff group."""

from __future__ import annotations

import json
import uuid

import pytest

from accounts.services import account_ensure, account_groups_sync, staff_group_names
from billing.models import Bundle, Customer
from provisioning.models import BeaconStatus
from tests.factories import BeaconFactory, CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db


def beacon_for(customer: Customer | None = None, *, modules: list[str] | None = None):
    order = OrderFactory(customer=customer or CustomerFactory())
    return BeaconFactory(
        order=order, status=BeaconStatus.PROVISIONING, modules=modules or ["nextcloud"]
    )


def patches(fake) -> list[dict]:
    return [json.loads(r.content) for r in fake.writes() if r.method == "PATCH"]


def staff_group(fake, name: str, *, members: set[int]) -> dict:
    """A group staff made in Authentik (not through our API calls)."""
    pk = str(uuid.uuid4())
    fake.groups[pk] = {
        "pk": pk, "num_pk": 1, "name": name, "is_superuser": False, "attributes": {},
        "users": set(members),
    }  # fmt: skip
    return fake.groups[pk]


def set_status(beacon, status: str) -> None:
    type(beacon).objects.filter(pk=beacon.pk).update(status=status)
    beacon.refresh_from_db()


def test_a_disabled_staff_user_with_the_buyers_email_is_not_re_enabled(authentik):
    beacon = beacon_for()
    former = authentik.add_user("ex-employee", email=beacon.owner.email, is_active=False)

    account = account_ensure(beacon=beacon)

    assert account.user_pk == str(former["pk"]) and account.new is False
    assert authentik.users[former["pk"]]["is_active"] is False
    assert "left inactive" in account.message
    assert all("is_active" not in body for body in patches(authentik))


def test_an_adopted_staff_user_is_not_deactivated_when_the_beacon_is_gone(authentik):
    beacon = beacon_for()
    staff = authentik.add_user("staffer", email=beacon.owner.email)
    account_ensure(beacon=beacon)
    set_status(beacon, BeaconStatus.DECOMMISSIONED)

    synced = account_groups_sync(beacon=beacon)

    assert authentik.users[staff["pk"]]["is_active"] is True
    assert authentik.user_group_names(staff["pk"]) == set()  # our groups still follow
    assert "left active" in synced.message
    assert all("is_active" not in body for body in patches(authentik))


def test_a_user_we_created_is_deactivated_then_re_enabled(authentik):
    customer = CustomerFactory()
    gone = beacon_for(customer)
    made = account_ensure(beacon=gone)
    set_status(gone, BeaconStatus.DECOMMISSIONED)

    synced = account_groups_sync(beacon=gone)
    assert authentik.users[int(made.user_pk)]["is_active"] is False
    assert "deactivated" in synced.message
    again = account_ensure(beacon=beacon_for(customer))

    assert again.user_pk == made.user_pk and "re-activated" in again.message
    assert authentik.users[int(made.user_pk)]["is_active"] is True
    assert patches(authentik) == [{"is_active": False}, {"is_active": True}]


def test_a_module_named_like_a_staff_group_is_never_joined(authentik, settings):
    settings.OIDC_STAFF_GROUPS = "wopr-support=support, wopr-owners=owner"
    beacon = beacon_for(modules=["owners", "nextcloud"])

    account = account_ensure(beacon=beacon)

    pk = int(account.user_pk)
    assert authentik.user_group_names(pk) == {"wopr-starter", "wopr-nextcloud"}
    assert "wopr-owners" not in {group["name"] for group in authentik.groups.values()}


def test_a_bundle_named_like_a_staff_group_is_never_joined_nor_left(authentik, settings):
    settings.OIDC_STAFF_GROUPS = "wopr-support=support"
    beacon = beacon_for()
    Bundle.objects.filter(pk=beacon.bundle_id).update(slug="support")
    beacon.refresh_from_db()
    staff = authentik.add_user("helper", email=beacon.owner.email)
    support = staff_group(authentik, "wopr-support", members={staff["pk"]})
    buyer = authentik.add_user("buyer", attributes={"wopr_customer_id": str(beacon.owner.pk)})

    account = account_ensure(beacon=beacon)
    set_status(beacon, BeaconStatus.SUSPENDED)
    account_groups_sync(beacon=beacon)

    assert account.user_pk == str(buyer["pk"])
    assert support["users"] == {staff["pk"]}  # the buyer never joined it
    assert [r for r in authentik.writes() if support["pk"] in r.url.path] == []


def test_an_adopted_staff_member_never_leaves_a_staff_group_with_the_bundles_name(
    authentik, settings
):
    settings.OIDC_STAFF_GROUPS = "wopr-support=support"
    beacon = beacon_for()
    Bundle.objects.filter(pk=beacon.bundle_id).update(slug="support")
    beacon.refresh_from_db()
    staff = authentik.add_user("helper", email=beacon.owner.email)
    support = staff_group(authentik, "wopr-support", members={staff["pk"]})

    account_ensure(beacon=beacon)
    set_status(beacon, BeaconStatus.SUSPENDED)
    account_groups_sync(beacon=beacon)

    assert authentik.user_group_names(staff["pk"]) == {"wopr-support"}
    assert [r for r in authentik.writes() if support["pk"] in r.url.path] == []


def test_staff_group_names_are_the_left_sides_of_the_setting(settings):
    settings.OIDC_STAFF_GROUPS = "wopr-support=support,wopr-operations=operations, ,x=y"

    assert staff_group_names() == {"wopr-support", "wopr-operations", "x"}
