"""OIDC_STAFF_GROUPS parsed once for everyone who needs it: staff sign-in (wopr.staff_sso) maps
the groups to roles, customer accounts (accounts.services) never touch those groups."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def staff_group_map(raw: str | None = None) -> dict[str, str]:
    """OIDC_STAFF_GROUPS parsed: Authentik group name -> staff role (a Django group's name)."""
    mapping: dict[str, str] = {}
    for entry in (settings.OIDC_STAFF_GROUPS if raw is None else raw).split(","):
        if not entry.strip():
            continue
        group, sep, role = (part.strip() for part in entry.partition("="))
        if not (sep and group and role):
            raise ImproperlyConfigured(f"OIDC_STAFF_GROUPS: {entry.strip()!r} is not group=role")
        mapping[group] = role
    return mapping
