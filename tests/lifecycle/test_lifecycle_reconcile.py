"""`manage.py reconcile`: planted orphans and a zombie are found, --fix repairs them, and a
second run finds nothing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from billing.models import Order
from billing.simulation import checkout_completed_event
from dns.backends.fake import FakeDns
from dns.models import FakeDnsRecord
from documents.models import EmailMessage
from integrations.clouds.base import ServerSpec
from integrations.dns.base import RecordSpec
from provisioning.fake_cloud import FakeProvider
from provisioning.faults import fault_inject
from provisioning.jobs import job_retry
from provisioning.models import Beacon, FakeServer, ReconcileRun
from tests.lifecycle.stripe_events import subscription_event

pytestmark = pytest.mark.django_db


def plant_orphan_server(name: str = "wopr-ghost") -> str:
    spec = ServerSpec(
        name=name,
        size="cx22",
        image="debian-12",
        location="fake-eu-central",
        labels={"managed-by": "wopr", "wopr-beacon": str(uuid.uuid4())},
        user_data="",
    )
    return FakeProvider().create_server(spec).server.id


def plant_orphan_record() -> str:
    return FakeDns().upsert(RecordSpec("A", "ghost.beacons.test", "192.0.2.50")).id


@pytest.fixture
def zombie(buy):
    """A paying subscription whose Beacon was left suspended (a resume that never started):
    no active Beacon, nothing under way, nothing failed."""
    bought = buy("zomb1")
    Beacon.objects.filter(pk=bought.beacon.pk).update(status="suspended")
    FakeServer.objects.filter(pk=bought.beacon.provider_server_id).update(powered_on=False)
    return bought.refresh()


def kinds(report: dict) -> set[tuple[str, str]]:
    return {(finding["kind"], finding["status"]) for finding in report["findings"]}


def test_reconcile_finds_planted_orphans_and_a_zombie_and_fix_repairs_them(
    buy, zombie, reconcile, settings
):
    settings.RECONCILE_ORPHAN_MIN_AGE_HOURS = 0
    healthy = buy("alive1")
    server_id = plant_orphan_server()
    record_id = plant_orphan_record()

    code, report = reconcile()

    assert code == 1  # something needs a human (or --fix)
    found = {(f["kind"], f["id"]) for f in report["findings"]}
    assert found == {
        ("orphan_server", server_id),
        ("orphan_dns", record_id),
        ("zombie", zombie.subscription_id),
    }
    assert all(f["status"] == "open" for f in report["findings"])
    assert str(healthy.beacon.pk) not in json.dumps(report)  # the live Beacon is fine

    code, report = reconcile("--fix")

    assert code == 0
    assert report["fixed"] == 3
    assert kinds(report) == {
        ("orphan_server", "fixed"),
        ("orphan_dns", "fixed"),
        ("zombie", "fixed"),
    }
    assert FakeServer.objects.get(pk=server_id).deleted
    assert not FakeDnsRecord.objects.filter(pk=record_id).exists()
    assert Beacon.objects.get(pk=zombie.beacon.pk).status == "active"  # resumed

    code, report = reconcile()

    assert (code, report["findings"]) == (0, [])
    assert not FakeServer.objects.get(pk=healthy.beacon.provider_server_id).deleted
    assert ReconcileRun.objects.count() == 3


def test_young_orphans_wait_for_the_minimum_age(reconcile, settings, clock):
    settings.RECONCILE_ORPHAN_MIN_AGE_HOURS = 24
    server_id = plant_orphan_server()

    code, report = reconcile("--fix")
    assert code == 0  # nothing for a human yet: it may be work in flight
    assert kinds(report) == {("orphan_server", "waiting")}
    assert not FakeServer.objects.get(pk=server_id).deleted

    clock.advance(hours=23)
    code, report = reconcile("--fix")
    assert kinds(report) == {("orphan_server", "waiting")}

    clock.advance(hours=2)
    code, report = reconcile("--fix")
    assert (code, kinds(report)) == (0, {("orphan_server", "fixed")})
    assert FakeServer.objects.get(pk=server_id).deleted


def test_server_drift_is_reported_for_a_human_and_a_wrong_record_is_fixed(buy, reconcile, settings):
    settings.RECONCILE_ORPHAN_MIN_AGE_HOURS = 0
    bought = buy("drift1")
    FakeDnsRecord.objects.filter(name="drift1.beacons.test", record_type="A").update(
        content="192.0.2.99"
    )
    FakeServer.objects.filter(pk=bought.beacon.provider_server_id).update(powered_on=False)

    code, report = reconcile("--fix")

    assert code == 1
    by_kind = {f["kind"]: f for f in report["findings"]}
    assert sorted(by_kind) == ["drift", "missing_dns"]
    assert "server is off while the Beacon is active" in by_kind["drift"]["detail"]
    assert by_kind["drift"]["status"] == "open"
    # Issue 13, item 6: a record pointing elsewhere is published again (tests/drift).
    wrong = "A drift1.beacons.test is 192.0.2.99, the Beacon has 198.18."
    assert wrong in by_kind["missing_dns"]["detail"]
    assert by_kind["missing_dns"]["status"] == "fixed"
    assert FakeDnsRecord.objects.get(name="drift1.beacons.test", record_type="A").content == (
        str(bought.beacon.ipv4)
    )


def test_a_paid_order_without_a_beacon_is_a_zombie_for_a_human(deliver, reconcile, clock):
    deliver(checkout_completed_event(bundle="no-such-bundle", beacon_name="odd1"))
    order = Order.objects.get()

    code, report = reconcile("--fix")

    assert code == 1
    (finding,) = report["findings"]
    assert (finding["kind"], finding["status"]) == ("zombie", "open")
    assert str(order.pk) in finding["detail"]


def test_a_beacon_of_an_ended_subscription_is_no_zombie_and_its_server_no_orphan(
    buy, deliver, reconcile, clock
):
    bought = buy("ended1")
    now = clock.stamp()
    deliver(
        subscription_event(
            bought.subscription_id,
            status="canceled",
            created=now,
            ended_at=now,
            event_type="customer.subscription.deleted",
        )
    )

    code, report = reconcile()

    assert (code, report["findings"]) == (0, [])


def test_runs_are_shown_in_the_admin(admin_client, reconcile, settings):
    settings.RECONCILE_ORPHAN_MIN_AGE_HOURS = 0
    plant_orphan_server("wopr-<b>ghost</b>")
    reconcile()
    run = ReconcileRun.objects.get()

    listing = admin_client.get(reverse("admin:provisioning_reconcilerun_changelist"))
    page = admin_client.get(reverse("admin:provisioning_reconcilerun_change", args=[run.pk]))

    assert listing.status_code == 200
    content = page.content.decode()
    assert "orphan_server" in content
    assert "wopr-&lt;b&gt;ghost&lt;/b&gt;" in content
    assert "<b>ghost</b>" not in content


def test_plain_output_names_the_findings(reconcile, settings):
    settings.RECONCILE_ORPHAN_MIN_AGE_HOURS = 0
    plant_orphan_server()
    out = io.StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile", stdout=out)

    assert exit_.value.code == 1
    assert "orphan_server" in out.getvalue()
    assert "needs a human" in out.getvalue()


def test_bad_usage_exits_with_status_2():
    manage = Path(settings.BASE_DIR) / "manage.py"
    result = subprocess.run(
        [sys.executable, str(manage), "reconcile", "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "--no-such-option" in result.stderr


def test_reconcile_fix_never_restarts_a_failed_provision_it_waits_for_staff(
    buy, reconcile, settings
):
    settings.RECONCILE_ORPHAN_MIN_AGE_HOURS = 0
    # DNS refuses for good: a server is made, then compensation deletes it and tells operators.
    fault_inject("dns.upsert", "permanent", times=100)
    failed = buy("fail1").refresh()
    assert failed.beacon.status == "failed"

    def servers() -> list[FakeServer]:
        mine = str(failed.beacon.pk)
        return [s for s in FakeServer.objects.all() if s.labels.get("wopr-beacon") == mine]

    operator_emails = EmailMessage.objects.filter(template="provisioning_failed_operators")
    assert (len(servers()), operator_emails.count()) == (1, 1)
    job = failed.beacon.jobs.get()

    reports = [reconcile("--fix") for _ in range(3)]

    assert failed.beacon.jobs.count() == 1  # no new job ...
    job.refresh_from_db()
    assert (job.state, job.attempts) == ("failed", 0)  # ... and the failed one not restarted
    assert len(servers()) == 1  # no new server
    assert operator_emails.count() == 1  # no new e-mail
    assert Beacon.objects.get(pk=failed.beacon.pk).status == "failed"
    for code, report in reports:
        assert code == 1  # a staff decision is still missing
        assert report["fixed"] == 0
        (finding,) = report["findings"]
        assert (finding["kind"], finding["status"], finding["fixable"]) == (
            "zombie",
            "open",
            False,
        )
        assert "waits for staff" in finding["detail"]
    # Reported once per run, with the time it was first seen carried over.
    assert len({report["findings"][0]["first_seen"] for _, report in reports}) == 1


def test_after_staff_retry_a_failed_provision_is_no_longer_reported(
    buy, reconcile, django_capture_on_commit_callbacks
):
    fault_inject("provider.create", "permanent")
    failed = buy("fail2")
    assert failed.beacon.status == "failed"

    with django_capture_on_commit_callbacks(execute=True):
        assert job_retry(job=failed.beacon.jobs.get())
    code, report = reconcile("--fix")

    assert Beacon.objects.get(pk=failed.beacon.pk).status == "active"
    assert (code, report["findings"]) == (0, [])
