"""A live Beacon whose server vanished at its provider is a LOST_SERVER finding: `reconcile --fix`
never rebuilds it, but flags its Order for staff (once) and names the confirmation page of a
restore from its newest snapshot; staff confirming there bring it back."""

from __future__ import annotations

import pytest
from django.urls import reverse

from backups.models import BackupSnapshot
from backups.tasks import backups_daily
from billing.models import Order
from operations.drift import LOST_SERVER_REASON
from provisioning.models import Beacon, FakeServer, Job

pytestmark = pytest.mark.django_db


def lose_server(beacon: Beacon) -> None:
    """The provider deleted the server (an account clean-up, an abuse desk) behind our back."""
    FakeServer.objects.filter(pk=beacon.provider_server_id).update(deleted=True)


def live_servers(beacon: Beacon) -> list[FakeServer]:
    rows = FakeServer.objects.filter(deleted=False)
    return [row for row in rows if row.labels.get("wopr-beacon") == str(beacon.pk)]


def test_a_lost_server_is_flagged_for_staff_once_and_never_rebuilt(buy, reconcile):
    bought = buy("lost1")
    lose_server(bought.beacon)

    code, report = reconcile()  # a report changes nothing

    (finding,) = report["findings"]
    assert (finding["kind"], finding["status"], finding["fixable"]) == (
        "lost_server",
        "open",
        False,
    )
    assert "gone at the provider" in finding["detail"]
    assert "no snapshot to restore from" in finding["detail"]
    assert code == 1
    assert not Order.objects.get(pk=bought.order.pk).needs_attention

    reports = [reconcile("--fix") for _ in range(2)]

    order = Order.objects.get(pk=bought.order.pk)
    assert (order.needs_attention, order.attention_reason) == (True, LOST_SERVER_REASON)
    (first,), (second,) = (r["findings"] for _, r in reports)
    assert first["detail"].endswith("; order flagged for staff")
    assert second["detail"].endswith("; order already flagged for staff")
    assert all(code == 1 and r["fixed"] == 0 for code, r in reports)  # still for a human
    assert live_servers(bought.beacon) == []  # nothing made automatically
    assert not Job.objects.filter(beacon=bought.beacon).exclude(kind="provision").exists()
    assert Beacon.objects.get(pk=bought.beacon.pk).status == "active"


def test_staff_confirm_a_restore_from_the_last_snapshot_and_the_finding_is_gone(
    buy, reconcile, admin_client, django_capture_on_commit_callbacks
):
    bought = buy("lost2")
    with django_capture_on_commit_callbacks(execute=True):
        backups_daily()
    snapshot = BackupSnapshot.objects.get(beacon=bought.beacon, status="available")
    lose_server(bought.beacon)

    code, report = reconcile("--fix")

    (finding,) = report["findings"]
    url = reverse("admin:backups_backupsnapshot_restore", args=[snapshot.pk])
    assert finding["kind"] == "lost_server"
    assert f"staff may restore snapshot {snapshot.name} (confirm at {url})" in finding["detail"]
    assert live_servers(bought.beacon) == []
    assert Order.objects.get(pk=bought.order.pk).attention_reason == LOST_SERVER_REASON

    page = admin_client.get(url)  # the confirmation page says what will be made

    assert page.status_code == 200
    assert f"from snapshot {snapshot.name}" in page.content.decode()
    assert live_servers(bought.beacon) == []  # a GET does nothing

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"post": "yes"})

    (server,) = live_servers(bought.beacon)
    assert server.image == snapshot.provider_snapshot_id
    beacon = Beacon.objects.get(pk=bought.beacon.pk)
    assert (beacon.status, beacon.provider_server_id) == ("active", str(server.pk))
    code, report = reconcile("--fix")
    assert (code, report["findings"]) == (0, [])
    assert not Order.objects.get(pk=bought.order.pk).needs_attention  # restored: flag lifted
