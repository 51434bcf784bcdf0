"""Issue 9, item 1, proved from outside: with 50 order event streams open against gunicorn
started as in the container, /api/health and a signed Stripe webhook still answer within 1 s.

The 50 streams come from 25 loopback addresses (127.0.0.2 ... 127.0.0.26), two each, so the
default per-address cap (4) stays in force. WEB_THREADS is raised to 80 for the test (so the
per-process stream cap, 60, admits all 50 streams even if one of the two workers accepts every
one of them); the caps themselves are tested in tests/test_streams.py.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from django.core.cache import caches

from billing.models import OrderStatus
from billing.simulation import checkout_completed_event, encode, sign
from tests.factories import OrderFactory
from tests.loopback import database_url
from tests.service import running_web

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WEBHOOK_SECRET = "whsec_stream_flood_test"
STREAMS = 50
ADDRESSES = 25


def open_stream(base: str, path: str, source: str) -> socket.socket:
    """A raw HTTP connection from `source` that has received the stream's first event."""
    url = urlsplit(base)
    sock = socket.create_connection(
        (url.hostname, url.port), timeout=10, source_address=(source, 0)
    )
    request = f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n\r\n"
    sock.sendall(request.encode())
    received = b""
    while b"\ndata: " not in received:
        chunk = sock.recv(65536)
        assert chunk, f"stream from {source} closed early: {received[:300]!r}"
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:300]
    return sock


def still_open(sock: socket.socket) -> bool:
    """Whether the server has not closed the stream (nothing or more events waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)


def post_webhook(base: str, beacon_name: str) -> httpx.Response:
    """A signed checkout.session.completed, as Stripe sends it."""
    payload = encode(checkout_completed_event(beacon_name=beacon_name, email="f@example.com"))
    return httpx.post(
        f"{base}/api/webhook/stripe",
        content=payload,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(payload, WEBHOOK_SECRET),
        },
        timeout=10,
    )


def timed(call) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_fifty_open_streams_leave_health_and_the_webhook_answering_within_a_second(tmp_path):
    caches["api"].clear()  # the test database's cache table: no slots of earlier runs
    order = OrderFactory(status=OrderStatus.PENDING, beacon_name="flood1")
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": "",
        "DEBUG": "true",
        "SECRET_KEY": "stream-flood-test-secret-key",
        "STRIPE_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DOCUMENTS_ROOT": str(tmp_path / "documents"),
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "80",
    }
    streams: list[socket.socket] = []
    with running_web(env, tmp_path / "logs") as base:
        try:
            # A served site is warm: each worker has imported the webhook's code path once.
            baseline = [timed(lambda n=n: post_webhook(base, f"warm{n}"))[1] for n in range(4)]
            for index in range(STREAMS):
                source = f"127.0.0.{2 + index % ADDRESSES}"
                streams.append(open_stream(base, f"/api/v1/orders/{order.pk}/events", source))

            health, health_seconds = timed(lambda: httpx.get(f"{base}/api/health", timeout=10))
            webhook, webhook_seconds = timed(lambda: post_webhook(base, "flood2"))

            assert sum(still_open(sock) for sock in streams) == STREAMS
            assert health.status_code == 200, health.text
            assert webhook.status_code == 200, webhook.text
            assert health_seconds < 1.0, f"/api/health took {health_seconds:.2f} s"
            assert webhook_seconds < 1.0, f"the webhook took {webhook_seconds:.2f} s"
            print(
                f"with {STREAMS} streams: health {health_seconds * 1000:.0f} ms, webhook "
                f"{webhook_seconds * 1000:.0f} ms (without: webhook "
                f"{', '.join(f'{seconds * 1000:.0f}' for seconds in baseline)} ms)"
            )
        finally:
            for sock in streams:
                sock.close()
