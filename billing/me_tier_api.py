"""POST /api/v1/me/beacons/<id>/tier: a signed-in customer moves their Beacon to another tier.

Thin view over billing.tier_change: Stripe invoices the prorated difference at once and
changes the subscription when that invoice is paid; the webhook saying so moves the Order's
tier and the Beacon is resized (provisioning.resize), with an e-mail when it is done.
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.customer_auth import customer_beacon
from billing.me_api import (
    STRIPE_ERRORS,
    TAG,
    MeAPIView,
    MeBeaconSerializer,
    service_error,
)
from billing.models import Tier
from billing.selfservice import SelfServiceError
from billing.tier_change import TierRefused, tier_change_request
from wopr.api_common import RETRY_AFTER


class TierChangeInputSerializer(serializers.Serializer):
    """The tier to move to, by its slug (t1, t2, t3); no other field."""

    # A SlugField first: its validators refuse a NUL byte before any query sees it.
    tier = serializers.SlugField(max_length=8)

    def validate_tier(self, value: str) -> Tier:
        tier = Tier.objects.filter(slug=value).first()
        if tier is None:
            raise serializers.ValidationError(f"No tier {value!r}.")
        return tier

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(getattr(self, "initial_data", {}) or {}) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


class TierChangeSerializer(serializers.Serializer):
    """Where the change stands: `paid` (the Beacon is resized next) or `pending` (the
    prorated invoice waits for payment; Stripe drops the change if unpaid after 23 hours)."""

    tier = serializers.CharField()
    state = serializers.ChoiceField(choices=["paid", "pending"])
    beacon = MeBeaconSerializer()


class MeTierView(MeAPIView):
    """Move the Beacon's subscription to another tier, prorated; the server follows once paid."""

    @extend_schema(
        tags=[TAG],
        operation_id="me_beacon_tier",
        request=TierChangeInputSerializer,
        parameters=[RETRY_AFTER],
        responses={202: TierChangeSerializer, **STRIPE_ERRORS},
    )
    def post(self, request: Request, beacon_id: uuid.UUID) -> Response:
        beacon = customer_beacon(request, beacon_id)
        data = request.data if isinstance(request.data, dict) else {"non_field_errors": 1}
        wanted = TierChangeInputSerializer(data=data)
        wanted.is_valid(raise_exception=True)
        try:
            change = tier_change_request(beacon=beacon, tier=wanted.validated_data["tier"])
        except TierRefused as error:
            raise serializers.ValidationError({"tier": [str(error)]}) from error
        except SelfServiceError as error:
            raise service_error(error) from error
        beacon.order.refresh_from_db()
        body = {"tier": change.tier, "state": change.state, "beacon": beacon}
        return Response(TierChangeSerializer(body).data, status=202)
