"""One route: POST /api/webhook/stripe, answered by `bare_webhook`."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS bench_bare_event "
    "(id text PRIMARY KEY, type text NOT NULL, body jsonb NOT NULL, "
    "received_at timestamptz NOT NULL DEFAULT now())"
)


def signature_valid(payload: bytes, header: str) -> bool:
    """Stripe's scheme: HMAC-SHA256 of `<t>.<payload>`, compared in constant time, t recent."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(time.time() - timestamp) > settings.WEBHOOK_TOLERANCE_SECONDS:
        return False
    signed = f"{timestamp}.".encode() + payload
    expected = hmac.new(settings.WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@csrf_exempt
def bare_webhook(request: HttpRequest) -> HttpResponse:
    """Check the signature, then store the event once (a redelivery inserts nothing)."""
    if not signature_valid(request.body, request.headers.get("Stripe-Signature", "")):
        return HttpResponse(status=400)
    event = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_bare_event (id, type, body) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO NOTHING",
            [event["id"], event["type"], request.body.decode()],
        )
    return HttpResponse(status=200)


urlpatterns = [path("api/webhook/stripe", bare_webhook)]
