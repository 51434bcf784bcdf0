"""Shared set-up of the life-after-purchase tests: Stripe-shaped invoice and subscription
events signed and POSTed through the real webhook view, a movable clock, and a bought Beacon.

Time travel: `clock.advance(days=...)` moves `django.utils.timezone.now` (which the job engine,
the fake provider and every model use); the Stripe signature check keeps the real time, and each
event's own `created` follows the moved clock, as Stripe's would.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command

from billing.models import Order
from billing.simulation import checkout_completed_event, encode, sign
from provisioning.models import Beacon
from provisioning.tasks import jobs_sweep
from tests.clock import clock_fixture  # noqa: F401  (the `clock` fixture, shared)

SECRET = "whsec_test_secret"
URL = "/api/webhook/stripe"


@pytest.fixture
def post(client):
    """POST a signed event through the real webhook view (on-commit work not run)."""

    def _post(event: dict[str, Any]) -> Any:
        payload = encode(event)
        response = client.post(
            URL,
            payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sign(payload, SECRET),
        )
        assert response.status_code == 200, response.content
        return response

    return _post


@pytest.fixture
def deliver(post, django_capture_on_commit_callbacks):
    """POST an event and run the work it enqueues after commit (tasks run inline)."""

    def _deliver(event: dict[str, Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return post(event)

    return _deliver


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """One worker cycle: the periodic sweep and everything it starts."""

    def _sweep() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return jobs_sweep()

    return _sweep


@dataclass
class Bought:
    """A Beacon bought through a signed checkout event, provisioned on the fake cloud."""

    beacon: Beacon
    order: Order
    subscription_id: str

    def refresh(self) -> Bought:
        self.beacon.refresh_from_db()
        self.order.refresh_from_db()
        return self


@pytest.fixture
def buy(deliver, clock):
    """`buy(name)`: check out and provision a Beacon; its checkout event is Stripe-timed now."""

    def _buy(name: str = "life1", **kwargs: Any) -> Bought:
        event = checkout_completed_event(beacon_name=name, **kwargs)
        event["created"] = clock.stamp()
        deliver(event)
        beacon = Beacon.objects.select_related("order").get(name=name)
        return Bought(beacon, beacon.order, event["data"]["object"]["subscription"])

    return _buy


@pytest.fixture
def reconcile(django_capture_on_commit_callbacks):
    """Run the command; returns (exit status, parsed --json output)."""

    def _reconcile(*args: str) -> tuple[int, dict]:
        out = io.StringIO()
        code = 0
        with django_capture_on_commit_callbacks(execute=True):
            try:
                call_command("reconcile", "--json", *args, stdout=out)
            except SystemExit as exit_:
                code = int(exit_.code)
        return code, json.loads(out.getvalue())

    return _reconcile
