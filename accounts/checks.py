"""System checks for customer accounts: Authentik needs its API token, and https in production.

Messages name the variable, never its value.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register


@register("wopr")
def check_authentik_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """AUTHENTIK_URL without AUTHENTIK_API_TOKEN is an error (every account call would be
    refused); an AUTHENTIK_URL that is not https is a warning when DEBUG is off (the token
    would cross the network in clear). Blank AUTHENTIK_URL: accounts are skipped, no message."""
    url = settings.AUTHENTIK_URL.strip()
    if not url:
        return []
    messages: list[CheckMessage] = []
    if not settings.AUTHENTIK_API_TOKEN:
        messages.append(
            Error(
                "AUTHENTIK_URL is set but AUTHENTIK_API_TOKEN is not; set the token of an "
                "Authentik service account that may manage users and groups.",
                id="accounts.E001",
            )
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        messages.append(
            Error(
                "AUTHENTIK_URL must be an http(s) URL, e.g. https://auth.example.com.",
                id="accounts.E002",
            )
        )
    elif parts.scheme != "https" and not settings.DEBUG:
        messages.append(
            Warning(
                "AUTHENTIK_URL is not https: the API token would travel in clear; use https "
                "when DEBUG is off.",
                id="accounts.W001",
            )
        )
    return messages
