"""Time from the webhook's answer to an `active` Beacon on the fake cloud, with gunicorn and a
qcluster running, for one purchase and for many at once; against the fake provider's own
waiting time (its server boots in FAKE_SERVER_BOOT_SECONDS while its Beacon installs for
FAKE_BEACON_INSTALL_SECONDS from the server's creation, so the floor is the longer of the two).

The Beacons' states are read from the database (the Beacon model) every POLL seconds.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from billing.simulation import checkout_completed_event, encode, sign

POLL = 0.1


@dataclass(frozen=True)
class Flow:
    """Seconds from each accepted webhook to its Beacon seen active (missing: never active)."""

    count: int
    to_active: list[float]
    wall: float  # first webhook sent to last Beacon active
    statuses: dict[str, int]

    @property
    def done(self) -> int:
        return len(self.to_active)

    @property
    def p50(self) -> float:
        return statistics.median(self.to_active) if self.to_active else float("nan")

    @property
    def worst(self) -> float:
        return max(self.to_active) if len(self.to_active) == self.count else float("inf")


def _post(base: str, secret: str, name: str) -> tuple[str, float]:
    payload = encode(checkout_completed_event(beacon_name=name, email=f"{name}@example.org"))
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)}
    response = httpx.post(f"{base}/api/webhook/stripe", content=payload, headers=headers)
    response.raise_for_status()
    return name, time.monotonic()


def _statuses(names: list[str]) -> dict[str, str]:
    from provisioning.models import Beacon

    return dict(Beacon.objects.filter(name__in=names).values_list("name", "status"))


def purchases_measure(base: str, secret: str, names: list[str], timeout: float) -> Flow:
    """Send one webhook per name (8 at a time), then watch until all are active or time is up."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = dict(pool.map(lambda name: _post(base, secret, name), names))
    active: dict[str, float] = {}
    statuses: dict[str, str] = {}
    while len(active) < len(names) and time.monotonic() - started < timeout:
        statuses = _statuses(names)
        now = time.monotonic()
        for name, status in statuses.items():
            if status == "active" and name not in active:
                active[name] = now - accepted[name]
        time.sleep(POLL)
    last = max((accepted[name] + seconds for name, seconds in active.items()), default=started)
    wall = last - started
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return Flow(len(names), sorted(active.values()), wall, counts)
