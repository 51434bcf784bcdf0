"""Staff single sign-on with Authentik over OpenID Connect (mozilla-django-oidc).

Installed only when OIDC_ISSUER is set (settings.py adds the backend and the session refresh,
wopr/urls.py the /oidc/ routes). A staff member is found by the ID token's `sub` at this issuer
(StaffIdentity), never by e-mail. Their Authentik groups (the `groups` claim) become staff
roles through OIDC_STAFF_GROUPS ("wopr-operations=operations,..."): Django groups of those
names, re-synced at every sign-in, so a role removed in Authentik is removed here. Someone in
no staff group is refused, and no user is made for them. What each role may do is its
group's permissions (wopr.roles); nobody signed in here is a superuser.

Second factor: staff signed in here skip the admin's local TOTP code only when the ID token
proves Authentik did MFA: its `amr` claim (RFC 8176; Authentik puts "mfa" there after an MFA
stage) holds one of OIDC_STAFF_MFA_AMR. That is recorded in the session at sign-in
(`sso_mfa_proven`, used by wopr.admin_site); otherwise, with ADMIN_REQUIRE_OTP on, the admin
asks for the local TOTP code as after a local password. Local passwords (with the lockout and
TOTP as before) stay for break-glass; users made here have no usable local password.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from wopr.lib.staff_groups import staff_group_map
from wopr.models import StaffIdentity

logger = logging.getLogger(__name__)

STAFF_SSO_BACKEND = "wopr.staff_sso.StaffOIDCBackend"
SSO_MFA_SESSION_KEY = "wopr_sso_mfa"  # True: this sign-in's ID token proved a second factor
_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


def staff_roles(claims: dict[str, Any]) -> set[str]:
    """The staff roles the `groups` claim grants (none for a missing or malformed claim)."""
    groups = claims.get("groups")
    if not isinstance(groups, list):
        return set()
    mapping = staff_group_map()
    return {mapping[name] for name in groups if isinstance(name, str) and name in mapping}


def signed_in_with_sso(request: HttpRequest) -> bool:
    """Whether this session's user signed in through Authentik; the backend is recorded
    server-side in the session at sign-in."""
    return request.session.get(BACKEND_SESSION_KEY) == STAFF_SSO_BACKEND


def sso_mfa_proven(request: HttpRequest) -> bool:
    """Whether this session signed in through Authentik with a second factor the ID token
    proved (its MFA then stands in for the admin's local TOTP)."""
    return signed_in_with_sso(request) and request.session.get(SSO_MFA_SESSION_KEY) is True


def mfa_in_amr(payload: dict[str, Any]) -> bool:
    """Whether the ID token's `amr` names a method of OIDC_STAFF_MFA_AMR (a missing or
    malformed claim proves nothing)."""
    amr = payload.get("amr")
    if not isinstance(amr, list):
        return False
    accepted = {value.strip() for value in settings.OIDC_STAFF_MFA_AMR.split(",")} - {""}
    return any(isinstance(value, str) and value in accepted for value in amr)


def staff_sign_in(*, issuer: str, claims: dict[str, Any]) -> AbstractBaseUser | None:
    """Find (or make) the staff user for the `sub` at `issuer`, sync profile and roles from the
    claims, and return it; None when the claims grant no staff role (the user, if one exists,
    keeps no role and loses staff status; none is made)."""
    subject, roles = str(claims["sub"]), staff_roles(claims)
    with transaction.atomic():
        identity = _identity_locked(issuer, subject)
        if identity is None and not roles:
            logger.warning("Staff sign-in refused: sub %s is in no staff group", subject)
            return None
        identity = identity or _identity_create(issuer, subject, claims)
        _user_sync(identity.user, claims, roles)
        identity.last_sign_in_at = timezone.now()
        identity.save(update_fields=["last_sign_in_at"])
    if not roles:
        logger.warning("Staff sign-in refused: sub %s left every staff group", subject)
        return None
    return identity.user


def _identity_locked(issuer: str, subject: str) -> StaffIdentity | None:
    rows = StaffIdentity.objects.select_for_update().select_related("user")
    return rows.filter(issuer=issuer, subject=subject).first()


def _identity_create(issuer: str, subject: str, claims: dict[str, Any]) -> StaffIdentity:
    """A new user and its identity; a concurrent first sign-in of the same subject loses on the
    unique constraint and takes the winner's row."""
    try:
        with transaction.atomic():
            user = auth.get_user_model()(username=_username_free(claims, subject))
            user.set_unusable_password()  # break-glass passwords are set by hand, never here
            user.save()
            return StaffIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    except IntegrityError:
        identity = _identity_locked(issuer, subject)
        if identity is None:
            raise SuspiciousOperation("staff sign-in: no username free") from None
        return identity


def _username_free(claims: dict[str, Any], subject: str) -> str:
    """preferred_username (else the e-mail), made safe; suffixed when a user already has it,
    since users are matched by subject, a name is only a label."""
    wanted = str(claims.get("preferred_username") or claims.get("email") or "staff")
    name = _USERNAME_UNSAFE.sub("-", wanted)[:120]
    if not auth.get_user_model().objects.filter(username=name).exists():
        return name
    return f"{name}-sso-{hashlib.sha256(subject.encode()).hexdigest()[:10]}"


def _user_sync(user: Any, claims: dict[str, Any], roles: set[str]) -> None:
    """Profile from the claims; managed role groups exactly `roles`; staff while any remain."""
    user.email = str(claims.get("email") or "")[:254]
    user.first_name = str(claims.get("name") or "")[:150]
    user.is_staff = bool(roles)
    user.is_superuser = False  # a role's powers are its group's permissions (wopr.roles)
    user.save(update_fields=["email", "first_name", "is_staff", "is_superuser"])
    managed = set(staff_group_map().values())
    user.groups.remove(*user.groups.filter(name__in=managed - roles))
    user.groups.add(*(Group.objects.get_or_create(name=role)[0] for role in sorted(roles)))


def _audience_ok(payload: dict[str, Any], client_id: str) -> bool:
    audience = payload.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        return False
    return len(audiences) == 1 or payload.get("azp") == client_id


class StaffOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, matching staff by subject and mapping groups to roles.

    On top of the library's signature and nonce checks, the ID token must come from
    OIDC_ISSUER and be meant for this client, and userinfo must describe the same subject.
    """

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The library's checks (signature against the JWKS, alg, nonce), then iss and aud."""
        payload = super().verify_token(token, **kwargs)
        if str(payload.get("iss", "")).rstrip("/") != settings.OIDC_ISSUER:
            raise SuspiciousOperation("ID token from another issuer")
        if not _audience_ok(payload, self.OIDC_RP_CLIENT_ID):
            raise SuspiciousOperation("ID token for another client")
        return payload

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> AbstractBaseUser | None:
        """The staff user for the signed-in subject, or None (refused); `sso_mfa` on it says
        whether the ID token proved a second factor (the callback stores it in the session)."""
        claims = self.get_userinfo(access_token, id_token, payload)
        if claims.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo describes another subject than the ID token")
        user = staff_sign_in(issuer=settings.OIDC_ISSUER, claims=claims)
        if user is not None:
            user.sso_mfa = mfa_in_amr(payload)  # type: ignore[attr-defined]
        return user


class StaffOIDCCallbackView(OIDCAuthenticationCallbackView):
    """The callback; a refused sign-in (also a refused silent re-check by SessionRefresh)
    ends any session the browser had, so a removed staff member keeps no access."""

    def login_success(self) -> HttpResponse:
        """Signed in (the library's login); then whether this sign-in proved a second factor,
        set at every sign-in and silent re-check, so a later password-only one clears it."""
        response = super().login_success()
        self.request.session[SSO_MFA_SESSION_KEY] = getattr(self.user, "sso_mfa", False) is True
        return response

    def login_failure(self) -> HttpResponse:
        if self.request.user.is_authenticated:
            auth.logout(self.request)
        return super().login_failure()
