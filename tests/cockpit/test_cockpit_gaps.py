"""Issue 14's cockpit parts no other test pins: the failure series of /metrics, the Beacon
page's snapshots and multi-job timeline, and a support user resending the welcome e-mail."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from backups.models import BackupSnapshot
from documents.models import EmailMessage
from provisioning.models import Job, JobEvent, Provider, RateLimitBudget
from tests.factories import BeaconFactory
from tests.staff_roles import role_user
from tests.test_admin import make_beacon, make_job
from wopr.metrics import metrics_exposition
from wopr.models import StaffAction

pytestmark = pytest.mark.django_db


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one /metrics exposition, by name and sorted labels."""
    text = metrics_exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_failures_errors_failed_emails_and_rate_budgets():
    before = scrape()
    provider = Provider.objects.create(name="gapsprov", kind="fake")
    beacon = BeaconFactory(provider=provider)
    job = Job.objects.create(
        beacon=beacon,
        kind="provision",
        step="create_server",
        state="failed",
        finished_at=timezone.now() - timedelta(minutes=5),
    )
    JobEvent.objects.create(
        job=job, step=job.step, state=job.state, level="error", message="gave up"
    )
    EmailMessage.objects.create(
        idempotency_key="gaps-failed-1",
        template="welcome",
        recipient="a@example.com",
        status="failed",
    )
    RateLimitBudget.objects.create(key="gaps:budget", remaining=7, limit=3600)

    after = scrape()

    kind = (("kind", "provision"),)
    for name in ("wopr_jobs_failed", "wopr_jobs_failed_last_day"):
        assert after[(name, kind)] == before[(name, kind)] + 1, name
    events = ("wopr_provider_job_events_last_hour", (("level", "error"), ("provider", "gapsprov")))
    assert events not in before
    assert after[events] == 1
    failed = ("wopr_emails_last_day", (("status", "failed"),))
    assert (before[failed], after[failed]) == (0, 1)
    key = (("key", "gaps:budget"),)
    assert after[("wopr_provider_rate_budget_remaining", key)] == 7
    assert after[("wopr_provider_rate_budget_limit", key)] == 3600
    assert ("wopr_provider_rate_budget_remaining", key) not in before


def test_the_beacon_page_lists_its_snapshot_and_the_events_of_all_its_jobs(admin_client):
    beacon = make_beacon(status="active")
    BackupSnapshot.objects.create(
        beacon=beacon,
        provider=beacon.provider,
        kind="daily",
        name=f"wopr-{beacon.pk}-daily-20250101",
        status="available",
        expires_at=timezone.now() + timedelta(days=7),
    )
    provision = make_job(beacon, kind="provision", state="completed")
    suspend = make_job(beacon, kind="suspend", step="power_off")
    for job, message in ((provision, "gaps provision line"), (suspend, "gaps suspend line")):
        JobEvent.objects.create(job=job, step=job.step, state=job.state, message=message)

    response = admin_client.get(reverse("admin:provisioning_beacon_change", args=[beacon.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    assert f"wopr-{beacon.pk}-daily-20250101" in content
    assert "gaps provision line" in content
    assert "gaps suspend line" in content


def test_support_resends_the_welcome_email_from_the_confirmation_page(
    buy, django_capture_on_commit_callbacks
):
    beacon = buy("gaps1")
    user = role_user("support", "gaps-support")
    support = Client()
    support.force_login(user)
    url = reverse("admin:provisioning_beacon_act", args=[beacon.pk, "resend_welcome"])
    shown = support.get(url)
    assert shown.status_code == 200
    (subject,) = re.findall(r'name="subject" value="([^"]*)"', shown.content.decode())
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        answer = support.post(url, {"post": "yes", "subject": subject}, follow=True)

    assert answer.status_code == 200
    (sent,) = mail.outbox
    assert sent.to == [beacon.order.email]
    row = EmailMessage.objects.get(idempotency_key__startswith=f"welcome-resend:{beacon.pk}:")
    assert row.status == "sent"
    record = StaffAction.objects.get(action="beacon.resend_welcome")
    assert record.username == "gaps-support"
