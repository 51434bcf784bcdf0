"""Fixtures of the remedy tests: Prism serving Stripe's spec with the refund calls
(remedy_stripe_spec.py), and `stripe_world`, which records every request stripe-python sends
and gives the customer's subscription a paid invoice.

Every request goes through Prism, which rejects what the spec does not allow (recorded as
`violations`); its 2022-shaped answers get this test's ids and amounts laid over them. Only
`GET /v1/invoice_payments`, younger than the spec, is answered here, held to stripe-python's
own generated types.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

from tests.remedy.remedy_stripe_spec import STRIPE_SPECS, prism_start, spec_build
from tests.vendor_spec import unavailable

ERROR = {"error": {"type": "invalid_request_error", "message": "refused by the test"}}


@pytest.fixture(scope="session")
def remedy_prism_url(tmp_path_factory):
    """Prism on a free port serving the spec with /v1/invoices and /v1/refunds."""
    if not STRIPE_SPECS.is_dir():
        unavailable("../shared/specs/stripe is absent: no Stripe spec to test against")
    folder = tmp_path_factory.mktemp("stripe-remedy")
    try:
        process, url = prism_start(spec_build(folder / "stripe.json"), folder / "prism.log")
    except (OSError, RuntimeError) as error:
        unavailable(f"Prism could not serve the Stripe spec: {error}")
    yield url
    process.terminate()
    process.wait(timeout=10)


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    idempotency_key: str
    status: int
    violations: str = ""
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class StripeWorld:
    """Stripe's side of the test: paid invoices by subscription, the payment of each,
    one-shot replies ("METHOD /path" -> (status, body)) and every call made."""

    calls: list[Call] = field(default_factory=list)
    invoices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    payments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    replies: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)

    def paid(self, subscription: str, amount: int = 1599, currency: str = "usd") -> str:
        """Give `subscription` a paid invoice of `amount`, paid by a PaymentIntent; its id."""
        invoice = f"in_{_digest(subscription)}"
        self.invoices.setdefault(subscription, []).insert(
            0,
            {"id": invoice, "status": "paid", "amount_paid": amount, "currency": currency},
        )
        self.payments[invoice] = [invoice_payment(invoice, f"pi_{_digest(invoice)}", amount)]
        return invoice

    def refuse(self, key: str, status: int = 400, body: dict[str, Any] | None = None) -> None:
        self.replies.setdefault(key, []).append((status, body or ERROR))

    def made(self, method: str, path: str) -> list[Call]:
        return [call for call in self.calls if (call.method, call.path) == (method, path)]

    def money_calls(self) -> list[Call]:
        """The calls that move money or end a subscription."""
        return [call for call in self.calls if call.method in ("POST", "DELETE")]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:14]


def invoice_payment(invoice: str, payment_intent: str, amount: int) -> dict[str, Any]:
    """An InvoicePayment as API 2026-08-26.dahlia sends it (keys checked against stripe's
    generated type in `_check_invoice_payment`)."""
    return {
        "id": f"inpay_{_digest(invoice)}",
        "object": "invoice_payment",
        "amount_paid": amount,
        "amount_requested": amount,
        "created": 1_700_000_000,
        "currency": "usd",
        "invoice": invoice,
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": 1_700_000_000},
    }


def _fields(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in getattr(klass, "__annotations__", {})}


def _check_invoice_payment(params: dict[str, str], rows: list[dict[str, Any]]) -> str:
    """What stripe-python 15.6.2's types do not allow in this request or answer ("" if none)."""
    allowed = _fields(stripe.params.InvoicePaymentListParams)
    problems = [f"unknown parameter {key}" for key in params if key.split("[")[0] not in allowed]
    for row in rows:
        problems += [f"unknown field {key}" for key in set(row) - _fields(stripe.InvoicePayment)]
        payment = set(row["payment"]) - _fields(stripe.InvoicePayment.Payment)
        problems += [f"unknown payment field {key}" for key in payment]
    return "; ".join(problems)


@pytest.fixture
def stripe_world(settings, remedy_prism_url, monkeypatch) -> StripeWorld:
    """Stripe in test mode behind Prism; every request stripe-python sends is recorded."""
    settings.STRIPE_API_BASE = remedy_prism_url
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_remedy_123"
    settings.STRIPE_LIVE_MODE = False
    world = StripeWorld()
    original = stripe.RequestsClient.request

    def recording(self, method, url, headers, post_data=None):
        parts = urlsplit(url)
        path, key = parts.path, f"{method.upper()} {parts.path}"
        body_text = post_data.decode() if isinstance(post_data, bytes) else post_data or ""
        params = dict(parse_qsl(parts.query)) | dict(parse_qsl(body_text))
        idempotency_key = (headers or {}).get("Idempotency-Key", "")
        violations, reply_headers = "", {"stripe-should-retry": "false"}
        if world.replies.get(key):
            status, body = world.replies[key].pop(0)
        elif path == "/v1/invoice_payments":
            rows = world.payments.get(params.get("invoice", ""), [])
            status, violations = 200, _check_invoice_payment(params, rows)
            body = {"object": "list", "data": rows, "has_more": False, "url": path}
        else:
            content, status, reply_headers = original(self, method, url, headers, post_data)
            body = json.loads(content or b"{}")
            violations = (reply_headers or {}).get("sl-violations", "")
            if status == 200:
                body = _overlay(world, key, params, idempotency_key, body)
        call = Call(method.upper(), path, params, idempotency_key, status, violations, body)
        world.calls.append(call)
        return json.dumps(body).encode(), status, reply_headers

    monkeypatch.setattr(stripe.RequestsClient, "request", recording)
    return world


def _overlay(
    world: StripeWorld, key: str, params: dict[str, str], idempotency_key: str, body: dict
) -> dict[str, Any]:
    """Prism's example answer with this test's ids and amounts."""
    if key == "GET /v1/invoices":
        example = body["data"][0]
        invoices = world.invoices.get(params.get("subscription", ""), [])
        return {**body, "data": [{**example, **invoice} for invoice in invoices]}
    if key == "POST /v1/refunds":
        intent = params.get("payment_intent", "")
        paid = [row for rows in world.payments.values() for row in rows]
        amount = next(
            row["amount_paid"] for row in paid if row["payment"]["payment_intent"] == intent
        )
        refund_id = f"re_{_digest(idempotency_key)}"
        return {**body, "id": refund_id, "amount": amount, "payment_intent": intent, "charge": None}
    if key.startswith("DELETE /v1/subscriptions/"):
        return {**body, "id": key.rsplit("/", 1)[1], "status": "canceled"}
    return body
