"""SQL statements per Beacon: one purchase, webhook to active, in-process on the fake cloud.

The counts are ceilings at the value reached (see benchmarks/beacon_cost.py for the measured
numbers on PostgreSQL); a change that adds statements to the purchase path fails here. Lower
them when the path gets cheaper.
"""

from __future__ import annotations

import pytest

from billing.simulation import checkout_completed_event, encode, sign
from documents.models import EmailMessage
from provisioning.models import Beacon, JobEvent

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_secret"
URL = "/api/webhook/stripe"

# Webhook plus every job step (choose provider .. activate) and the final converge (+1 for the
# install stages the fake Beacon records beside its timeline lines, +1 for the installer
# release the user data names; +7 for the `account` step, which costs the engine's claim,
# load, record and timeline line even when skipped without AUTHENTIK_URL: 118 -> 125).
PURCHASE_MAX_STATEMENTS = 125
# The worker's share alone: every step after the webhook stored the purchase (99 -> 106).
STEPS_MAX_STATEMENTS = 106


def _post(client, name: str):
    payload = encode(checkout_completed_event(beacon_name=name, bundle="starter", tier="t1"))
    return client.post(
        URL,
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, SECRET),
    )


def _assert_active(name: str) -> None:
    beacon = Beacon.objects.get(name=name)
    assert beacon.status == "active"
    job = beacon.jobs.get()
    assert (job.kind, job.state) == ("provision", "completed")
    # The welcome e-mail was sent once.
    assert JobEvent.objects.filter(job=job, message__endswith="e-mail sent").count() == 1
    assert EmailMessage.objects.get(idempotency_key=f"welcome:{beacon.pk}").status == "sent"


def test_a_purchase_from_webhook_to_active_stays_within_its_statements(
    client, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    with (
        django_assert_max_num_queries(PURCHASE_MAX_STATEMENTS),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = _post(client, "cost1")

    assert response.status_code == 200
    _assert_active("cost1")


def test_the_job_steps_of_a_purchase_stay_within_their_statements(
    client, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert _post(client, "cost2").status_code == 200
    assert Beacon.objects.get(name="cost2").status == "pending"

    with (
        django_assert_max_num_queries(STEPS_MAX_STATEMENTS),
        django_capture_on_commit_callbacks(execute=True),
    ):
        for callback in queued:
            callback()

    _assert_active("cost2")
