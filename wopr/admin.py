"""The project's own rows in the admin: who signs in through Authentik (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from wopr.models import StaffIdentity


@admin.register(StaffIdentity)
class StaffIdentityAdmin(admin.ModelAdmin):
    """Which Authentik subject each single-sign-on staff user is, and their last sign-in.

    Rows are made by sign-ins only (wopr.staff_sso); deleting one makes the next sign-in of
    that subject a new user. Roles are changed in Authentik, not here.
    """

    list_display = ("user", "subject", "issuer", "last_sign_in_at", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "subject")
    readonly_fields = ("user", "issuer", "subject", "last_sign_in_at", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
