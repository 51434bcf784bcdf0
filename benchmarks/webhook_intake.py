"""Webhook intake: the real `/api/webhook/stripe` against the bare HMAC-and-insert view
(benchmarks/bare), both under gunicorn with the project's settings on the same PostgreSQL.

For each server: the most events per second with a fixed number of signed events sent by a
thread pool, the same with every event delivered twice (the copy at a random distance, now and
then at the same moment), and latency at half the measured maximum rate. Server CPU per event
is the CPU time of the gunicorn processes (from /proc) divided by the events sent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from benchmarks import harness, load
from billing.simulation import checkout_completed_event, encode, sign

PATH = "/api/webhook/stripe"
CONCURRENCY = 8


@dataclass(frozen=True)
class Counts:
    """Events per run: the most-throughput run, the delivered-twice run, the paced run's cap."""

    once: int
    twice: int
    paced_seconds: float = 6.0


@dataclass(frozen=True)
class Intake:
    """What one server did: the three runs and server CPU seconds per request of each."""

    once: load.Result
    twice: load.Result
    paced: load.Result
    cpu_once: float
    cpu_twice: float


def signed_requests(prefix: str, count: int, secret: str, *, twice: bool) -> list[load.Request]:
    """`count` checkout events (distinct Beacon names), each signed as Stripe signs them."""
    payloads = [
        encode(checkout_completed_event(beacon_name=f"{prefix}{n}", email=f"{prefix}{n}@ex.org"))
        for n in range(count)
    ]
    if twice:
        payloads = payloads * 2
        random.Random(7).shuffle(payloads)
    return [
        (
            "POST",
            PATH,
            payload,
            {"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)},
        )
        for payload in payloads
    ]


def _measured(
    server: harness.Server, requests: list[load.Request], rate: float = 0.0
) -> tuple[load.Result, float]:
    before = harness.tree_cpu(server)
    result = load.run(server.base, requests, concurrency=CONCURRENCY, rate=rate)
    return result, (harness.tree_cpu(server) - before) / result.count


def intake_measure(server: harness.Server, prefix: str, secret: str, counts: Counts) -> Intake:
    """The three runs against one running server."""
    load.run(server.base, signed_requests(f"{prefix}w", 16, secret, twice=False), concurrency=4)
    once, cpu_once = _measured(
        server, signed_requests(f"{prefix}a", counts.once, secret, twice=False)
    )
    twice, cpu_twice = _measured(
        server, signed_requests(f"{prefix}b", counts.twice, secret, twice=True)
    )
    rate = once.rate / 2
    paced_count = max(50, int(rate * counts.paced_seconds))
    paced, _ = _measured(
        server, signed_requests(f"{prefix}c", paced_count, secret, twice=False), rate
    )
    return Intake(once, twice, paced, cpu_once, cpu_twice)


def failures(result: load.Result) -> str:
    """`` when every answer was 200, else the status counts (shown in the table)."""
    others = {status: n for status, n in result.statuses.items() if status != 200}
    return f" (non-200: {others})" if others else ""
