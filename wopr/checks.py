"""System checks: a production start (DEBUG off) refuses fakes and missing secrets.

Each message names the variable to set and never shows a value.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from wopr.lib.emails import NON_DELIVERING_EMAIL_BACKENDS


def _missing(*names: str) -> list[str]:
    return [name for name in names if not _configured(name)]


def _configured(name: str) -> bool:
    try:
        return bool(getattr(settings, name, ""))
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        return False


@register("wopr")
def check_production_configuration(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Errors that stop a non-DEBUG start; nothing when DEBUG is on."""
    if settings.DEBUG:
        return []
    errors: list[Error] = []
    live = settings.STRIPE_LIVE_MODE
    required = ["SECRET_KEY", "STRIPE_LIVE_SECRET_KEY" if live else "STRIPE_TEST_SECRET_KEY"]
    required.append("STRIPE_LIVE_WEBHOOK_SECRET" if live else "STRIPE_TEST_WEBHOOK_SECRET")
    if "hetzner" in settings.PROVIDERS:
        required.append("HETZNER_API_TOKEN")
    if "digitalocean" in settings.PROVIDERS:
        required.append("DIGITALOCEAN_API_TOKEN")
    if settings.DNS_BACKEND == "cloudflare":
        required += ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ZONE_ID"]
    for name in _missing(*required):
        errors.append(
            Error(f"{name} is not set; it is required when DEBUG is off.", id="wopr.E001")
        )
    if "fake" in settings.PROVIDERS:
        errors.append(
            Error(
                "PROVIDERS includes the fake provider, which creates no real servers; "
                "set PROVIDERS to real providers (hetzner, digitalocean) when DEBUG is off.",
                id="wopr.E002",
            )
        )
    if settings.DNS_BACKEND == "fake":
        errors.append(
            Error(
                "DNS_BACKEND is 'fake', which publishes no records; set DNS_BACKEND=cloudflare "
                "when DEBUG is off.",
                id="wopr.E003",
            )
        )
    if settings.EMAIL_BACKEND in NON_DELIVERING_EMAIL_BACKENDS:
        errors.append(
            Error(
                "EMAIL_BACKEND does not deliver mail (console, file or memory); set SMTP_HOST "
                "(or EMAIL_BACKEND to an anymail backend) when DEBUG is off.",
                id="wopr.E004",
            )
        )
    return errors


@register("wopr")
def check_known_backends(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Unknown provider or DNS backend names are errors in any mode."""
    from dns.backends import DNS_BACKENDS
    from provisioning.providers import PROVIDER_CLASSES

    errors: list[Error] = []
    for name in settings.PROVIDERS:
        if name not in PROVIDER_CLASSES:
            known = ", ".join(sorted(PROVIDER_CLASSES))
            errors.append(
                Error(f"PROVIDERS names unknown provider {name!r} ({known}).", id="wopr.E005")
            )
    if settings.DNS_BACKEND not in DNS_BACKENDS:
        known = ", ".join(sorted(DNS_BACKENDS))
        errors.append(
            Error(f"DNS_BACKEND {settings.DNS_BACKEND!r} is unknown ({known}).", id="wopr.E006")
        )
    return errors


def embedded_defaults_in_use() -> list[str]:
    """Which parts run on the embedded defaults, for the start-up log (names, never values)."""
    parts = []
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        parts.append("SQLite database")
    if not settings.REDIS_URL:
        parts.append("django-q2 ORM broker")
    if "fake" in settings.PROVIDERS:
        parts.append("fake provider")
    if settings.DNS_BACKEND == "fake":
        parts.append("fake DNS")
    if settings.EMAIL_BACKEND in NON_DELIVERING_EMAIL_BACKENDS:
        parts.append("e-mail to the console (not delivered)")
    return parts
