"""The admin site: Django's, plus a TOTP second factor for staff when ADMIN_REQUIRE_OTP is on.

The setting is read at request time, so tests (and a deployment's environment) switch it
without a second URL map. django-otp's OTPAdminSite does the work; with the setting off the
site behaves exactly as Django's own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.db.models.base import ModelBase
from django.http import HttpRequest
from django.urls import reverse
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.models import Device

from wopr.lib.admin import changelist_defaults_apply
from wopr.staff_sso import STAFF_SSO_BACKEND, signed_in_with_sso, sso_mfa_proven


def sso_user_without_mfa(request: HttpRequest | None) -> Any | None:
    """The user of a session signed in through Authentik without a proven second factor (who
    still owes the local TOTP code), fresh from the database; None for any other request."""
    if request is None or not request.user.is_authenticated:
        return None
    if not signed_in_with_sso(request) or sso_mfa_proven(request):
        return None
    user = auth.get_user_model()._default_manager.get(pk=request.user.pk)
    user.backend = STAFF_SSO_BACKEND  # auth.login keeps the session's backend
    return user


class OTPLoginForm(OTPAdminAuthenticationForm):
    """django-otp's admin sign-in form, which asks staff to pick a device before typing a code;
    someone with exactly one confirmed device (the usual case) just types the code. After a
    sign-in through Authentik without MFA only the code is asked (they have no local password).
    """

    def __init__(self, request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        self.sso_user = sso_user_without_mfa(request)
        if self.sso_user is not None:
            del self.fields["username"], self.fields["password"]

    def clean(self) -> dict[str, Any]:
        if self.sso_user is None:
            return super().clean()
        self.user_cache = self.sso_user
        self.confirm_login_allowed(self.sso_user)
        self.clean_otp(self.sso_user)
        return self.cleaned_data

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
    # Vendor apps listed after ours (index and sidebar), under a heading saying what they are:
    # dj-stripe's ~40 synced Stripe models and django-q2's queue are rarely what staff want.
    vendor_apps = {"django_q": "Task queue (django-q2)", "djstripe": "Stripe (synced by dj-stripe)"}

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """Django's app list (and its URLs) with our apps first and the vendors' last."""
        apps = super().get_app_list(request, app_label)
        rank = {label: place for place, label in enumerate(self.vendor_apps, start=1)}
        for app in apps:
            app["name"] = self.vendor_apps.get(app["app_label"], app["name"])
        return sorted(apps, key=lambda app: rank.get(app["app_label"], 0))  # stable: ours A-Z

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """Django's index with the staff dashboard (wopr.dashboard) above the app list."""
        from wopr.charts import provisioning_chart, sales_chart  # the models load after the site
        from wopr.dashboard import dashboard_build

        board = dashboard_build()
        context = {
            "dashboard": board,
            "provisioning_chart": provisioning_chart(board.provisioning),
            "sales_chart": sales_chart(board.sales),
            **(extra_context or {}),
        }
        return super().index(request, context)

    def __init__(self, name: str = "admin") -> None:
        AdminSite.__init__(self, name)

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        """Django's register, then the site's changelist defaults (wopr.lib.admin) for each
        admin whose class did not choose its own: no changelist counts a whole table."""
        super().register(model_or_iterable, admin_class, **options)
        single = isinstance(model_or_iterable, ModelBase)
        models = [model_or_iterable] if single else model_or_iterable
        for model in models:
            if model in self._registry:
                changelist_defaults_apply(self._registry[model])

    def get_urls(self) -> list[Any]:
        """Django's admin URLs plus the "sweep now" pages (wopr.sweeps_admin)."""
        from wopr.sweeps_admin import sweep_urls

        return [*sweep_urls(self), *super().get_urls()]

    @property
    def login_form(self) -> Any:  # type: ignore[override]
        return OTPLoginForm if settings.ADMIN_REQUIRE_OTP else AdminAuthenticationForm

    @property
    def login_template(self) -> str | None:  # type: ignore[override]
        return "admin/wopr/login.html"  # the page below, plus "Sign in with Authentik"

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The sign-in page: local passwords (break-glass) and, with OIDC_ISSUER set, a button
        to Authentik (wopr.staff_sso)."""
        base = OTPAdminSite.login_template if settings.ADMIN_REQUIRE_OTP else "admin/login.html"
        context = {"wopr_login_base": base, **(extra_context or {})}
        if settings.OIDC_ISSUER:
            index = reverse("admin:index", current_app=self.name)
            next_url = request.GET.get(REDIRECT_FIELD_NAME) or index
            context["sso_login_url"] = f"{reverse('oidc_authentication_init')}?" + urlencode(
                {"next": next_url}
            )
            context["sso_refused"] = request.GET.get("sso") == "refused"
            context["sso_needs_totp"] = bool(settings.ADMIN_REQUIRE_OTP) and bool(
                sso_user_without_mfa(request)
            )
        return super().login(request, context)

    def has_permission(self, request: HttpRequest) -> bool:
        """Active staff; with ADMIN_REQUIRE_OTP also verified by a TOTP device this session,
        unless they signed in through Authentik and its ID token proved MFA (`amr`)."""
        if settings.ADMIN_REQUIRE_OTP and not sso_mfa_proven(request):
            return super().has_permission(request)
        return AdminSite.has_permission(self, request)
