"""Backups test set-up: a movable clock, signed checkout events through the real webhook, a
bought Beacon on the fake cloud, and one worker cycle (the job sweep) that runs what is due."""

from __future__ import annotations

from typing import Any

import pytest

from billing.simulation import checkout_completed_event, encode, sign
from provisioning.models import Beacon
from provisioning.tasks import jobs_sweep
from tests.clock import clock_fixture  # noqa: F401  (the `clock` fixture, shared)

SECRET = "whsec_test_secret"


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run `work()` and everything it enqueues after commit (tasks run inline)."""

    def _run(work: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return work()

    return _run


@pytest.fixture
def sweep(run):
    """One worker cycle: the job sweep re-enqueues every due job (each runs one step)."""

    def _sweep(times: int = 1) -> None:
        for _ in range(times):
            run(jobs_sweep)

    return _sweep


@pytest.fixture
def buy(client, run):
    """`buy(name, tier=...)`: check out and provision a Beacon on the fake cloud."""

    def _buy(name: str, **kwargs: Any) -> Beacon:
        payload = encode(checkout_completed_event(beacon_name=name, **kwargs))
        signature = sign(payload, SECRET)

        def post() -> Any:
            return client.post(
                "/api/webhook/stripe",
                payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signature,
            )

        assert run(post).status_code == 200
        beacon = Beacon.objects.get(name=name)
        assert beacon.status == "active", beacon.status
        return beacon

    return _buy
