"""`POST /api/v1/beacons/<id>/callback`: a Beacon reports its installation progress.

The Beacon authenticates with its job's bearer token (from its bootstrap user data). Only a hash
is stored and compared in constant time, and the token stops working when the job finishes.
Every refusal after the token was presented looks the same (403), whether the token is wrong,
another Beacon's, expired, or the Beacon unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from provisioning.callbacks import job_callback_record, job_callback_token_valid
from provisioning.models import UNFINISHED_JOB_STATES, Job
from provisioning.serializers import CallbackAcceptedSerializer, CallbackInputSerializer
from wopr.api_common import (
    RETRY_AFTER,
    BearerChallenge,
    PublicAPIView,
    bearer_token,
    error_responses,
)


class BeaconTokenScheme(OpenApiAuthenticationExtension):
    """Describes the callback's bearer token in the OpenAPI schema."""

    target_class = "wopr.api_common.BearerChallenge"
    name = "beaconToken"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The per-job token from the Beacon's /etc/wopr/bootstrap.json.",
        }


def callback_job(beacon_id: uuid.UUID) -> Job | None:
    """The Beacon's unfinished job, else its latest (whose token has then expired)."""
    jobs = Job.objects.filter(beacon_id=beacon_id)
    return (
        jobs.filter(state__in=UNFINISHED_JOB_STATES).first() or jobs.order_by("-created_at").first()
    )


def _refused() -> PermissionDenied:
    return PermissionDenied("The token is not valid for this Beacon.")


class BeaconCallbackView(PublicAPIView):
    """A Beacon reports progress: `complete` finishes the waiting step, `failed` fails the job."""

    authentication_classes = [BearerChallenge]

    @extend_schema(
        tags=["beacons"],
        operation_id="beacon_callback",
        request=CallbackInputSerializer,
        parameters=[RETRY_AFTER],
        responses={202: CallbackAcceptedSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def post(self, request: Request, beacon_id: uuid.UUID) -> Response:
        token = bearer_token(request)
        if not token:
            raise NotAuthenticated("A bearer token is required.")
        job = callback_job(beacon_id)
        if job is None:
            # Spend the same work as a real comparison: no timing hint that the id is unknown.
            hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), "0" * 64)
            raise _refused()
        if not job_callback_token_valid(job, token):
            raise _refused()
        serializer = CallbackInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job_callback_record(job=job, **serializer.validated_data)
        return Response(
            CallbackAcceptedSerializer({"accepted": True}).data, status=status.HTTP_202_ACCEPTED
        )
