"""System checks: a production start (DEBUG off) refuses fakes and missing secrets.

Each message names the variable to set and never shows a value.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from documents.emails import NON_DELIVERING_EMAIL_BACKENDS


def _missing(*names: str) -> list[str]:
    return [name for name in names if not _configured(name)]


def _configured(name: str) -> bool:
    try:
        return bool(getattr(settings, name, ""))
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        return False


def _required_in_production() -> list[str]:
    """The settings a non-DEBUG start needs, given the Stripe mode, providers and DNS."""
    live = settings.STRIPE_LIVE_MODE
    required = ["SECRET_KEY", "STRIPE_LIVE_SECRET_KEY" if live else "STRIPE_TEST_SECRET_KEY"]
    required.append("STRIPE_LIVE_WEBHOOK_SECRET" if live else "STRIPE_TEST_WEBHOOK_SECRET")
    if "hetzner" in settings.PROVIDERS:
        required.append("HETZNER_API_TOKEN")
    if "digitalocean" in settings.PROVIDERS:
        required.append("DIGITALOCEAN_API_TOKEN")
    if settings.DNS_BACKEND == "cloudflare":
        required += ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ZONE_ID"]
    # Every paying customer gets an account (accounts.services); only development skips it.
    required += ["AUTHENTIK_URL", "AUTHENTIK_API_TOKEN"]
    return required


@register("wopr")
def check_production_configuration(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Errors that stop a non-DEBUG start; nothing when DEBUG is on."""
    if settings.DEBUG:
        return []
    errors = [
        Error(f"{name} is not set; it is required when DEBUG is off.", id="wopr.E001")
        for name in _missing(*_required_in_production())
    ]
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
    from integrations.dns.registry import DNS_BACKENDS
    from provisioning.vendors import PROVIDER_CLASSES

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


# --- Issue 9: Stripe credential formats and backend credentials ------------------------------

STRIPE_CREDENTIAL_FORMATS = {
    "STRIPE_TEST_SECRET_KEY": (
        re.compile(r"(?:sk|rk)_test_[A-Za-z0-9_]+"),
        "sk_test_… or rk_test_…",
    ),
    "STRIPE_LIVE_SECRET_KEY": (
        re.compile(r"(?:sk|rk)_live_[A-Za-z0-9_]+"),
        "sk_live_… or rk_live_…",
    ),
    "STRIPE_TEST_WEBHOOK_SECRET": (re.compile(r"whsec_[A-Za-z0-9_+/=-]+"), "whsec_…"),
    "STRIPE_LIVE_WEBHOOK_SECRET": (re.compile(r"whsec_[A-Za-z0-9_+/=-]+"), "whsec_…"),
}


def _serious_unless_debug(message: str, *, error_id: str, warning_id: str) -> CheckMessage:
    """An Error when DEBUG is off (the start stops), a Warning in development."""
    if settings.DEBUG:
        return Warning(message, id=warning_id)
    return Error(message, id=error_id)


