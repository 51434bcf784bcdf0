"""The welcome e-mail again, on the customer's request: to the order's address, with the
Beacon's documents, at most once per WELCOME_RESEND_MINUTES window and Beacon."""

from __future__ import annotations

import pytest
from django.core import mail

from billing import selfservice
from documents.models import EmailMessage
from provisioning.models import BeaconStatus
from tests.factories import BeaconFactory, CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def beacon():
    return BeaconFactory(
        order__customer=CustomerFactory(email="ada@example.com"), order__email="ada@example.com"
    )


def resend(client, beacon, headers):
    return client.post(
        f"/api/v1/me/beacons/{beacon.pk}/welcome", "{}", "application/json", **headers
    )


def test_the_welcome_email_is_sent_again_once_per_window(
    client, bearer, beacon, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.WELCOME_RESEND_MINUTES = 15
    now = [1_800_000_000.0]  # the start of a 15-minute window
    monkeypatch.setattr(selfservice, "clock", lambda: now[0])
    with django_capture_on_commit_callbacks(execute=True):
        response = resend(client, beacon, bearer())
    assert response.status_code == 202, response.content
    assert response.json() == {"queued": True}
    (sent,) = mail.outbox
    assert sent.to == ["ada@example.com"]
    assert beacon.fqdn in sent.body
    assert [name for name, _, _ in sent.attachments] == [f"{beacon.name}-welcome-card.pdf"]

    now[0] += 600
    with django_capture_on_commit_callbacks(execute=True):
        again = resend(client, beacon, bearer())
    assert again.status_code == 429
    assert again["Retry-After"] == "300"
    assert len(mail.outbox) == 1

    now[0] += 300
    with django_capture_on_commit_callbacks(execute=True):
        assert resend(client, beacon, bearer()).status_code == 202
    assert len(mail.outbox) == 2
    keys = EmailMessage.objects.filter(beacon=beacon).values_list("idempotency_key", flat=True)
    assert all(key.startswith(f"welcome-resend:{beacon.pk}:") for key in keys)
    assert len(set(keys)) == 2


def test_a_beacon_not_ready_yet_gets_no_welcome(client, bearer, beacon):
    beacon.status = BeaconStatus.PROVISIONING
    beacon.save()
    response = resend(client, beacon, bearer())
    assert response.status_code == 409
    assert "not ready" in response.json()["error"]["message"]
    assert not EmailMessage.objects.exists()
