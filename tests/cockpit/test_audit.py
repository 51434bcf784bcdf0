"""The audit trail (wopr.models.StaffAction): every admin add, change and delete and every
staff action lands in it with who, what and what came of it; nobody edits it, not even a
superuser; its list links to targets that still exist without a query per row."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backups.models import BackupSnapshot
from billing.models import Price
from installers.models import InstallerRelease
from provisioning.models import FakeFault
from tests.staff_roles import staff_client
from tests.test_admin import make_beacon, make_one_of_everything
from wopr.audit import staff_action_record
from wopr.models import StaffAction
from wopr.roles import OWNER, SUPPORT

pytestmark = pytest.mark.django_db


def test_changing_a_price_as_owner_leaves_an_audit_row_naming_owner_price_and_fields():
    price = Price.objects.filter(amount_cents__gt=0).first()
    client = staff_client(OWNER)
    url = reverse("admin:billing_price_change", args=[price.pk])
    data = {
        "amount_cents": price.amount_cents + 100,
        "currency": price.currency,
        "stripe_price_id": "price_audit_1",
        "_save": "Save",
    }

    assert client.post(url, data).status_code == 302

    action = StaffAction.objects.get(action="admin.change")
    assert action.username == f"{OWNER}-user"
    assert (action.target_type, action.target_id) == ("billing.price", str(price.pk))
    assert action.target_repr == str(price)
    assert "Amount cents" in action.outcome and "Stripe price id" in action.outcome


def test_a_delete_of_several_rows_reaches_the_trail_row_by_row(admin_client):
    faults = [FakeFault.objects.create(point="provider.create", kind="transient") for _ in "ab"]
    url = reverse("admin:provisioning_fakefault_changelist")
    selected = [str(fault.pk) for fault in faults]

    admin_client.post(
        url, {"action": "delete_selected", "_selected_action": selected, "post": "yes"}
    )

    assert not FakeFault.objects.exists()
    deleted = StaffAction.objects.filter(
        action="admin.delete", target_type="provisioning.fakefault"
    )
    assert sorted(deleted.values_list("target_id", flat=True)) == sorted(selected)


def test_nobody_adds_changes_or_deletes_audit_rows_not_even_a_superuser(admin_client, admin_user):
    row = staff_action_record(user=admin_user, action="sweep.health", outcome="queued")
    change = reverse("admin:wopr_staffaction_change", args=[row.pk])

    assert admin_client.get(reverse("admin:wopr_staffaction_add")).status_code == 403
    admin_client.post(change, {"action": "forged", "username": "someone"})
    assert (
        admin_client.post(reverse("admin:wopr_staffaction_delete", args=[row.pk])).status_code
        == 403
    )
    row.refresh_from_db()
    assert (row.action, row.username) == ("sweep.health", admin_user.username)
    assert 'name="_save"' not in admin_client.get(change).content.decode()


def audit_list_queries(client: Client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:wopr_staffaction_changelist"))
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_the_audit_list_links_live_targets_with_no_query_per_row(admin_client, admin_user):
    gone = FakeFault.objects.create(point="provider.create", kind="transient")
    staff_action_record(user=admin_user, action="fault.clear", target=gone, outcome="done")
    gone_url = reverse("admin:provisioning_fakefault_change", args=[gone.pk])
    gone.delete()
    first = make_beacon()
    staff_action_record(user=admin_user, action="beacon.suspend", target=first, outcome="ok")
    audit_list_queries(admin_client)  # warm the session and content-type caches
    few, _ = audit_list_queries(admin_client)
    beacons = [first] + [make_beacon() for _ in range(12)]
    for beacon in beacons[1:]:
        staff_action_record(user=admin_user, action="beacon.suspend", target=beacon, outcome="ok")

    many, page = audit_list_queries(admin_client)

    assert many == few  # one query per kind of target on the page, none per row
    for beacon in beacons:
        assert reverse("admin:provisioning_beacon_change", args=[beacon.pk]) in page
    assert gone_url not in page


def test_support_may_not_restore_a_snapshot_or_make_an_installer_current():
    make_one_of_everything()
    snapshot, release = BackupSnapshot.objects.get(), InstallerRelease.objects.get()
    client = staff_client(SUPPORT)

    restore = reverse("admin:backups_backupsnapshot_restore", args=[snapshot.pk])
    assert client.post(restore, {"post": "yes"}).status_code == 403
    client.post(
        reverse("admin:installers_installerrelease_changelist"),
        {"action": "make_current", "_selected_action": [release.pk], "post": "yes"},
    )

    release.refresh_from_db()
    assert not release.current
    assert not StaffAction.objects.exists()


def test_making_an_installer_current_is_recorded_with_who_and_what():
    make_one_of_everything()
    release = InstallerRelease.objects.get()
    client = staff_client(OWNER)

    client.post(
        reverse("admin:installers_installerrelease_changelist"),
        {"action": "make_current", "_selected_action": [release.pk], "post": "yes"},
    )

    release.refresh_from_db()
    assert release.current
    action = StaffAction.objects.get(action="installer.make_current")
    assert (action.username, action.target_id) == (f"{OWNER}-user", str(release.pk))


def test_every_log_entry_is_copied_even_one_with_a_plain_text_message(admin_user):
    price = Price.objects.first()

    LogEntry.objects.log_actions(
        user_id=admin_user.pk,
        queryset=[price],
        action_flag=CHANGE,
        change_message="By hand",
        single_object=True,
    )

    row = StaffAction.objects.get(action="admin.change")
    assert (row.target_id, row.outcome) == (str(price.pk), "By hand")


def test_a_staff_action_writes_one_trail_row_and_no_log_entry():
    make_one_of_everything()
    release = InstallerRelease.objects.get()
    client = staff_client(OWNER)

    client.post(
        reverse("admin:installers_installerrelease_changelist"),
        {"action": "make_current", "_selected_action": [release.pk], "post": "yes"},
    )

    assert list(StaffAction.objects.values_list("action", flat=True)) == ["installer.make_current"]
    assert not LogEntry.objects.exists()


def test_the_audit_list_filters_by_kind_of_action_and_by_staff_user(admin_client, admin_user):
    other = get_user_model().objects.create_user(username="ops", is_staff=True)
    staff_action_record(user=admin_user, action="sweep.health", outcome="queued")
    staff_action_record(user=other, action="beacon.suspend", outcome="ok")
    staff_action_record(user=other, action="vendor.resubmit_task", outcome="done")
    url = reverse("admin:wopr_staffaction_changelist")

    def shown(**query: str) -> list[str]:
        response = admin_client.get(url, query)
        return sorted(row.action for row in response.context["cl"].result_list)

    assert shown(kind="sweep") == ["sweep.health"]
    assert shown(kind="vendor") == ["vendor.resubmit_task"]
    assert shown(user=str(other.pk)) == ["beacon.suspend", "vendor.resubmit_task"]
    assert shown(q="beacon.suspend") == ["beacon.suspend"]
