"""The staff roles as Django groups (wopr.roles): what each role may open, change and run in the
admin, that the groups hold exactly their permissions after every sync, and the start-up check
on OIDC_STAFF_GROUPS."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from billing.models import OrderRemedy, Price
from provisioning.models import Beacon, Provider
from tests.staff_roles import staff_client
from tests.test_admin import make_beacon, make_one_of_everything
from wopr.audit import staff_action_record
from wopr.checks import check_staff_group_roles
from wopr.models import StaffIdentity, StaffNote
from wopr.roles import (
    OPERATIONS,
    OWNER,
    ROLES,
    SUPPORT,
    roles_sync,
)

pytestmark = pytest.mark.django_db


def group_permissions(role: str) -> set[str]:
    perms = Group.objects.get(name=role).permissions.select_related("content_type")
    return {f"{p.content_type.app_label}.{p.codename}" for p in perms}


# Written out here, not read from wopr.roles, so a permission given or taken there shows here.
SUPPORT_NAMED = {
    "wopr.retry_job",
    "wopr.resend_email",
    "wopr.view_metrics",
    "wopr.add_staffnote",
}
OPERATIONS_NAMED = SUPPORT_NAMED | {
    "wopr.suspend_beacon",
    "wopr.resize_beacon",
    "wopr.restore_snapshot",
    "wopr.sweep_now",
    "provisioning.change_provider",
    "provisioning.add_fakefault",
    "provisioning.change_fakefault",
    "provisioning.delete_fakefault",
    "billing.change_order",
    "billing.change_customer",
}
OWNER_NAMED = OPERATIONS_NAMED | {
    "wopr.decommission_beacon",
    "wopr.cancel_job",
    "wopr.refund_order",
    "billing.add_bundle",
    "billing.change_bundle",
    "billing.add_tier",
    "billing.change_tier",
    "billing.add_price",
    "billing.change_price",
    "installers.add_installerrelease",
    "installers.change_installerrelease",
}
NAMED = {SUPPORT: SUPPORT_NAMED, OPERATIONS: OPERATIONS_NAMED, OWNER: OWNER_NAMED}
READ_APPS = (
    "billing",
    "provisioning",
    "backups",
    "dns",
    "documents",
    "installers",
    "wopr",
    "djstripe",
    "django_q",
)


def expected_permissions(role: str) -> set[str]:
    readable = Permission.objects.filter(
        content_type__app_label__in=READ_APPS, codename__startswith="view_"
    ).select_related("content_type")
    views = {f"{p.content_type.app_label}.{p.codename}" for p in readable}
    return views | NAMED[role]


def change_form_data(client: Client, url: str, **changes: object) -> dict[str, object]:
    """The change form's current values (as a browser would post them), with `changes`."""
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {name: value for name, value in data.items() if value not in (None, False)}
    return {**data, **changes, "_save": "Save"}


# --- the groups -----------------------------------------------------------------------------


def test_the_three_groups_exist_after_migrate_with_exactly_their_permissions():
    for role in ROLES:
        assert group_permissions(role) == expected_permissions(role), role
    assert "wopr.decommission_beacon" not in group_permissions(OPERATIONS)
    assert "billing.change_price" not in group_permissions(OPERATIONS)
    assert "wopr.suspend_beacon" not in group_permissions(SUPPORT)
    assert "wopr.cancel_job" not in group_permissions(OPERATIONS)  # deletes: the owner's


def test_a_permission_added_by_hand_is_taken_away_by_the_next_sync():
    support = Group.objects.get(name=SUPPORT)
    support.permissions.add(
        Permission.objects.get(content_type__app_label="billing", codename="change_price")
    )
    assert "billing.change_price" in group_permissions(SUPPORT)

    roles_sync()

    assert "billing.change_price" not in group_permissions(SUPPORT)


def test_roles_sync_is_idempotent():
    before = {role: group_permissions(role) for role in ROLES}
    groups = Group.objects.count()
    roles_sync()
    roles_sync()
    assert {role: group_permissions(role) for role in ROLES} == before
    assert Group.objects.count() == groups


# --- support: reads everything, changes nothing of the catalogue ------------------------------


VENDOR_APPS = {"djstripe", "django_q", "axes", "otp_totp", "otp_static"}


