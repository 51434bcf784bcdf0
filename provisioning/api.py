"""`POST /api/v1/beacons/<id>/callback`: a Beacon reports its installation progress.

The Beacon authenticates with its job's bearer token (from its bootstrap user data). Only a hash
is stored and compared in constant time, and the token stops working when the job finishes.
Every refusal after the token was presented looks the same (403), whether the token is wrong,
another Beacon's, expired, or the Beacon unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid

from django.http import FileResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import (
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from rest_framework.request import Request
from rest_framework.response import Response

from installers.services import InstallerNotServed, installer_file_current
from provisioning.callbacks import job_callback_record, job_callback_token_valid
from provisioning.models import UNFINISHED_JOB_STATES, Job
from provisioning.serializers import CallbackAcceptedSerializer, CallbackInputSerializer
from wopr.api_common import (
    RETRY_AFTER,
    BearerChallenge,
    ErrorSerializer,
    PublicAPIView,
    ServiceUnavailable,
    bearer_token,
    error_responses,
)

logger = logging.getLogger(__name__)


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
    jobs = Job.objects.filter(beacon_id=beacon_id).select_related("beacon")
    return (
        jobs.filter(state__in=UNFINISHED_JOB_STATES).first() or jobs.order_by("-created_at").first()
    )


def _refused() -> PermissionDenied:
    return PermissionDenied("The token is not valid for this Beacon.")


class BeaconCallbackView(PublicAPIView):
    """A Beacon reports install progress, once per stage and server (a repeat is accepted as a
    duplicate and records nothing): `complete` finishes the waiting step, `failed` fails the
    job."""

    authentication_classes = [BearerChallenge]

    @extend_schema(
        tags=["beacons"],
        operation_id="beacon_callback",
        request=CallbackInputSerializer,
        parameters=[RETRY_AFTER],
        responses={202: CallbackAcceptedSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def post(self, request: Request, beacon_id: uuid.UUID) -> Response:
        job = beacon_job_authorized(request, beacon_id)
        serializer = CallbackInputSerializer(
            data=request.data, context={"modules": list(job.beacon.modules)}
        )
        serializer.is_valid(raise_exception=True)
        new = job_callback_record(job=job, **serializer.validated_data)
        return Response(
            CallbackAcceptedSerializer({"accepted": True, "duplicate": not new}).data,
            status=status.HTTP_202_ACCEPTED,
        )


# --- GET /api/v1/beacons/<id>/installer (issue 11) --------------------------------------------


def beacon_job_authorized(request: Request, beacon_id: uuid.UUID) -> Job:
    """The Beacon's job whose bearer token the request presents: 401 without a token, 403
    alike for a wrong, foreign or expired token and an unknown Beacon (as the callback)."""
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
    return job


CHECKSUM_HEADER = OpenApiParameter(
    "X-Checksum-Sha256",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    required=True,
    description="The tarball's SHA-256 (hex), as in bootstrap.json's installer.sha256.",
)


def _sha256_param(request: Request) -> str:
    """The `sha256` query parameter (64 hex digits), else a 400 naming it; "" when absent."""
    value = request.query_params.get("sha256", "")
    if value and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ValidationError({"sha256": ["Must be 64 hexadecimal digits."]})
    return value


class BeaconInstallerView(PublicAPIView):
    """A new Beacon downloads the current installer tarball with its job's bearer token (never
    a public URL: the tarball may carry what only our customers' servers should see)."""

    authentication_classes = [BearerChallenge]

    @extend_schema(
        tags=["beacons"],
        operation_id="beacon_installer",
        parameters=[
            RETRY_AFTER,
            CHECKSUM_HEADER,
            OpenApiParameter(
                "sha256",
                str,
                OpenApiParameter.QUERY,
                required=False,
                pattern="^[0-9a-fA-F]{64}$",
                description="The release to download (bootstrap.json's installer.sha256); "
                "without it, the current release.",
            ),
        ],
        responses={
            (200, "application/gzip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The installer tarball (gzip-compressed tar)."
            ),
            **error_responses(400, 401, 403, 404, 429),
            (503, "application/json"): OpenApiResponse(
                ErrorSerializer, description="The release's file is missing on this server."
            ),
        },
    )
    def get(self, request: Request, beacon_id: uuid.UUID) -> FileResponse:
        beacon_job_authorized(request, beacon_id)
        try:
            installer = installer_file_current(_sha256_param(request))
        except InstallerNotServed as reason:
            raise NotFound(str(reason), code=reason.code) from None
        try:
            handle = installer.path.open("rb")
        except OSError:
            logger.error("installer %s: tarball missing under INSTALLERS_ROOT", installer.version)
            raise ServiceUnavailable("The installer file is missing on this server.") from None
        response = FileResponse(
            handle,
            content_type="application/gzip",
            as_attachment=True,
            filename=f"installer-{installer.version}.tar.gz",
        )
        response["X-Checksum-Sha256"] = installer.sha256
        response["Cache-Control"] = "private, no-store"
        return response
