"""`GET /api/health`: what a load balancer, an uptime monitor and an operator need to know.

Public, so it says whether things are configured and reachable, never how many of anything there
are and never any part of a secret.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views import View

from wopr.lib.emails import NON_DELIVERING_EMAIL_BACKENDS

logger = logging.getLogger(__name__)


def database_connected() -> bool:
    """True when the default database answers `SELECT 1`."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        # The exception class only: a driver's message may contain the connection string.
        logger.warning("health: database unreachable (%s)", type(exc).__name__)
        return False
    return True


def providers_critical() -> bool:
    """True when an enabled, configured provider's last sweep stored `critical`.

    Raises `django.db.Error` when the table cannot be read (the caller reports unhealthy).
    """
    from provisioning.models import HealthStatus, Provider

    return Provider.objects.filter(
        enabled=True, name__in=settings.PROVIDERS, health_status=HealthStatus.CRITICAL
    ).exists()


def stripe_configured() -> bool:
    """True when the secret key of the active Stripe mode is set."""
    key = (
        settings.STRIPE_LIVE_SECRET_KEY
        if settings.STRIPE_LIVE_MODE
        else settings.STRIPE_TEST_SECRET_KEY
    )
    return bool(key)


def email_configured() -> bool:
    """True when e-mail leaves this machine (SMTP or an anymail ESP)."""
    return settings.EMAIL_BACKEND not in NON_DELIVERING_EMAIL_BACKENDS


def dns_configured() -> bool:
    """True only for a real DNS backend with its credentials; the fake publishes nothing."""
    if settings.DNS_BACKEND == "cloudflare":
        return bool(settings.CLOUDFLARE_API_TOKEN and settings.CLOUDFLARE_ZONE_ID)
    return False


def health_status() -> tuple[str, bool]:
    """(`healthy` | `degraded` | `unhealthy`, database connected)."""
    if not database_connected():
        return "unhealthy", False
    try:
        critical = providers_critical()
    except DatabaseError as exc:
        logger.warning("health: provider status unreadable (%s)", type(exc).__name__)
        return "unhealthy", True
    return ("degraded" if critical else "healthy"), True


class HealthView(View):
    """Configuration and reachability at a glance; HTTP 503 when the service cannot work."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> JsonResponse:
        status, db_ok = health_status()
        body: dict[str, Any] = {
            "status": status,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "providers": list(settings.PROVIDERS),
            "stripe_configured": stripe_configured(),
            "database_connected": db_ok,
            "email_configured": email_configured(),
            "dns_configured": dns_configured(),
            "dns_backend": settings.DNS_BACKEND,
            "queue": {"broker": "redis" if settings.REDIS_URL else "orm"},
        }
        response = JsonResponse(body, status=503 if status == "unhealthy" else 200)
        response["Cache-Control"] = "no-store"
        return response
