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
from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views import View

from documents.emails import NON_DELIVERING_EMAIL_BACKENDS

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


def _seconds_since(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return max(int((timezone.now() - moment).total_seconds()), 0)


def _cluster_stats() -> list[Any]:
    """The django-q2 clusters reporting now (each refreshes its status every guard cycle and
    it expires after 3 s). With Redis they are read with short timeouts, so a dead Redis
    cannot hang the health check; the ORM broker keeps them in the cache, which only the
    worker's own process sees unless that cache is shared."""
    from django_q.conf import Conf
    from django_q.signing import BadSignature, SignedPackage
    from django_q.status import Stat

    if not settings.REDIS_URL:
        return Stat.get_all()
    client = _redis_client()
    keys = client.keys(f"{Conf.Q_STAT}:*")
    stats = []
    for pack in client.mget(keys) if keys else []:
        if pack is None:
            continue
        try:
            stats.append(SignedPackage.loads(pack))
        except BadSignature:
            continue
    return stats


_redis_clients: dict[str, Any] = {}
# A health check answers within seconds even when Redis's host does not answer at all.
REDIS_TIMEOUT_SECONDS = 1


def _redis_client() -> Any:
    import redis

    url = settings.REDIS_URL
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            retry_on_timeout=False,
        )
    return _redis_clients[url]


def broker_reachable() -> bool:
    """Whether the task broker takes messages: Redis answers PING (with a short timeout), or,
    for the ORM broker, the database (checked before this) does."""
    if not settings.REDIS_URL:
        return True
    try:
        return bool(_redis_client().ping())
    except Exception as exc:  # any failure means no message gets through; never fail health
        # The class only: a client's message may contain the URL, password included.
        logger.warning("health: task broker unreachable (%s)", type(exc).__name__)
        return False


def worker_heartbeat(*, broker_ok: bool = True) -> dict[str, Any]:
    """Whether a django-q2 worker is alive: a cluster reporting its status through the broker
    now, or a task finished recently (the job sweep runs every JOB_SWEEP_MINUTES, so a live
    cluster finishes one at least that often, whatever the broker)."""
    from django_q.models import Task

    clusters = []
    try:
        # An unreachable broker is not asked again: each try may take the whole timeout.
        clusters = _cluster_stats() if broker_ok else []
    except Exception as exc:  # the broker is down: say so, never fail the health check
        logger.warning("health: worker status unreadable (%s)", type(exc).__name__)
    seen = [stat.timestamp for stat in clusters if getattr(stat, "timestamp", None)]
    last_task = Task.objects.aggregate(last=Max("stopped"))["last"]
    if last_task is not None:
        seen.append(last_task)
    last_seen = _seconds_since(max(seen) if seen else None)
    fresh = last_seen is not None and last_seen <= settings.HEALTH_WORKER_STALE_SECONDS
    return {
        "alive": bool(clusters) or fresh,
        "last_seen_seconds": last_seen,
    }


def provider_sweep() -> dict[str, Any]:
    """When the provider health sweep last stored a result, and how long ago."""
    from provisioning.models import ProviderHealthCheck

    last = ProviderHealthCheck.objects.aggregate(last=Max("checked_at"))["last"]
    return {
        "last_at": _iso(last) if last else None,
        "age_seconds": _seconds_since(last),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


UNKNOWN_WORKER = {"alive": False, "last_seen_seconds": None}
UNKNOWN_SWEEP = {"last_at": None, "age_seconds": None}


def health_report() -> dict[str, Any]:
    """`status`, `database_connected`, `broker_ok`, `worker` and `provider_sweep` of the
    health answer.

    `unhealthy` when the database is unreachable or unreadable; `degraded` when an enabled
    provider is critical, when the task broker is unreachable (payments are stored, but nothing
    gets provisioned until it is back), or when no worker is alive and HEALTH_REQUIRE_WORKER is
    on (the default with DEBUG off): the web answers, but nothing gets provisioned.
    """
    report: dict[str, Any] = {
        "status": "unhealthy",
        "database_connected": False,
        "broker_ok": False,
        "worker": dict(UNKNOWN_WORKER),
        "provider_sweep": dict(UNKNOWN_SWEEP),
    }
    if not database_connected():
        return report
    report["database_connected"] = True
    report["broker_ok"] = broker_reachable()
    try:
        critical = providers_critical()
        report["worker"] = worker_heartbeat(broker_ok=report["broker_ok"])
        report["provider_sweep"] = provider_sweep()
    except DatabaseError as exc:
        logger.warning("health: status tables unreadable (%s)", type(exc).__name__)
        return report
    idle = settings.HEALTH_REQUIRE_WORKER and not report["worker"]["alive"]
    degraded = critical or idle or not report["broker_ok"]
    report["status"] = "degraded" if degraded else "healthy"
    return report


class HealthView(View):
    """Configuration and reachability at a glance; HTTP 503 when the service cannot work."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> JsonResponse:
        report = health_report()
        body: dict[str, Any] = {
            "status": report["status"],
            "timestamp": _iso(timezone.now()),
            "providers": list(settings.PROVIDERS),
            "stripe_configured": stripe_configured(),
            "database_connected": report["database_connected"],
            "email_configured": email_configured(),
            "dns_configured": dns_configured(),
            "dns_backend": settings.DNS_BACKEND,
            "queue": {
                "broker": "redis" if settings.REDIS_URL else "orm",
                "broker_status": "ok" if report["broker_ok"] else "unreachable",
            },
            "worker": report["worker"],
            "provider_sweep": report["provider_sweep"],
        }
        status = 503 if report["status"] == "unhealthy" else 200
        response = JsonResponse(body, status=status)
        response["Cache-Control"] = "no-store"
        return response
