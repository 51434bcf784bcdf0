"""GET /metrics: who may read it, that Prometheus can parse it, and that a purchase moves it."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from prometheus_client.parser import text_string_to_metric_families

from billing.simulation import checkout_completed_event
from documents.models import EmailMessage, EmailStatus
from provisioning.models import Beacon
from tests.test_flow import post_event
from wopr.lib.redact import redact

pytestmark = pytest.mark.django_db

TOKEN = "metrics-scrape-token-for-tests"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def _token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.ADMIN_REQUIRE_OTP = False


def staff(username: str, *groups: str):
    user = get_user_model().objects.create_user(username, password="pw-for-tests", is_staff=True)
    user.groups.set(Group.objects.filter(name__in=groups))
    return user


def scrape(client, **headers) -> Samples:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


# --- who may read it -----------------------------------------------------------------------------


def test_an_anonymous_request_is_refused(client):
    assert client.get("/metrics").status_code == 403


def test_a_wrong_token_is_refused_and_not_logged(client, caplog):
    with caplog.at_level(logging.DEBUG):
        response = client.get("/metrics", **bearer("not-the-token"))

    assert response.status_code == 403
    assert "not-the-token" not in caplog.text
    assert TOKEN not in response.content.decode()


def test_no_token_is_accepted_while_metrics_token_is_empty(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert client.get("/metrics", **bearer("")).status_code == 403


def test_staff_without_the_permission_are_refused(client):
    client.force_login(staff("no-role"))

    assert client.get("/metrics").status_code == 403


def test_staff_with_a_role_but_no_second_factor_are_refused_when_it_is_required(client, settings):
    settings.ADMIN_REQUIRE_OTP = True
    client.force_login(staff("support-1", "support"))  # a password alone: not OTP-verified

    assert client.get("/metrics").status_code == 403


def test_a_session_with_the_permission_offering_a_wrong_token_is_refused(client):
    client.force_login(staff("support-2", "support"))

    assert client.get("/metrics", **bearer("wrong")).status_code == 403


def test_the_scrape_token_reads_the_metrics(client):
    samples = scrape(client, **bearer())

    assert ("wopr_stripe_webhook_deliveries_total", ()) in samples
    assert ("wopr_provision_duration_seconds_count", ()) in samples


def test_support_staff_signed_in_to_the_admin_read_the_metrics(client):
    client.force_login(staff("support-3", "support"))

    assert ("wopr_job_oldest_due_age_seconds", ()) in scrape(client)


def test_the_token_is_redacted_like_every_other_secret():
    assert TOKEN not in redact(f"Authorization: Bearer {TOKEN}")


# --- a purchase moves the numbers ----------------------------------------------------------------


def buy(client, name: str) -> None:
    """A signed checkout through the real webhook view, its enqueued work run inline."""
    event = checkout_completed_event(beacon_name=name, bundle="starter", tier="t1")
    response = post_event(client, event, secret=settings.STRIPE_TEST_WEBHOOK_SECRET)
    assert response.status_code == 200, response.content[:300]


def test_a_purchase_moves_webhook_intake_provisioning_and_emails(
    client, django_capture_on_commit_callbacks
):
    before = scrape(client, **bearer())
    sent_before = EmailMessage.objects.filter(status=EmailStatus.SENT).count()

    with django_capture_on_commit_callbacks(execute=True):
        buy(client, "metered1")

    assert Beacon.objects.get(name="metered1").status == "active"
    after = scrape(client, **bearer())

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before[key]

    assert moved("wopr_stripe_webhook_deliveries_total") >= 1
    assert moved("wopr_stripe_webhook_deliveries_last_hour", outcome="processed") == 1
    assert moved("wopr_stripe_webhook_deliveries_last_hour", outcome="failed") == 0
    assert 0 <= after[("wopr_stripe_webhook_lag_seconds", ())] < 60
    assert moved("wopr_provision_duration_seconds_count") == 1
    assert moved("wopr_provision_duration_seconds_bucket", le="+Inf") == 1
    sent = EmailMessage.objects.filter(status=EmailStatus.SENT).count() - sent_before
    assert sent >= 1  # the welcome e-mail at least
    assert moved("wopr_emails_last_day", status="sent") == sent
    assert after[("wopr_jobs", (("kind", "provision"), ("state", "pending")))] == 0
