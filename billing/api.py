"""The storefront's JSON API: catalogue, beacon-name check, checkout, order status (its
Server-Sent Events stream is billing.order_events). Thin views: the work is in billing.checkout."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from billing.catalog_cache import catalog_rendered
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
    def get(self, request: Request) -> HttpResponse:
        # Rendered once per catalogue version (billing.catalog_cache): no serializer, no JSON
        # encoding and no hashing per request, and a 304 builds nothing at all.
        catalog = catalog_rendered(source=catalog_public)
        etag = catalog.etag
        matches = [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]
        if etag in matches or f"W/{etag}" in matches or "*" in matches:
            response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
        else:
            response = HttpResponse(catalog.content, content_type="application/json")
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
