"""The order event stream cannot starve the web process: caps per process, per client address
and in total (shared slots), a deadline, `id:` lines with Last-Event-ID, and no stream at all
for an order that can no longer change. The flood itself is tests/test_streams_flood.py."""

from __future__ import annotations

import json
import time

import pytest
from django.core.cache import caches
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import Client

from billing.models import OrderStatus
from billing.order_watch import order_snapshot
from tests.factories import OrderFactory
from wopr.slots import slot_take, slot_wait
from wopr.streams import PROCESS_STREAMS, SLOT_GRACE_SECONDS, _client_pool

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _streams(settings):
    """Generous caps unless a test lowers one; every test must give back what it opened."""
    caches["api"].clear()
    settings.THROTTLE_DEFAULT = "1000/min"
    settings.TRUSTED_PROXIES = []
    settings.ORDER_EVENTS_MAX_PER_PROCESS = 50
    settings.ORDER_EVENTS_MAX_PER_CLIENT = 50
    settings.ORDER_EVENTS_MAX_OPEN = 50
    settings.ORDER_EVENTS_DEADLINE_SECONDS = 30
    yield
    assert PROCESS_STREAMS.open == 0, "a test left a stream open"
    caches["api"].clear()


def events_url(order) -> str:
    return f"/api/v1/orders/{order.pk}/events"


def open_stream(order, address: str = "127.0.0.1", **headers: str):
    """Open a stream without reading it (it holds its permit until closed)."""
    return Client().get(events_url(order), REMOTE_ADDR=address, **headers)


def close(response) -> None:
    """What the WSGI server does when a stream ends (releasing its permit), minus Django's
    end-of-request connection cleanup, which would close the test's transaction."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def events_of(response) -> list[tuple[str, dict]]:
    """(id, data) of every event of a stream read to its end."""
    text = b"".join(response.streaming_content).decode()
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append((fields["id"], json.loads(fields["data"])))
    return events


def assert_refused(response, status: int) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "too_many_streams"


# --- caps ------------------------------------------------------------------------------------


def test_a_client_beyond_its_stream_cap_gets_429_with_retry_after(settings):
    settings.ORDER_EVENTS_MAX_PER_CLIENT = 2
    order = OrderFactory(status=OrderStatus.PENDING)
    held = [open_stream(order), open_stream(order)]

    refused = open_stream(order)
    other_client = open_stream(order, address="192.0.2.9")

    assert [response.status_code for response in held] == [200, 200]
    assert_refused(refused, 429)
    assert other_client.status_code == 200
    close(held[0])
    again = open_stream(order)
    assert again.status_code == 200
    for response in (held[1], other_client, again):
        close(response)


def test_beyond_the_total_cap_every_client_gets_503_with_retry_after(settings):
    settings.ORDER_EVENTS_MAX_OPEN = 2
    order = OrderFactory(status=OrderStatus.PENDING)
    held = [open_stream(order, "192.0.2.1"), open_stream(order, "192.0.2.2")]

    refused = open_stream(order, "192.0.2.3")

    assert [response.status_code for response in held] == [200, 200]
    assert_refused(refused, 503)
    for response in held:
        close(response)


def test_a_process_never_gives_all_its_threads_to_streams(settings):
    settings.ORDER_EVENTS_MAX_PER_PROCESS = 1
    order = OrderFactory(status=OrderStatus.PENDING)
    held = open_stream(order, "192.0.2.1")

    refused = open_stream(order, "192.0.2.2")

    assert held.status_code == 200
    assert_refused(refused, 503)
    assert Client().get(f"/api/v1/orders/{order.pk}").status_code == 200
    close(held)
    assert PROCESS_STREAMS.open == 0


def test_a_refused_stream_holds_nothing(settings):
    settings.ORDER_EVENTS_MAX_OPEN = 1
    order = OrderFactory(status=OrderStatus.PENDING)
    held = open_stream(order, "192.0.2.1")

    assert_refused(open_stream(order, "192.0.2.2"), 503)

    assert PROCESS_STREAMS.open == 1  # only the stream that is open
    # The refused client's own slot (taken before the total was found full) was given back.
    assert slot_take(pool=_client_pool("192.0.2.2"), size=1, ttl=5) is not None
    close(held)


def test_slots_of_a_crashed_process_expire_after_the_deadline(settings):
    """A process that dies holding slots never releases them: they expire on their own."""
    ttl = settings.ORDER_EVENTS_DEADLINE_SECONDS + SLOT_GRACE_SECONDS
    for _ in range(3):
        assert slot_take(pool="streams:crashed", size=3, ttl=ttl) is not None

    assert slot_take(pool="streams:crashed", size=3, ttl=ttl) is None
    assert ttl - 2 < slot_wait(pool="streams:crashed", size=3) <= ttl


# --- deadline, ids, Last-Event-ID ------------------------------------------------------------


def test_a_stream_ends_at_its_deadline_and_gives_its_permit_back(settings):
    settings.ORDER_EVENTS_DEADLINE_SECONDS = 1.5
    settings.ORDER_EVENTS_MAX_PER_CLIENT = 1
    order = OrderFactory(status=OrderStatus.PENDING)

    started = time.monotonic()
    events = events_of(open_stream(order))
    ended = time.monotonic() - started

    assert [data["status"] for _, data in events] == ["pending"]
    assert ended >= 1.5
    assert PROCESS_STREAMS.open == 0
    second = open_stream(order)  # the client's only slot is free again
    assert second.status_code == 200
    close(second)


def test_every_event_has_an_id_and_a_reconnect_is_not_sent_the_same_state(settings):
    settings.ORDER_EVENTS_DEADLINE_SECONDS = 1.5
    order = OrderFactory(status=OrderStatus.PENDING)
    [(event_id, data)] = events_of(open_stream(order))
    assert event_id == order_snapshot(order.pk).event_id

    again = events_of(open_stream(order, HTTP_LAST_EVENT_ID=event_id))
    stale = events_of(open_stream(order, HTTP_LAST_EVENT_ID="something-older"))

    assert again == []
    assert stale == [(event_id, data)]


# --- orders that can no longer change --------------------------------------------------------


@pytest.mark.parametrize(
    "final",
    [
        {"status": OrderStatus.EXPIRED},
        {"status": OrderStatus.CANCELLED},
        {"status": OrderStatus.PAID, "needs_attention": True},
    ],
    ids=["expired", "cancelled", "paid-flagged-without-beacon"],
)
def test_a_final_order_gets_its_status_at_once_and_no_stream(settings, final):
    settings.ORDER_EVENTS_MAX_PER_PROCESS = 0  # no stream could be opened at all
    order = OrderFactory(**final)

    response = open_stream(order)

    assert response.status_code == 200
    assert not response.streaming  # answered whole: no thread held, nothing to wait for
    assert response["Content-Type"].startswith("text/event-stream")
    [data] = [
        json.loads(line[len("data: ") :])
        for line in response.content.decode().splitlines()
        if line.startswith("data: ")
    ]
    assert data["status"] == final["status"]


def test_a_final_order_already_seen_answers_204_so_the_browser_stops_reconnecting():
    order = OrderFactory(status=OrderStatus.EXPIRED)
    event_id = order_snapshot(order.pk).event_id

    response = open_stream(order, HTTP_LAST_EVENT_ID=event_id)

    assert response.status_code == 204
    assert response.content == b""


def test_a_paid_order_still_being_processed_is_streamed():
    order = OrderFactory(status=OrderStatus.PAID, needs_attention=False)

    response = open_stream(order)

    assert response.streaming
    close(response)
