"""The admin site: Django's, plus a TOTP second factor for staff when ADMIN_REQUIRE_OTP is on.

The setting is read at request time, so tests (and a deployment's environment) switch it
without a second URL map. django-otp's OTPAdminSite does the work; with the setting off the
site behaves exactly as Django's own.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.models import Device


class OTPLoginForm(OTPAdminAuthenticationForm):
    """django-otp's admin sign-in form, which asks staff to pick a device before typing a code;
    someone with exactly one confirmed device (the usual case) just types the code."""

    def _chosen_device(self, user: Any) -> Device | None:
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, confirmed=True))
            if len(devices) == 1:  # the user's own: no choice to make, nothing to trust
                device = Device.from_persistent_id(devices[0].persistent_id, for_verify=True)
        return device


class WoprAdminSite(OTPAdminSite):
    """Django's admin site (URL namespace `admin`), asking for a TOTP code when required."""

    site_header = "WOPR control plane"
    site_title = "WOPR admin"

    def __init__(self, name: str = "admin") -> None:
        AdminSite.__init__(self, name)

    @property
    def login_form(self) -> Any:  # type: ignore[override]
        return OTPLoginForm if settings.ADMIN_REQUIRE_OTP else AdminAuthenticationForm

    @property
    def login_template(self) -> str | None:  # type: ignore[override]
        return OTPAdminSite.login_template if settings.ADMIN_REQUIRE_OTP else None

    def has_permission(self, request: HttpRequest) -> bool:
        """Active staff; with ADMIN_REQUIRE_OTP also verified by a TOTP device this session."""
        if settings.ADMIN_REQUIRE_OTP:
            return super().has_permission(request)
        return AdminSite.has_permission(self, request)
