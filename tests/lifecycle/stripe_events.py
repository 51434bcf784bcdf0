"""Invoice and subscription events shaped like Stripe's (API 2024-06-20), for the lifecycle
tests; sign and POST them with the `post`/`deliver` fixtures."""

from __future__ import annotations

import secrets
from typing import Any

from billing.simulation import envelope


def subscription_event(
    subscription_id: str,
    *,
    status: str,
    created: int,
    event_type: str = "customer.subscription.updated",
    metadata: dict[str, str] | None = None,
    price_id: str = "price_test_starter_t1_monthly",
    trial_end: int | None = None,
    ended_at: int | None = None,
    customer: str = "cus_test_lifecycle",
) -> dict[str, Any]:
    """A customer.subscription.* event shaped like Stripe's."""
    subscription = {
        "id": subscription_id,
        "object": "subscription",
        "status": status,
        "customer": customer,
        "cancel_at_period_end": False,
        "canceled_at": ended_at,
        "ended_at": ended_at,
        "created": created - 86400,
        "current_period_start": created - 3600,
        "current_period_end": created + 30 * 86400,
        "trial_end": trial_end,
        "livemode": False,
        "metadata": metadata or {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{secrets.token_hex(6)}",
                    "object": "subscription_item",
                    "price": {"id": price_id, "object": "price", "currency": "usd"},
                    "quantity": 1,
                }
            ],
        },
    }
    return envelope(event_type, subscription, created)


def subscription_deleted_event(subscription_id: str, *, at: int) -> dict[str, Any]:
    """customer.subscription.deleted: the subscription ended at `at` (a Stripe timestamp)."""
    return subscription_event(
        subscription_id,
        status="canceled",
        created=at,
        ended_at=at,
        event_type="customer.subscription.deleted",
    )


def invoice_event(
    invoice_id: str,
    *,
    subscription_id: str,
    event_type: str,
    created: int,
    attempt_count: int = 1,
    amount_due: int = 1599,
    currency: str = "usd",
    next_payment_attempt: int | None = None,
) -> dict[str, Any]:
    """An invoice.payment_failed or invoice.paid event shaped like Stripe's."""
    paid = event_type == "invoice.paid"
    invoice = {
        "id": invoice_id,
        "object": "invoice",
        "subscription": subscription_id,
        "customer": "cus_test_lifecycle",
        "customer_email": "buyer@example.com",
        "amount_due": amount_due,
        "amount_paid": amount_due if paid else 0,
        "amount_remaining": 0 if paid else amount_due,
        "currency": currency,
        "attempt_count": attempt_count,
        "attempted": True,
        "next_payment_attempt": None if paid else next_payment_attempt,
        "period_start": created - 30 * 86400,
        "period_end": created,
        "created": created - 3600,
        "status": "paid" if paid else "open",
        "paid": paid,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice_id}",
        "livemode": False,
    }
    return envelope(event_type, invoice, created)
