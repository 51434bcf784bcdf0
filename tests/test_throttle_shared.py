"""Issue 9, item 8: throttles are shared by every web process. Without Redis the counters live
in the database (wopr.throttle), so two gunicorn instances on one database (as the compose
stack's two replicas) together let exactly the budget through, even when requests arrive at
once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.loopback import database_url
from tests.service import running_web

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parent.parent


def test_two_processes_without_redis_let_only_10_of_26_checkouts_through(tmp_path):
    # The budget is per fixed minute: start early in one, so all 26 land in the same window.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": "",
        "DEBUG": "true",
        "SECRET_KEY": "throttle-test-secret-key",
        "STRIPE_TEST_WEBHOOK_SECRET": "whsec_throttle_test",
        "THROTTLE_CHECKOUT": "10/min",
        "WEB_CONCURRENCY": "1",
    }
    with (
        running_web(env, tmp_path / "one") as first,
        running_web(env, tmp_path / "two") as second,
        ThreadPoolExecutor(max_workers=26) as pool,
    ):
        # An empty body: every request the throttle lets through gets 400 (invalid fields),
        # every one it stops gets 429; nothing reaches Stripe.
        answers = list(
            pool.map(
                lambda base: httpx.post(f"{base}/api/v1/checkout", json={}, timeout=30),
                [first, second] * 13,
            )
        )

    statuses = sorted(response.status_code for response in answers)
    assert statuses == [400] * 10 + [429] * 16
    for response in answers:
        if response.status_code == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert response.json()["error"]["code"] == "throttled"
