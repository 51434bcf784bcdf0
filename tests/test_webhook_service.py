"""Issue 9, items 2 and 12 proven from outside: gunicorn started as in the container, on
PostgreSQL, receives signed Stripe events over HTTP."""

from __future__ import annotations

import httpx
import pytest

from billing.models import Order, OrderStatus
from billing.simulation import checkout_completed_event, encode, sign
from provisioning.models import Beacon, Job
from tests.loopback import database_url, free_port
from tests.service import running_web

pytestmark = [
    pytest.mark.processes,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LIVE_SECRET = "whsec_live_service_test"
TEST_SECRET = "whsec_test_service_test"


def web_env(tmp_path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "SECRET_KEY": "service-test-secret-key",
        "STRIPE_TEST_WEBHOOK_SECRET": TEST_SECRET,
        "STRIPE_LIVE_WEBHOOK_SECRET": LIVE_SECRET,
        "STRIPE_TEST_SECRET_KEY": "",
        "STRIPE_LIVE_SECRET_KEY": "",
        "REDIS_URL": "",
        "DOCUMENTS_ROOT": str(tmp_path / "documents"),
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        **extra,
    }


def post_signed(base: str, event: dict, secret: str) -> httpx.Response:
    payload = encode(event)
    return httpx.post(
        f"{base}/api/webhook/stripe",
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)},
        timeout=30,
    )


def test_a_live_deployment_acknowledges_a_test_mode_event_and_provisions_nothing(tmp_path):
    env = web_env(tmp_path, STRIPE_LIVE_MODE="true")
    with running_web(env, tmp_path / "logs") as base:
        test_event = checkout_completed_event(beacon_name="sneaky1")  # livemode: false
        ignored = post_signed(base, test_event, LIVE_SECRET)
        old_secret = post_signed(base, test_event, TEST_SECRET)
        live_event = checkout_completed_event(beacon_name="honest1")
        live_event["livemode"] = True
        accepted = post_signed(base, live_event, LIVE_SECRET)

    assert ignored.status_code == 200
    assert "ignored" in ignored.text
    assert old_secret.status_code == 400  # the test-mode secret signs nothing here
    assert not Order.objects.filter(beacon_name="sneaky1").exists()
    assert not Beacon.objects.filter(name="sneaky1").exists()
    assert not Job.objects.filter(beacon__name="sneaky1").exists()
    # The control: the same deployment does act on an event of its own mode.
    assert accepted.status_code == 200
    assert Job.objects.filter(beacon__name="honest1").exists()


def test_a_redis_outage_after_commit_acknowledges_the_stored_event(tmp_path):
    env = web_env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with running_web(env, tmp_path / "logs") as base:
        response = post_signed(base, checkout_completed_event(beacon_name="outage1"), TEST_SECRET)
        health = httpx.get(f"{base}/api/health", timeout=30).json()

    assert response.status_code == 200
    assert Order.objects.get(beacon_name="outage1").status == OrderStatus.PAID
    assert Job.objects.get(beacon__name="outage1").state == "pending"  # the sweep's to enqueue
    assert health["status"] == "degraded"
    assert health["queue"] == {"broker": "redis", "broker_status": "unreachable"}