def test_support_opens_every_changelist_and_change_page_read_only():
    make_one_of_everything()
    client = staff_client(SUPPORT)
    owner = get_user_model().objects.create_user(username="sso-owner", is_staff=True)
    StaffIdentity.objects.create(user=owner, issuer="https://id.example", subject="sub-1")
    StaffNote.objects.create(beacon=Beacon.objects.first(), author_name="ada", body="a note")
    staff_action_record(user=owner, action="sweep.health", outcome="queued")
    empty = set()
    for model in admin.site._registry:
        opts = model._meta
        prefix = f"admin:{opts.app_label}_{opts.model_name}"
        response = client.get(reverse(f"{prefix}_changelist"))
        if opts.app_label not in READ_APPS:  # users, groups, devices: not support's
            assert response.status_code == 403, opts.label
            continue
        assert response.status_code == 200, opts.label
        obj = model._default_manager.first()
        if obj is None:
            empty.add(opts.label)
            continue
        page = client.get(reverse(f"{prefix}_change", args=[obj.pk]))
        assert page.status_code == 200, opts.label
        assert 'name="_save"' not in page.content.decode(), opts.label
    # Every change page of ours was opened; only the vendors' tables are empty here.
    assert {label for label in empty if label.split(".")[0] not in VENDOR_APPS} == set()


def test_support_cannot_change_a_price_or_a_bundle():
    client = staff_client(SUPPORT)
    price = Price.objects.filter(amount_cents__gt=0).first()
    url = reverse("admin:billing_price_change", args=[price.pk])
    before = price.amount_cents

    response = client.post(url, {"amount_cents": before + 100, "currency": price.currency})

    assert response.status_code == 403
    price.refresh_from_db()
    assert price.amount_cents == before
    bundle = price.bundle
    response = client.post(reverse("admin:billing_bundle_change", args=[bundle.pk]), {})
    assert response.status_code == 403


def test_support_cannot_run_the_refund_action():
    beacon = make_beacon()
    remedy = OrderRemedy.objects.create(order=beacon.order, policy="staff", state="queued")
    client = staff_client(SUPPORT)
    url = reverse("admin:billing_orderremedy_changelist")

    action_form = client.get(url).context["action_form"]
    assert action_form is None or "refund_and_cancel" not in dict(
        action_form.fields["action"].choices
    )
    client.post(
        url, {"action": "refund_and_cancel", "_selected_action": [remedy.pk], "post": "yes"}
    )

    remedy.refresh_from_db()
    assert remedy.state == "queued"
    assert remedy.decided_by is None


# --- operations and owner ---------------------------------------------------------------------


def test_operations_can_change_a_provider_but_not_a_price():
    provider, _ = Provider.objects.get_or_create(name="fake", defaults={"kind": "fake"})
    client = staff_client(OPERATIONS)
    url = reverse("admin:provisioning_provider_change", args=[provider.pk])

    response = client.post(url, change_form_data(client, url, weight=7))

    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.weight == 7
    price = Price.objects.first()
    price_url = reverse("admin:billing_price_change", args=[price.pk])
    assert client.post(price_url, {"amount_cents": 1}).status_code == 403


def test_owner_can_change_a_price():
    price = Price.objects.filter(amount_cents__gt=0).first()
    client = staff_client(OWNER)
    url = reverse("admin:billing_price_change", args=[price.pk])

    response = client.post(url, change_form_data(client, url, amount_cents=price.amount_cents + 1))

    assert response.status_code == 302
    assert Price.objects.get(pk=price.pk).amount_cents == price.amount_cents + 1


def test_the_owner_role_is_not_a_superuser():
    staff_client(OWNER)
    user = get_user_model().objects.get(username=f"{OWNER}-user")
    assert not user.is_superuser
    assert not user.has_perm("auth.change_user")


# --- the start-up check -------------------------------------------------------------------------


def test_a_staff_group_mapped_to_an_unknown_role_stops_the_start(settings):
    settings.OIDC_STAFF_GROUPS = "wopr-support=support,wopr-admins=admin,wopr-owners=owner"

    errors = check_staff_group_roles()

    assert [error.id for error in errors] == ["wopr.E122"]
    assert "'wopr-admins' to 'admin'" in errors[0].msg
    settings.OIDC_STAFF_GROUPS = "wopr-support=support,wopr-operations=operations,wopr-owners=owner"
    assert check_staff_group_roles() == []
