"""Fixtures of the storefront API tests: a clean throttle, checkout payloads, the Stripe mock
(Prism serving Stripe's own OpenAPI spec) and a recorder of every request sent to Stripe."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe
from django.core.cache import caches
from django.test import Client

from tests.vendor_spec import mock_server
from wopr import throttle

SHARED = Path(__file__).resolve().parents[3] / "shared"
STRIPE_MOCK = "http://127.0.0.1:4012"


@pytest.fixture(autouse=True)
def _fresh_throttle(settings, monkeypatch):
    """Throttle counters live in a process-wide cache: start every test with none. In memory
    here, so the pinned query counts are the views' own; the shared (database) cache is proved
    across processes in tests/test_throttle_shared.py."""
    settings.CACHES = {
        **settings.CACHES,
        "api": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t-api"},
    }
    caches["api"].clear()
    # Mid-minute, so no fixed throttle window ends between a test's requests.
    monkeypatch.setattr(throttle, "clock", lambda: 1_800_000_030.0)
    settings.THROTTLE_CHECKOUT = "1000/min"
    settings.THROTTLE_DEFAULT = "1000/min"
    settings.TRUSTED_PROXIES = []
    yield
    caches["api"].clear()


@pytest.fixture
def api() -> Client:
    """An anonymous client, as the storefront and the Beacons are."""
    return Client()


@pytest.fixture
def post_json(api):
    def _post(url: str, body: Any, **headers: str):
        return api.post(url, json.dumps(body), content_type="application/json", **headers)

    return _post


@pytest.fixture
def checkout_payload():
    """A valid checkout request; keyword arguments replace fields (None drops one)."""

    def _payload(**changes: Any) -> dict[str, Any]:
        payload = {
            "bundle": "starter",
            "tier": "t1",
            "period": "monthly",
            "beacon_name": "ada-lab",
            "region": "eu-central",
            "email": "ada@example.com",
            "name": "Ada Lovelace",
        }
        payload.update(changes)
        return {key: value for key, value in payload.items() if value is not None}

    return _payload


# --- Stripe --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stripe_mock_url() -> str:
    """Prism on 127.0.0.1:4012 serving Stripe's spec, started when it does not answer."""
    return mock_server(STRIPE_MOCK)


@pytest.fixture
def stripe_mock(settings, stripe_mock_url, stripe_calls):
    """Checkout enabled in test mode, talking to the Stripe mock (every request recorded)."""
    settings.STRIPE_API_BASE = stripe_mock_url
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_123"
    settings.STRIPE_LIVE_MODE = False
    return stripe_mock_url


@dataclass
class StripeCall:
    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str
    status: int
    violations: str = ""
    body: dict[str, Any] = field(default_factory=dict)


class StripeRecorder:
    """What stripe-python sent, and canned answers to send back instead of the mock's."""

    def __init__(self) -> None:
        self.calls: list[StripeCall] = []
        # "METHOD /path" -> (status, body, headers), used once.
        self.replies: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {}

    def posts(self, path: str) -> list[StripeCall]:
        return [call for call in self.calls if call.method == "POST" and call.path == path]


@pytest.fixture
def stripe_calls(monkeypatch) -> StripeRecorder:
    """Every HTTP request stripe-python sends (through the mock), with its answer.

    Prism's only example of a checkout session is Stripe's 2022 fixture, an expired session
    whose `url` is null; a new hosted session always has one, so the recorder fills it in
    (after Prism validated the request) to let the test follow the URL through our API.
    """
    recorder = StripeRecorder()
    original = stripe.RequestsClient.request

    def recording(self, method, url, headers, post_data=None):
        path = urlsplit(url).path
        key = f"{method.upper()} {path}"
        if key in recorder.replies:
            status, body, reply_headers = recorder.replies.pop(key)
            content = json.dumps(body).encode()
        else:
            content, status, reply_headers = original(self, method, url, headers, post_data)
            body = json.loads(content or b"{}")
            if key == "POST /v1/checkout/sessions" and status == 200 and not body.get("url"):
                body["url"] = f"https://checkout.stripe.com/c/pay/{body['id']}"
                content = json.dumps(body).encode()
            if key == "POST /v1/customers" and status == 200:
                # Prism answers every create with one fixture id; Stripe makes a new customer
                # per request (and replays it for a repeated idempotency key), so do we.
                idempotency_key = (headers or {}).get("Idempotency-Key", "")
                body["id"] = f"cus_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:14]}"
                content = json.dumps(body).encode()
        form = dict(
            parse_qsl(post_data.decode() if isinstance(post_data, bytes) else post_data or "")
        )
        recorder.calls.append(
            StripeCall(
                method=method.upper(),
                path=path,
                form=form,
                idempotency_key=(headers or {}).get("Idempotency-Key", ""),
                status=status,
                violations=(reply_headers or {}).get("sl-violations", ""),
                body=body,
            )
        )
        return content, status, reply_headers

    monkeypatch.setattr(stripe.RequestsClient, "request", recording)
    return recorder
