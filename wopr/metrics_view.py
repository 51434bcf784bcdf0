"""GET /metrics: the Prometheus endpoint (wopr.metrics), restricted like the admin.

Caddy publishes /metrics only to ADMIN_ALLOWED_NETWORKS, as it does /admin/ (404 elsewhere).
Here, one of two credentials is needed on top:

- `Authorization: Bearer <METRICS_TOKEN>`, for a scraper that cannot sign in (an empty
  METRICS_TOKEN opens nothing), compared in constant time and never logged;
- a staff session the admin site itself lets in (active staff, with ADMIN_REQUIRE_OTP a TOTP
  code this session) whose user has the permission `wopr.view_metrics` (every role).

Anything else gets the same 403, whichever part was missing (no hint whether the token, the
session or the permission was wrong); the existence of /metrics is no secret inside the
allowed networks (it is documented), the address restriction hides it from everyone else.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views import View
from prometheus_client import CONTENT_TYPE_LATEST

from wopr.metrics import metrics_exposition

BEARER = "bearer "


def metrics_access_allowed(request: HttpRequest) -> bool:
    """Whether the request carries the scrape token, or a staff session the admin admits whose
    user may read the metrics. A request offering a token is judged by the token alone."""
    header = request.headers.get("Authorization", "")
    if header[: len(BEARER)].lower() == BEARER:
        return metrics_token_valid(header[len(BEARER) :].strip())
    return admin.site.has_permission(request) and request.user.has_perm("wopr.view_metrics")


def metrics_token_valid(offered: str) -> bool:
    """The offered token equals METRICS_TOKEN (constant time); never with no token set."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return False
    return hmac.compare_digest(offered.encode(), expected.encode())


class MetricsView(View):
    """The Prometheus text exposition, collected from the database at every scrape."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> HttpResponse:
        if not metrics_access_allowed(request):
            return HttpResponseForbidden("forbidden\n", content_type="text/plain")
        response = HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)
        response["Cache-Control"] = "no-store"
        return response
