"""The admin site: Django's, plus a TOTP second factor for staff when ADMIN_REQUIRE_OTP is on.

The setting is read at request time, so tests (and a deployment's environment) switch it
without a second URL map. django-otp's OTPAdminSite does the work; with the setting off the
site behaves exactly as Django's own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth
from django.contrib.admin import AdminSite, ModelAdmin, helpers
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.db.models import QuerySet
from django.db.models.base import ModelBase
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import URLPattern, reverse
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


# --- the vendors' admins -------------------------------------------------------------------
#
# The roles read dj-stripe's and django-q2's tables (wopr.roles). Django offers an action that
# declares no `permissions` to everyone who can open the list, and those vendors' undeclared
# actions act: dj-stripe cancels subscriptions in Stripe and syncs from its API, django-q2
# re-runs any stored task (a refund, a repairing reconcile). Their own confirmation view
# (dj-stripe's `action/<name>/<model>/`) checks nothing beyond is_staff. So for the vendors'
# admins such actions and such views are the superuser's (break-glass) alone, and each run is
# recorded in the audit trail. The owner gets none of them: refunds and cancellations go
# through the remedy flow (billing.remedy_admin), which keeps orders and Beacons in step with
# Stripe; a cancel made in dj-stripe's list would bypass it.

DJANGO_ADMIN_VIEWS = ("changelist", "add", "history", "delete", "change")
AUDITED_IDS = 50  # at most this many selected ids are written into a trail row


def vendor_app(app_config: Any) -> bool:
    """An installed app that is neither this project's (a package beside manage.py) nor
    Django's own (whose admins declare the permissions of their actions and views)."""
    top = app_config.name.split(".", 1)[0]
    return top != "django" and not (settings.BASE_DIR / top / "__init__.py").is_file()


def vendor_admin_guard(model_admin: ModelAdmin) -> None:
    """Wrap a vendor admin's get_actions and get_urls (on the instance, after its own class's
    versions have run): undeclared actions and views of its own are for superusers only."""
    own_get_actions, own_get_urls = model_admin.get_actions, model_admin.get_urls
    label = model_admin.model._meta.label_lower

    def get_actions(request: HttpRequest) -> dict[str, Any]:
        return vendor_actions_allowed(model_admin, request, own_get_actions(request))

    def get_urls() -> list[Any]:
        return [vendor_url_guarded(pattern, label) for pattern in own_get_urls()]

    model_admin.get_actions = get_actions  # type: ignore[method-assign]
    model_admin.get_urls = get_urls  # type: ignore[method-assign]


def vendor_actions_allowed(
    model_admin: ModelAdmin, request: HttpRequest, actions: dict[str, Any]
) -> dict[str, Any]:
    """The actions that declare permissions the user holds (checked again here: dj-stripe adds
    its cancel after Django's check), plus for a superuser the undeclared ones, each wrapped to
    leave a row in the audit trail."""
    declared = [
        entry for entry in actions.values() if getattr(entry[0], "allowed_permissions", None)
    ]
    checked = model_admin._filter_actions_by_permissions(request, declared)
    allowed = {entry[1]: entry for entry in checked}
    if not request.user.is_superuser:
        return allowed
    label = model_admin.model._meta.label_lower
    for name, (func, action_name, description) in actions.items():
        if name not in allowed:
            allowed[name] = (vendor_action_audited(func, action_name, label), name, description)
    return allowed


def vendor_action_audited(func: Callable[..., Any], name: str, label: str) -> Callable[..., Any]:
    """The action, recording who ran it on which rows and whether it acted or only showed a
    page (dj-stripe's actions show a confirmation; its view below does the work)."""

    @wraps(func)
    def run(model_admin: ModelAdmin, request: HttpRequest, queryset: QuerySet) -> Any:
        from wopr.audit import staff_action_record  # the models load after the site

        selected = [str(pk) for pk in queryset.values_list("pk", flat=True)[:AUDITED_IDS]]
        response = func(model_admin, request, queryset)
        shown = response is not None and response.status_code == 200
        staff_action_record(
            user=request.user,
            action=f"vendor.{name}"[:64],
            outcome="confirmation page shown" if shown else "done",
            detail={"model": label, "selected": selected},
        )
        return response

    return run


def vendor_url_guarded(pattern: Any, label: str) -> Any:
    """Django's own views of the admin as they are; any other named view of a vendor's admin
    answers 403 to signed-in staff who are not superusers, and records each POST."""
    app_label, model_name = label.split(".")
    ours = {f"{app_label}_{model_name}_{view}" for view in DJANGO_ADMIN_VIEWS}
    if not isinstance(pattern, URLPattern) or not pattern.name or pattern.name in ours:
        return pattern
    view = vendor_view_superuser_only(pattern.callback, pattern.name)
    return URLPattern(pattern.pattern, view, pattern.default_args, pattern.name)


def vendor_view_superuser_only(view: Callable[..., Any], name: str) -> Callable[..., Any]:
    """The view for superusers (each POST recorded); 403 for other signed-in users, and the
    admin's own sign-in redirect (inside `view`) for anyone not signed in."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and not request.user.is_superuser:
            return HttpResponseForbidden("Only a superuser may run this vendor action.")
        if request.method != "POST":
            return view(request, *args, **kwargs)
        outcome = "failed"
        try:
            response = view(request, *args, **kwargs)
            outcome = (
                "done" if response.status_code == 302 else f"not done ({response.status_code})"
            )
            return response
        finally:
            vendor_view_record(request, kwargs.get("action_name") or name, kwargs, outcome)

    return guarded


def vendor_view_record(
    request: HttpRequest, name: str, kwargs: dict[str, Any], outcome: str
) -> None:
    """The trail row of a POST to a vendor's own admin view (dj-stripe's custom actions)."""
    from wopr.audit import staff_action_record  # the models load after the site

    selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)[:AUDITED_IDS]
    staff_action_record(
        user=request.user,
        action=f"vendor.{name}"[:64],
        outcome=outcome,
        detail={"model": str(kwargs.get("model_name", "")), "selected": selected},
    )


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
        admin whose class did not choose its own: no changelist counts a whole table; and for
        the vendors' admins (dj-stripe, django-q2, ...) the guard below on their actions."""
        super().register(model_or_iterable, admin_class, **options)
        single = isinstance(model_or_iterable, ModelBase)
        models = [model_or_iterable] if single else model_or_iterable
        for model in models:
            if model in self._registry:
                changelist_defaults_apply(self._registry[model])
                if vendor_app(model._meta.app_config):
                    vendor_admin_guard(self._registry[model])

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
