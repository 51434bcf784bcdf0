"""Realistic Stripe events, signed the way Stripe signs them: for `simulate_purchase` and the
tests, so a newcomer sees the flow without a Stripe account."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any


def checkout_completed_event(
    *,
    bundle: str = "starter",
    tier: str = "t1",
    beacon_name: str = "demo1",
    region: str = "eu-central",
    email: str = "buyer@example.com",
    order_id: str = "",
    session_id: str = "",
    payment_status: str = "paid",
    event_type: str = "checkout.session.completed",
    custom_domain: str = "",
) -> dict[str, Any]:
    """A `checkout.session.completed` event shaped like Stripe's (API 2024+)."""
    session_id = session_id or f"cs_test_{secrets.token_hex(12)}"
    metadata = _checkout_metadata(bundle, tier, beacon_name, region, order_id, custom_domain)
    now = int(time.time())
    session = {
        "id": session_id,
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": payment_status,
        "client_reference_id": order_id or None,
        "customer": f"cus_{secrets.token_hex(7)}",
        "customer_email": None,
        "customer_details": {"email": email, "name": "Ada Lovelace", "address": None},
        "subscription": f"sub_{secrets.token_hex(12)}",
        "metadata": metadata,
        "amount_total": 1599,
        "currency": "usd",
        "livemode": False,
        "created": now,
        "expires_at": now + 86400,
        "url": None,
    }
    return envelope(event_type, session, now)


def _checkout_metadata(
    bundle: str, tier: str, beacon_name: str, region: str, order_id: str, custom_domain: str
) -> dict[str, str]:
    """What the storefront puts in a Checkout Session's metadata."""
    metadata = {
        "wopr_bundle": bundle,
        "wopr_tier": tier,
        "wopr_beacon_name": beacon_name,
        "wopr_region": region,
    }
    if order_id:
        metadata["wopr_order_id"] = order_id
    if custom_domain:
        metadata["wopr_custom_domain"] = custom_domain
    return metadata


def envelope(event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    """A Stripe event (API 2024-06-20) carrying `obj`."""
    return {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header value for `payload`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
