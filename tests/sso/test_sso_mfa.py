"""The admin's TOTP (ADMIN_REQUIRE_OTP) after a sign-in through Authentik: skipped only when the
ID token's `amr` proves a second factor (OIDC_STAFF_MFA_AMR, Authentik's "mfa"); after a
password-only sign-in the admin asks for the local TOTP code, and nothing opens without it."""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.oidc_provider import OidcAccount
from tests.sso.conftest import sso_sign_in
from wopr.models import StaffIdentity
from wopr.staff_sso import SSO_MFA_SESSION_KEY, STAFF_SSO_BACKEND, mfa_in_amr

pytestmark = pytest.mark.django_db
OPS = ("wopr-operations",)
LOGIN = "/admin/login/?next=/admin/"


def _code(device: TOTPDevice, offset: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{(totp.token() + offset) % 10**device.digits:0{device.digits}d}"


def _device_for(subject: str) -> TOTPDevice:
    user = StaffIdentity.objects.get(subject=subject).user
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def test_an_mfa_sign_in_at_authentik_is_not_asked_for_the_totp(sso, settings):
    settings.ADMIN_REQUIRE_OTP = True
    client = Client()
    account = OidcAccount(sub="mfa-1", email="mfa@example.com", groups=OPS, amr=("pwd", "mfa"))

    assert sso_sign_in(client, sso, account)["Location"] == "/admin/"

    assert client.session[SSO_MFA_SESSION_KEY] is True
    assert client.get("/admin/").status_code == 200
    assert client.get(LOGIN)["Location"] == "/admin/"  # the sign-in page has nothing to ask


def test_a_password_only_sign_in_is_asked_for_the_local_totp(sso, settings):
    settings.ADMIN_REQUIRE_OTP = True
    client = Client()
    account = OidcAccount(sub="pwd-1", email="pwd@example.com", groups=OPS, amr=("pwd",))
    assert sso_sign_in(client, sso, account)["Location"] == "/admin/"
    device = _device_for("pwd-1")

    assert client.session[SSO_MFA_SESSION_KEY] is False
    refused = client.get("/admin/")
    assert (refused.status_code, refused["Location"]) == (302, LOGIN)
    page = client.get(LOGIN).content.decode()
    assert "did not report a second factor" in page and 'name="otp_token"' in page
    assert 'name="password"' not in page  # an SSO user has no local password to type

    wrong = client.post(LOGIN, {"otp_token": _code(device, offset=1), "next": "/admin/"})
    assert wrong.status_code == 200 and client.get("/admin/").status_code == 302

    device.refresh_from_db()
    device.throttling_failure_count, device.throttling_failure_timestamp = 0, None
    device.save()
    accepted = client.post(LOGIN, {"otp_token": _code(device), "next": "/admin/"})
    assert (accepted.status_code, accepted["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200
    assert client.session[BACKEND_SESSION_KEY] == STAFF_SSO_BACKEND


def test_a_password_only_sign_in_without_a_totp_device_never_reaches_the_admin(sso, settings):
    settings.ADMIN_REQUIRE_OTP = True
    client = Client()
    account = OidcAccount(sub="pwd-2", email="pwd2@example.com", groups=OPS, amr=())

    assert sso_sign_in(client, sso, account)["Location"] == "/admin/"

    assert client.post(LOGIN, {"otp_token": "123456", "next": "/admin/"}).status_code == 200
    assert client.get("/admin/").status_code == 302
    assert client.session.get("otp_device_id") is None


def test_a_later_password_only_sign_in_takes_the_mfa_proof_away(sso, settings):
    settings.ADMIN_REQUIRE_OTP = True
    client = Client()
    mfa = OidcAccount(sub="mix-mfa", email="mix@example.com", groups=OPS, amr=("pwd", "mfa"))
    assert sso_sign_in(client, sso, mfa)["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200

    password = OidcAccount(sub="mix-mfa", email="mix@example.com", groups=OPS, amr=("pwd",))
    assert sso_sign_in(client, sso, password)["Location"] == "/admin/"

    assert client.get("/admin/").status_code == 302


def test_without_admin_require_otp_a_password_only_sign_in_gets_in(sso, settings):
    settings.ADMIN_REQUIRE_OTP = False
    client = Client()
    account = OidcAccount(sub="pwd-3", email="pwd3@example.com", groups=OPS, amr=("pwd",))

    assert sso_sign_in(client, sso, account)["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_only_an_accepted_amr_value_in_a_list_proves_a_second_factor(settings):
    settings.OIDC_STAFF_MFA_AMR = "mfa"
    assert mfa_in_amr({"amr": ["pwd", "mfa"]})
    assert not mfa_in_amr({"amr": ["pwd"]})
    assert not mfa_in_amr({"amr": "mfa"})  # not a list: proves nothing
    assert not mfa_in_amr({"amr": [["mfa"]]})
    assert not mfa_in_amr({})
    assert not mfa_in_amr({"amr": ["hwk"]})
    settings.OIDC_STAFF_MFA_AMR = " mfa , hwk ,"
    assert mfa_in_amr({"amr": ["hwk"]})
    assert not mfa_in_amr({"amr": [""]})
