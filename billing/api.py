"""The storefront's JSON API: catalogue, beacon-name check, checkout, order status (and its
Server-Sent Events stream). Thin views: the work is in billing.checkout."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from billing.checkout import (
    CheckoutDisabled,
    OrderMismatch,
    StripeFailed,
    beacon_name_reason,
    catalog_public,
    checkout_start,
)
from billing.models import Order
from billing.serializers import (
    BeaconNameSerializer,
    CatalogSerializer,
    CheckoutInputSerializer,
    CheckoutOutputSerializer,
    OrderStatusSerializer,
)
from provisioning.models import FINISHED_JOB_STATES
from wopr.api_common import (
    RETRY_AFTER,
    BadGateway,
    CheckoutThrottle,
    PublicAPIView,
    ServiceUnavailable,
    error_responses,
)

TAG = "storefront"


class CatalogView(PublicAPIView):
    """Bundles, tiers, prices in the active Stripe mode and regions with their availability."""

    @extend_schema(
        tags=[TAG],
        operation_id="catalog",
        parameters=[
            OpenApiParameter(
                "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False
            ),
            OpenApiParameter(
                "ETag", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200, 304]
            ),
            RETRY_AFTER,
        ],
        responses={
            200: CatalogSerializer,
            304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)."),
            **error_responses(429),
        },
    )
    def get(self, request: Request) -> Response:
        body = CatalogSerializer(catalog_public()).data
        encoded = json.dumps(body, sort_keys=True, cls=DjangoJSONEncoder).encode()
        etag = f'"{hashlib.sha256(encoded).hexdigest()[:32]}"'
        matches = [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]
        if etag in matches or f"W/{etag}" in matches or "*" in matches:
            response = Response(status=status.HTTP_304_NOT_MODIFIED)
        else:
            response = Response(body)
        response["ETag"] = etag
        response["Cache-Control"] = "public, max-age=60"
        return response


class BeaconNameView(PublicAPIView):
    """Whether a Beacon name can be bought now."""

    @extend_schema(
        tags=[TAG],
        operation_id="beacon_name_check",
        parameters=[RETRY_AFTER],
        responses={200: BeaconNameSerializer, **error_responses(404, 429)},
    )
    def get(self, request: Request, name: str) -> Response:
        reason = beacon_name_reason(name)
        return Response(
            BeaconNameSerializer({"name": name, "available": reason is None, "reason": reason}).data
        )


class CheckoutView(PublicAPIView):
    """Start a Stripe Checkout for a Beacon; repeat with the same `order_id` safely."""

    throttle_classes = [CheckoutThrottle]

    @extend_schema(
        tags=[TAG],
        operation_id="checkout",
        request=CheckoutInputSerializer,
        examples=[
            OpenApiExample(
                "A Starter Beacon",
                request_only=True,
                value={
                    "bundle": "starter",
                    "tier": "t1",
                    "period": "monthly",
                    "beacon_name": "ada-lab",
                    "region": "eu-central",
                    "email": "ada@example.com",
                    "name": "Ada Lovelace",
                },
            )
        ],
        parameters=[RETRY_AFTER],
        responses={201: CheckoutOutputSerializer, **error_responses(400, 429, 502, 503)},
    )
    def post(self, request: Request) -> Response:
        serializer = CheckoutInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            started = checkout_start(request=serializer.to_request())
        except OrderMismatch as error:
            raise ValidationError({"order_id": [str(error)]}) from error
        except CheckoutDisabled as error:
            raise ServiceUnavailable(str(error), code="checkout_disabled") from error
        except StripeFailed as error:
            raise BadGateway(str(error), code="payment_provider_error") from error
        return Response(CheckoutOutputSerializer(started).data, status=status.HTTP_201_CREATED)


def order_status(order_id: uuid.UUID) -> dict[str, Any] | None:
    """The order's public status (None when there is no such order)."""
    order = Order.objects.select_related("beacon").filter(pk=order_id).first()
    return None if order is None else dict(OrderStatusSerializer(order).data)


class OrderStatusView(PublicAPIView):
    """An order's progress. The order id (an unguessable UUID) is the capability."""

    @extend_schema(
        tags=[TAG],
        operation_id="order_status",
        parameters=[RETRY_AFTER],
        responses={200: OrderStatusSerializer, **error_responses(404, 429)},
    )
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        body = order_status(order_id)
        if body is None:
            raise NotFound()
        response = Response(body)
        response["Cache-Control"] = "no-store"
        return response


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


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets a client ask for `text/event-stream`; only error bodies are rendered by it."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):
        return json.dumps(data).encode() if data is not None else b""


def _finished(body: dict[str, Any]) -> bool:
    job = body.get("job")
    if job and job["state"] in FINISHED_JOB_STATES:
        return True
    return body["status"] in ("expired", "cancelled")


def order_events(order_id: uuid.UUID, first: dict[str, Any]) -> Iterator[bytes]:
    """`data:` lines whenever the order's status changes, until the job ends or the deadline.

    Polls the database once a second and closes the connection between polls, so a watching
    browser does not hold a database connection for minutes.
    """
    deadline = time.monotonic() + settings.ORDER_EVENTS_DEADLINE_SECONDS
    last: dict[str, Any] | None = None
    body: dict[str, Any] | None = first
    idle = 0.0
    yield b"retry: 3000\n\n"
    while body is not None:
        if body != last:
            yield f"data: {json.dumps(body, cls=DjangoJSONEncoder)}\n\n".encode()
            last, idle = body, 0.0
        elif idle >= 15:
            yield b": keep-alive\n\n"  # proxies close silent connections
            idle = 0.0
        if _finished(body) or time.monotonic() >= deadline:
            return
        if not connection.in_atomic_block:
            connection.close()
        pause = min(1.0, deadline - time.monotonic())
        time.sleep(max(pause, 0))
        idle += pause
        body = order_status(order_id)


class OrderEventsView(PublicAPIView):
    """The order's status as Server-Sent Events (the same JSON as `data:`), for the success
    page; the stream ends when the job ends or after ORDER_EVENTS_DEADLINE_SECONDS."""

    renderer_classes = [renderers.JSONRenderer, EventStreamRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        """Errors are JSON (as documented) even when the client asked for an event stream."""
        response = super().handle_exception(exc)
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response

    @extend_schema(
        tags=[TAG],
        operation_id="order_events",
        parameters=[RETRY_AFTER, OpenApiParameter("format", exclude=True)],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                SERVER_SENT_EVENT,
                description="One event per change; its `data` is the order status JSON.",
            ),
            **error_responses(404, 429),
        },
    )
    def get(self, request: Request, order_id: uuid.UUID) -> StreamingHttpResponse:
        first = order_status(order_id)
        if first is None:
            raise NotFound()
        response = StreamingHttpResponse(
            order_events(order_id, first), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # nginx/Caddy: pass events through unbuffered
        return response
