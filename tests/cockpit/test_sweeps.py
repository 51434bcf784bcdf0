""" "Sweep now" (wopr.sweeps_admin): operations queue the health, reconcile and job sweeps from
the admin behind a confirmation page; the read-only reconcile is theirs, the repairing one the
owner's; support runs none; every run is in the audit trail."""

from __future__ import annotations

import pytest
from django.urls import reverse

from provisioning.models import Provider, ProviderHealthCheck, ReconcileRun
from tests.staff_roles import staff_client
from wopr.models import StaffAction
from wopr.roles import OPERATIONS, OWNER, SUPPORT
from wopr.sweeps_admin import SWEEPS

pytestmark = pytest.mark.django_db


def sweep_url(kind: str) -> str:
    return reverse("admin:wopr_sweep", args=[kind])


def test_the_confirmation_page_says_what_runs_and_a_get_runs_nothing():
    client = staff_client(OPERATIONS)

    page = client.get(sweep_url("reconcile")).content.decode()

    assert "repairs nothing, deletes nothing" in page
    assert 'name="post" value="yes"' in page
    assert not ReconcileRun.objects.exists()
    assert not StaffAction.objects.exists()


def test_operations_run_the_health_sweep_now_and_it_is_audited():
    Provider.objects.get_or_create(name="fake", defaults={"kind": "fake"})
    client = staff_client(OPERATIONS)

    response = client.post(sweep_url("health"), {"post": "yes"})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:provisioning_providerhealthcheck_changelist")
    assert ProviderHealthCheck.objects.filter(provider__name="fake").exists()
    action = StaffAction.objects.get(action="sweep.health")
    assert action.username == f"{OPERATIONS}-user"
    assert action.outcome.startswith("queued as task")


def test_operations_reconcile_read_only_but_only_the_owner_repairs():
    operations = staff_client(OPERATIONS)

    operations.post(sweep_url("reconcile"), {"post": "yes"})
    assert operations.post(sweep_url("reconcile-fix"), {"post": "yes"}).status_code == 403

    assert list(ReconcileRun.objects.values_list("fix", flat=True)) == [False]
    staff_client(OWNER).post(sweep_url("reconcile-fix"), {"post": "yes"})
    assert sorted(ReconcileRun.objects.values_list("fix", flat=True)) == [False, True]
    assert sorted(StaffAction.objects.values_list("action", flat=True)) == [
        "sweep.reconcile",
        "sweep.reconcile-fix",
    ]


def test_operations_run_the_job_sweep_now():
    client = staff_client(OPERATIONS)

    response = client.post(sweep_url("jobs"), {"post": "yes"})

    assert response["Location"] == reverse("admin:provisioning_job_changelist")
    assert StaffAction.objects.get().action == "sweep.jobs"


def test_support_runs_no_sweep_and_an_unknown_sweep_is_not_found():
    client = staff_client(SUPPORT)
    for kind in SWEEPS:
        assert client.get(sweep_url(kind)).status_code == 403, kind
        assert client.post(sweep_url(kind), {"post": "yes"}).status_code == 403, kind
    assert not StaffAction.objects.exists()
    assert staff_client(OWNER).get(sweep_url("everything")).status_code == 404
