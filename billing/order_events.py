"""GET /api/v1/orders/<id>/events: the order's status as Server-Sent Events.

A stream holds a gunicorn thread while it is open, so it is bounded every way (see
wopr.streams): a deadline below the worker timeout, caps per process, per client address and in
total, and no stream at all for an order that can no longer change. Every event carries an `id:`
(a digest of the status it sends), so a client that reconnects with `Last-Event-ID` is not sent
the same status again, and one that already holds a final status gets 204, which tells an
EventSource to stop reconnecting.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers
from rest_framework.exceptions import APIException, NotFound, Throttled
from rest_framework.request import Request
from rest_framework.response import Response

from billing.order_watch import ORDER_WATCHER, OrderSnapshot, OrderWatcher, order_snapshot
from wopr.api_common import ErrorSerializer, PublicAPIView, client_ip, error_responses
from wopr.streams import StreamPermit, StreamRefused, stream_permit_take

TAG = "storefront"
RETRY_LINE = b"retry: 3000\n\n"  # an EventSource waits 3 s before reconnecting
KEEPALIVE_SECONDS = 10  # proxies close silent connections; a write also finds a gone client


def order_events(
    order_id: uuid.UUID,
    first: OrderSnapshot,
    *,
    last_event_id: str,
    deadline: float,
    watcher: OrderWatcher = ORDER_WATCHER,
) -> Iterator[bytes]:
    """An event whenever the status differs from the last one the client holds, until the
    order can no longer change or the deadline (time.monotonic()) passes. The process's
    watcher reads the order (one connection for all streams); this only waits for its rounds."""
    yield RETRY_LINE
    seen = watcher.watch(order_id)
    try:
        snapshot, sent, quiet_since = first, last_event_id, time.monotonic()
        while True:
            if snapshot.event_id != sent:
                yield snapshot.as_event()
                sent, quiet_since = snapshot.event_id, time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
            if snapshot.final or time.monotonic() >= deadline:
                return
            wait = min(KEEPALIVE_SECONDS, deadline - time.monotonic())
            seen, news = watcher.wait(order_id, seen, timeout=wait)
            snapshot = news or snapshot
    finally:
        watcher.unwatch(order_id)


class ReleasingStream:
    """The stream's iterator, closed by the WSGI server when the response ends (finished,
    deadline or client gone): closing releases the stream's permit, even when the body was
    never started."""

    def __init__(self, events: Iterator[bytes], release: Callable[[], None]) -> None:
        self._events = events
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        try:
            getattr(self._events, "close", lambda: None)()
        finally:
            self._release()


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets a client ask for `text/event-stream`; only error bodies are rendered by it."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):
        return json.dumps(data).encode() if data is not None else b""


class StreamsBusy(APIException):
    status_code = 503
    default_code = "too_many_streams"
    default_detail = "Too many open event streams; try again shortly."


# One event of the stream (what an EventSource hands its listener).
SERVER_SENT_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["message"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/OrderStatus"},
        },
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
STREAM_RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429, 503], required=True
)
LAST_EVENT_ID = OpenApiParameter(
    "Last-Event-ID",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The `id` of the last event received; that status is not sent again.",
)


def _refused(refusal: StreamRefused) -> APIException:
    if refusal.status == 429:
        return Throttled(wait=refusal.retry_after, detail=str(refusal), code="too_many_streams")
    error = StreamsBusy(str(refusal))
    error.retry_after = refusal.retry_after  # type: ignore[attr-defined]
    return error


class OrderEventsView(PublicAPIView):
    """The order's status as Server-Sent Events (the same JSON as `data:`), for the success
    page; the stream ends when the order can no longer change or after
    ORDER_EVENTS_DEADLINE_SECONDS (the client reconnects with Last-Event-ID)."""

    renderer_classes = [renderers.JSONRenderer, EventStreamRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        """Errors are JSON (as documented) even when the client asked for an event stream."""
        response = super().handle_exception(exc)
        if retry_after := getattr(exc, "retry_after", None):
            response["Retry-After"] = str(retry_after)
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response

    @extend_schema(
        tags=[TAG],
        operation_id="order_events",
        parameters=[STREAM_RETRY_AFTER, LAST_EVENT_ID, OpenApiParameter("format", exclude=True)],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                SERVER_SENT_EVENT,
                description="One event per change; its `data` is the order status JSON.",
            ),
            204: OpenApiResponse(
                description="The order can no longer change and Last-Event-ID is its status."
            ),
            **error_responses(404, 429),
            (503, "application/json"): OpenApiResponse(
                ErrorSerializer,
                description="Too many open event streams; wait for Retry-After seconds.",
            ),
        },
    )
    def get(self, request: Request, order_id: uuid.UUID) -> HttpResponse:
        first = order_snapshot(order_id)
        if first is None:
            raise NotFound()
        last_event_id = request.headers.get("Last-Event-ID", "").strip()
        if first.final:
            # Answered at once, holding no thread and no permit.
            if last_event_id == first.event_id:
                return HttpResponse(status=204)
            return _event_response(HttpResponse, RETRY_LINE + first.as_event())
        try:
            permit: StreamPermit = stream_permit_take(client=client_ip(request))
        except StreamRefused as refusal:
            raise _refused(refusal) from refusal
        deadline = time.monotonic() + settings.ORDER_EVENTS_DEADLINE_SECONDS
        events = order_events(order_id, first, last_event_id=last_event_id, deadline=deadline)
        return _event_response(StreamingHttpResponse, ReleasingStream(events, permit.release))


def _event_response(
    response_class: type[HttpResponse] | type[StreamingHttpResponse], body: Any
) -> HttpResponse | StreamingHttpResponse:
    """An event-stream answer that no cache or proxy holds back."""
    response = response_class(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # nginx/Caddy: pass events through unbuffered
    return response
