"""How long the Stripe webhook takes to accept a purchase (signature check, store the event
once, Order, Beacon and Job rows, enqueue), against `GET /api/health` (one `SELECT 1`) as the
baseline, in one run, in-process through Django's test client. No provider work happens in the
request, so the ratio should stay small.

    DATABASE_URL=sqlite:////tmp/bench.sqlite3 .venv/bin/python benchmarks/webhook.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wopr.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from billing.simulation import checkout_completed_event, encode, sign  # noqa: E402

ROUNDS = 200


def timed(call) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    return elapsed


def main() -> None:
    call_command("migrate", verbosity=0)
    client = Client(HTTP_HOST="127.0.0.1")
    secret = settings.STRIPE_TEST_WEBHOOK_SECRET
    health = [timed(lambda: client.get("/api/health")) for _ in range(ROUNDS)]
    webhook = []
    for n in range(ROUNDS):
        payload = encode(checkout_completed_event(beacon_name=f"bench{n}-{os.getpid()}"))
        webhook.append(
            timed(
                lambda p=payload: client.post(
                    "/api/webhook/stripe",
                    p,
                    content_type="application/json",
                    HTTP_STRIPE_SIGNATURE=sign(p, secret),
                )
            )
        )
    base, hook = statistics.median(health), statistics.median(webhook)
    print(f"GET /api/health median:          {base * 1000:.1f} ms")
    print(f"POST /api/webhook/stripe median: {hook * 1000:.1f} ms")
    print(f"ratio: {hook / base:.1f} x the health check")


if __name__ == "__main__":
    main()