@register("wopr")
def check_stripe_credential_formats(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A Stripe key or webhook secret that is set but malformed (a stray "\\r", quotes, the other
    mode's key) names its variable and never its value: vendors quote a bad key in full."""
    problems: list[CheckMessage] = []
    for name, (pattern, expected) in STRIPE_CREDENTIAL_FORMATS.items():
        value = getattr(settings, name, "") or ""
        if value and not pattern.fullmatch(value):
            message = (
                f"{name} is malformed: expected {expected} with no spaces, quotes or line breaks "
                "(a trailing newline or carriage return is a common cause); the value is not shown."
            )
            problems.append(
                _serious_unless_debug(message, error_id="wopr.E007", warning_id="wopr.W007")
            )
    return problems


def backend_credentials_missing() -> list[tuple[str, str]]:
    """(variable, backend) for every enabled provider or DNS backend whose credential is unset."""
    needed = [
        ("HETZNER_API_TOKEN", "hetzner", "hetzner" in settings.PROVIDERS),
        ("DIGITALOCEAN_API_TOKEN", "digitalocean", "digitalocean" in settings.PROVIDERS),
        ("CLOUDFLARE_API_TOKEN", "cloudflare", settings.DNS_BACKEND == "cloudflare"),
        ("CLOUDFLARE_ZONE_ID", "cloudflare", settings.DNS_BACKEND == "cloudflare"),
    ]
    return [(name, backend) for name, backend, enabled in needed if enabled and _missing(name)]


@register("wopr")
def check_backend_credentials_in_development(
    app_configs: Any = None, **kwargs: Any
) -> list[Warning]:
    """In DEBUG, a real backend without its credential starts but fails on its first request:
    warn, naming the variable (without DEBUG, check_production_configuration stops the start)."""
    if not settings.DEBUG:
        return []
    return [
        Warning(
            f"{name} is not set, but {backend} is enabled; its requests will fail until it is.",
            id="wopr.W008",
        )
        for name, backend in backend_credentials_missing()
    ]


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


@register("wopr")
def check_default_region(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """DEFAULT_REGION, when set, is one of the catalogue's regions (in any mode): a paid session
    without a region would otherwise be placed nowhere."""
    from billing.catalog import catalog_data

    regions = sorted(catalog_data()["regions"])
    if not settings.DEFAULT_REGION or settings.DEFAULT_REGION in regions:
        return []
    return [
        Error(
            f"DEFAULT_REGION is not a region of the catalogue; use one of: {', '.join(regions)} "
            "(or leave it empty to flag sessions without a region for staff).",
            id="wopr.E060",
        )
    ]


INSTALL_TIMEOUT_ACTIONS = ("retry", "staff")


@register("wopr")
def check_install_timeout_action(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """INSTALL_TIMEOUT_ACTION is one the provision job knows: a typo would otherwise surface
    only when a Beacon's install stalls, as a job that fails in an unplanned way."""
    if settings.INSTALL_TIMEOUT_ACTION in INSTALL_TIMEOUT_ACTIONS:
        return []
    return [
        Error(
            f"INSTALL_TIMEOUT_ACTION must be one of: {', '.join(INSTALL_TIMEOUT_ACTIONS)}.",
            id="wopr.E070",
        )
    ]


@register("wopr")
def check_offers_have_stripe_prices(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Offers of the active Stripe mode without a Stripe price id (issue 13). Checkout still
    sells them (an inline price per session), but their subscriptions carry no price of ours,
    so reporting and plan changes cannot tell them apart: a warning, with the fix."""
    from billing.stripe_prices import offers_without_stripe_price

    mode = "live" if settings.STRIPE_LIVE_MODE else "test"
    missing = offers_without_stripe_price(mode=mode)
    if not missing:
        return []
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    named = ", ".join(missing[:10]) + more
    return [
        Warning(
            f"{len(missing)} offer(s) have no Stripe price in {mode} mode: {named}.",
            hint=f"Run `manage.py stripe_sync_prices --mode {mode}` (--dry-run lists them all).",
            id="wopr.W130",
        )
    ]


FAILED_ORDER_POLICIES = ("staff", "refund")


@register("wopr")
def check_failed_order_policy(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """FAILED_ORDER_POLICY is one billing knows: a typo would otherwise surface only when a
    paid order's provisioning fails, as money nobody makes right."""
    errors = []
    if settings.FAILED_ORDER_POLICY not in FAILED_ORDER_POLICIES:
        errors.append(
            Error(
                f"FAILED_ORDER_POLICY must be one of: {', '.join(FAILED_ORDER_POLICIES)}.",
                id="wopr.E080",
            )
        )
    if settings.FAILED_ORDER_HOURS < 1:
        errors.append(Error("FAILED_ORDER_HOURS must be 1 or more.", id="wopr.E081"))
    return errors


@register("wopr")
def check_staff_sso(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """With OIDC_ISSUER set (staff single sign-on, wopr.staff_sso): the client's credentials
    and a readable OIDC_STAFF_GROUPS, or every staff sign-in would fail at the callback."""
    from wopr.lib.staff_groups import staff_group_map

    if not settings.OIDC_ISSUER:
        return []
    errors = [
        Error(f"OIDC_ISSUER is set: set {name} too.", id="wopr.E120")
        for name, setting in (
            ("OIDC_CLIENT_ID", "OIDC_RP_CLIENT_ID"),
            ("OIDC_CLIENT_SECRET", "OIDC_RP_CLIENT_SECRET"),
        )
        if not _configured(setting)
    ]
    try:
        staff_group_map()
    except ImproperlyConfigured as exc:
        errors.append(Error(f"{exc} (expected: group=role,group=role).", id="wopr.E121"))
    return errors


@register("wopr")
def check_staff_group_roles(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every role OIDC_STAFF_GROUPS maps to is one of wopr.roles.ROLES: a user in an unknown
    role would be signed in as staff with no permission at all (and nobody told why)."""
    from wopr.lib.staff_groups import staff_group_map
    from wopr.roles import ROLES

    try:
        mapping = staff_group_map()
    except ImproperlyConfigured:
        return []  # unreadable: check_staff_sso says so (wopr.E121)
    return [
        Error(
            f"OIDC_STAFF_GROUPS maps {group!r} to {role!r}, which is not a staff role "
            f"(one of: {', '.join(ROLES)}).",
            id="wopr.E122",
        )
        for group, role in mapping.items()
        if role not in ROLES
    ]
