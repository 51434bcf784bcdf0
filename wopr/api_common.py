"""What every JSON endpoint under /api/ shares: one error body, per-client-IP throttling behind
trusted proxies only, and the base class of the public (anonymous) storefront views.

Every error under /api/ has the shape

    {"error": {"code": "invalid", "message": "...", "fields": {"email": ["..."]}}}

whether DRF raised it (validation, 401, 403, 404, 405, 429 with Retry-After, 503) or Django
did (an unknown URL under /api/, an unhandled exception).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView, set_rollback

from wopr.throttle import throttle_hit

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

# --- the error body --------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code, e.g. `invalid`.")
    message = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field name -> messages; empty unless the input was invalid.",
    )


class ErrorSerializer(serializers.Serializer):
    """The one error body of the API."""

    error = ErrorDetailSerializer()


ERROR_DESCRIPTIONS = {
    400: "Invalid input; `fields` says what is wrong with each field.",
    401: "No credentials.",
    403: "The credentials are not valid here.",
    404: "No such object, or no such URL.",
    429: "Too many requests from this address; wait for Retry-After seconds.",
    502: "The payment provider failed; nothing to fix on your side, try again shortly.",
    503: "Checkout is disabled (no Stripe key configured).",
}

RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429], required=True
)


def error_responses(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Documented error answers for extend_schema, all with the one (JSON) error body."""
    return {
        (code, "application/json"): OpenApiResponse(
            ErrorSerializer, description=ERROR_DESCRIPTIONS[code]
        )
        for code in codes
    }


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _field_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested ValidationError detail as {dotted.field: [messages]}."""
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for key, value in detail.items():
            fields.update(
                _field_errors(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
            )
        return fields
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        fields = {}
        for index, item in enumerate(detail):
            fields.update(_field_errors(item, f"{prefix}.{index}" if prefix else str(index)))
        return fields
    items = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(item) for item in items]}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every handled error in the one body shape.

    Django's Http404 and PermissionDenied get DRF's generic messages, not theirs (which may
    name a model)."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's handler500 answers (JSON under /api/)
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.Throttled):
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait or 1)))
    if isinstance(exc, exceptions.ValidationError):
        fields = _field_errors(exc.detail)
        body = error_body("invalid", "The request has invalid fields.", fields)
    else:
        code = getattr(exc.detail, "code", None) or str(exc.default_code)
        message = exc.detail if isinstance(exc.detail, str) else exc.default_detail
        body = error_body(code, str(message))
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


def _api_path(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: the API's error body under /api/, Django's page elsewhere."""
    if _api_path(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def json_server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the API's error body under /api/ (never the exception), Django's elsewhere."""
    if _api_path(request):
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
    return defaults.server_error(request)


class ServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "service_unavailable"
    default_detail = "The service is unavailable."


class BadGateway(exceptions.APIException):
    status_code = 502
    default_code = "bad_gateway"
    default_detail = "An upstream service failed; try again shortly."


# --- the client's IP behind trusted proxies -------------------------------------------------


def _networks(entries: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            logger.warning("TRUSTED_PROXIES: ignoring %r (not an address or network)", entry)
    return networks


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # 203.0.113.7:443
        value = value.split(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """The client's address. X-Forwarded-For counts only when the connection comes from a
    trusted proxy (TRUSTED_PROXIES); then the right-most address that is not a trusted proxy
    is the client (everything left of it could have been written by the client itself)."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = _networks(settings.TRUSTED_PROXIES)
    remote_address = _address(remote)

    def is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in network for network in trusted)

    if not trusted or not is_trusted(remote_address):
        return remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # a trusted proxy passed on garbage: go no further left
        if not is_trusted(address):
            return str(address)
    return remote


# --- throttling ------------------------------------------------------------------------------


class ClientIpThrottle(SimpleRateThrottle):
    """A request budget per client IP (everyone, not only anonymous callers).

    The rate is read from settings at request time (THROTTLE_DEFAULT). A rate of N per period is
    a counter per fixed window (wopr.throttle: Redis with REDIS_URL, a database row without),
    counted atomically: every process and replica shares the budget, concurrent requests cannot
    overrun it (DRF's own read-then-write history can), and each request costs the same
    constant work whatever the rate.
    """

    scope = "api"
    rate_setting = "THROTTLE_DEFAULT"

    @property
    def cache(self) -> Any:  # type: ignore[override]
        return caches["api"]

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        self.count = throttle_hit(key=self.key, period=self.duration)
        return self.count.hits <= self.num_requests

    def wait(self) -> float:
        """Seconds until this client's window ends and its budget is whole again."""
        return self.count.resets_in


class CheckoutThrottle(ClientIpThrottle):
    """A tighter budget for starting checkouts (each one costs Stripe calls)."""

    scope = "checkout"
    rate_setting = "THROTTLE_CHECKOUT"


# --- input ------------------------------------------------------------------------------------

# No request body of this API nests deeper than a few levels; deeper input is an attack on the
# parser (Python's json raises RecursionError, not ValueError, around 1,000 levels).
MAX_JSON_DEPTH = 32


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, answering 400 (never 500) to input nested too deeply to be ours."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        if json_depth_exceeds(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        return data


def json_depth_exceeds(data: Any, limit: int) -> bool:
    """Whether parsed JSON nests containers deeper than `limit` (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


# --- views -----------------------------------------------------------------------------------


class BearerChallenge(BaseAuthentication):
    """Authenticates nobody; makes DRF answer 401 with `WWW-Authenticate: Bearer` (instead of
    403) when a view says the bearer token is missing. The view checks the token itself."""

    def authenticate(self, request: Request) -> None:
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def bearer_token(request: Request) -> str:
    """The token of `Authorization: Bearer <token>` ('' when absent or another scheme)."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class PublicAPIView(APIView):
    """A storefront endpoint anyone may call: no session (so no CSRF), JSON in and out,
    throttled per client IP."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]
    parser_classes = [BoundedJSONParser]
    throttle_classes = [ClientIpThrottle]
