"""The customer self-service API under /api/v1/me/: a signed-in customer's Beacons, Stripe's
billing portal, cancel at period end (POST) and its undo (DELETE), the welcome e-mail again.

Thin views: the token check is billing.customer_auth, the work billing.selfservice. Another
customer's Beacon is 404, exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.customer_auth import (
    CustomerPrincipal,
    CustomerTokenAuthentication,
    customer_beacon,
    customer_beacons,
    request_customer,
)
from billing.selfservice import (
    SelfServiceError,
    StripeFailed,
    StripeUnconfigured,
    TooSoon,
    billing_portal_session_create,
    subscription_cancel_set,
    welcome_resend_request,
)
from provisioning.models import Beacon
from wopr.api_common import (
    RETRY_AFTER,
    BadGateway,
    BoundedJSONParser,
    ClientIpThrottle,
    ErrorSerializer,
    ServiceUnavailable,
    client_ip,
    error_body,
    error_responses,
)

TAG = "self-service"


class CustomerTokenScheme(OpenApiAuthenticationExtension):
    """The bearer security scheme of the self-service endpoints in the OpenAPI schema."""

    target_class = "billing.customer_auth.CustomerTokenAuthentication"
    name = "customerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token of the sign-in provider (OIDC_ISSUER).",
        }


class CustomerThrottle(ClientIpThrottle):
    """A request budget per signed-in customer (THROTTLE_SELFSERVICE), shared by processes."""

    scope = "selfservice"
    rate_setting = "THROTTLE_SELFSERVICE"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        user = request.user
        ident = f"c{user.pk}" if isinstance(user, CustomerPrincipal) else client_ip(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class Conflict(APIException):
    status_code = 409
    default_code = "conflict"
    default_detail = "The request conflicts with the subscription's state."


class MeBeaconSerializer(serializers.ModelSerializer):
    """One of the customer's Beacons with its subscription as Stripe last told us."""

    bundle = serializers.CharField(source="bundle.slug")
    tier = serializers.CharField(source="tier.slug")
    period = serializers.CharField(source="order.period")
    subscription_status = serializers.CharField(source="order.subscription_status")
    current_period_end = serializers.DateTimeField(
        source="order.subscription_period_end", allow_null=True
    )
    cancel_at_period_end = serializers.BooleanField(
        source="order.subscription_cancel_at_period_end"
    )
    pending_tier_change = serializers.SerializerMethodField()

    class Meta:
        model = Beacon
        fields = [
            "id",
            "name",
            "fqdn",
            "status",
            "bundle",
            "tier",
            "period",
            "region",
            "subscription_status",
            "current_period_end",
            "cancel_at_period_end",
            "pending_tier_change",
            "created_at",
        ]

    def get_pending_tier_change(self, beacon: Beacon) -> str | None:
        """The tier the customer asked to move to, until Stripe says it is paid."""
        target = beacon.order.tier_change_to
        return target.slug if target is not None else None


class MeBeaconListSerializer(serializers.Serializer):
    beacons = MeBeaconSerializer(many=True)


class PortalSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Stripe's billing portal; valid for a few minutes.")


class WelcomeSerializer(serializers.Serializer):
    queued = serializers.BooleanField()


class EmptyInputSerializer(serializers.Serializer):
    """These operations take no input; an unknown field is refused (400)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(getattr(self, "initial_data", {}) or {}) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


class MeAPIView(APIView):
    """A signed-in customer's endpoint: bearer token, JSON, per-customer and per-IP budget."""

    authentication_classes = [CustomerTokenAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [BoundedJSONParser]
    throttle_classes = [ClientIpThrottle, CustomerThrottle]

    def empty_input(self, request: Request) -> None:
        data = request.data if isinstance(request.data, dict) else {"non_field_errors": 1}
        EmptyInputSerializer(data=data).is_valid(raise_exception=True)


def service_error(error: SelfServiceError) -> APIException:
    """The HTTP answer of a refused self-service operation (the message is for the customer)."""
    if isinstance(error, StripeFailed):
        return BadGateway(str(error))
    if isinstance(error, StripeUnconfigured):
        return ServiceUnavailable(str(error))
    return Conflict(str(error))


ERRORS = error_responses(401, 403, 404, 429, 503)
CONFLICT = {
    (409, "application/json"): OpenApiResponse(
        ErrorSerializer, description="Not possible in the subscription's state; `message` says why."
    )
}
STRIPE_ERRORS = {**error_responses(400, 401, 403, 404, 429, 502, 503), **CONFLICT}


class MeBeaconsView(MeAPIView):
    """The signed-in customer's Beacons, newest first."""

    @extend_schema(
        tags=[TAG],
        operation_id="me_beacons",
        parameters=[RETRY_AFTER],
        responses={200: MeBeaconListSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        beacons = (
            customer_beacons(request_customer(request))
            .select_related("order", "bundle", "tier", "order__tier_change_to")
            .order_by("-created_at")
        )
        return Response(MeBeaconListSerializer({"beacons": beacons}).data)


class MeBillingPortalView(MeAPIView):
    """A Stripe billing portal session for the Beacon's subscription."""

    @extend_schema(
        tags=[TAG],
        operation_id="me_beacon_billing_portal",
        request=EmptyInputSerializer,
        parameters=[RETRY_AFTER],
        responses={200: PortalSerializer, **STRIPE_ERRORS},
    )
    def post(self, request: Request, beacon_id: uuid.UUID) -> Response:
        beacon = customer_beacon(request, beacon_id)
        self.empty_input(request)
        try:
            url = billing_portal_session_create(order=beacon.order)
        except SelfServiceError as error:
            raise service_error(error) from error
        return Response(PortalSerializer({"url": url}).data)


class MeCancelView(MeAPIView):
    """POST: end the subscription at its period end. DELETE: take that back (before then)."""

    @extend_schema(
        tags=[TAG],
        operation_id="me_beacon_cancel",
        request=EmptyInputSerializer,
        parameters=[RETRY_AFTER],
        responses={200: MeBeaconSerializer, **STRIPE_ERRORS},
    )
    def post(self, request: Request, beacon_id: uuid.UUID) -> Response:
        self.empty_input(request)
        return self._set(request, beacon_id, cancel=True)

    @extend_schema(
        tags=[TAG],
        operation_id="me_beacon_cancel_undo",
        parameters=[RETRY_AFTER],
        responses={200: MeBeaconSerializer, **STRIPE_ERRORS},
    )
    def delete(self, request: Request, beacon_id: uuid.UUID) -> Response:
        return self._set(request, beacon_id, cancel=False)

    def _set(self, request: Request, beacon_id: uuid.UUID, *, cancel: bool) -> Response:
        beacon = customer_beacon(request, beacon_id)
        try:
            beacon.order = subscription_cancel_set(order=beacon.order, cancel=cancel)
        except SelfServiceError as error:
            raise service_error(error) from error
        return Response(MeBeaconSerializer(beacon).data)


class MeWelcomeView(MeAPIView):
    """Send the Beacon's welcome e-mail again, to the order's address (202: queued)."""

    @extend_schema(
        tags=[TAG],
        operation_id="me_beacon_welcome",
        request=EmptyInputSerializer,
        parameters=[RETRY_AFTER],
        responses={202: WelcomeSerializer, **STRIPE_ERRORS},
    )
    def post(self, request: Request, beacon_id: uuid.UUID) -> Response:
        beacon = customer_beacon(request, beacon_id)
        self.empty_input(request)
        try:
            welcome_resend_request(beacon=beacon)
        except TooSoon as error:
            return _too_soon(error)
        except SelfServiceError as error:
            raise service_error(error) from error
        return Response(WelcomeSerializer({"queued": True}).data, status=202)


def _too_soon(error: TooSoon) -> Response:
    body = error_body("throttled", str(error))
    return Response(body, status=429, headers={"Retry-After": str(error.retry_after)})
