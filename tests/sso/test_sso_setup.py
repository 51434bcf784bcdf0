"""How single sign-on is switched on and what stays beside it: the endpoints derived from the
issuer, nothing under /oidc/ without OIDC_ISSUER, the break-glass local sign-in (with its TOTP),
and the silent re-check that ends the session of someone removed in Authentik."""

from __future__ import annotations

import time

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.oidc_provider import OidcAccount, follow_authorization
from tests.sso.conftest import ENDPOINTS, settings_for_issuer, sso_callback, sso_sign_in
from wopr.checks import check_staff_sso
from wopr.lib.staff_groups import staff_group_map

User = get_user_model()
PASSWORD = "correct horse battery staple"


def test_endpoints_derived_from_the_issuer_are_the_providers_own(oidc_provider, derived):
    """Authentik's layout, as settings.py derives it, is where the provider serves them."""
    discovery = oidc_provider.discovery
    served = (
        discovery["authorization_endpoint"],
        discovery["token_endpoint"],
        discovery["userinfo_endpoint"],
        discovery["jwks_uri"],
    )
    assert tuple(derived[name] for name in ENDPOINTS) == served
    assert derived["backends"][-1] == "wopr.staff_sso.StaffOIDCBackend"
    assert "mozilla_django_oidc.middleware.SessionRefresh" in derived["middleware"]


def test_each_endpoint_can_be_set_on_its_own():
    issuer = "https://auth.example/application/o/wopr/"
    custom = "https://idp.example/custom/token"
    got = settings_for_issuer(issuer, OIDC_OP_TOKEN_ENDPOINT=custom)
    assert got["OIDC_OP_TOKEN_ENDPOINT"] == custom
    assert got["OIDC_OP_USER_ENDPOINT"] == "https://auth.example/application/o/userinfo/"
    assert got["OIDC_ISSUER"] == "https://auth.example/application/o/wopr"


@pytest.mark.django_db
def test_without_oidc_issuer_there_is_no_oidc_url_and_no_button(sso_off):
    plain = settings_for_issuer("")
    assert "wopr.staff_sso.StaffOIDCBackend" not in plain["backends"]
    assert "mozilla_django_oidc.middleware.SessionRefresh" not in plain["middleware"]
    with pytest.raises(NoReverseMatch):
        reverse("oidc_authentication_init")
    client = Client()
    for path in ("/oidc/authenticate/", "/oidc/callback/?code=x&state=y", "/oidc/logout/"):
        assert client.get(path).status_code == 404
    assert "Sign in with Authentik" not in client.get("/admin/login/").content.decode()


@pytest.mark.django_db
def test_the_admin_sign_in_page_offers_authentik_when_configured(sso):
    page = Client().get("/admin/login/?next=/admin/billing/").content.decode()
    assert "Sign in with Authentik" in page
    assert 'href="/oidc/authenticate/?next=%2Fadmin%2Fbilling%2F"' in page
    assert 'name="password"' in page  # the local form stays (break-glass)


@pytest.mark.django_db
@pytest.mark.parametrize("otp_required", [True, False])
def test_local_break_glass_sign_in_still_works_and_still_needs_totp(sso, settings, otp_required):
    settings.ADMIN_REQUIRE_OTP = otp_required
    User.objects.create_user("breakglass", password=PASSWORD, is_staff=True, is_superuser=True)
    device = TOTPDevice.objects.create(user=User.objects.get(), name="phone", confirmed=True)
    client = Client()
    form = {"username": "breakglass", "password": PASSWORD, "next": "/admin/"}

    password_only = client.post("/admin/login/?next=/admin/", form)
    if otp_required:
        assert password_only.status_code == 200  # the form again: no code, no admin
        assert client.get("/admin/").status_code == 302
        code = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
        accepted = client.post("/admin/login/?next=/admin/", form | {"otp_token": f"{code:06d}"})
        assert (accepted.status_code, accepted["Location"]) == (302, "/admin/")
    else:
        assert (password_only.status_code, password_only["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_session_re_check_signs_out_someone_removed_in_authentik(sso, settings):
    settings.ADMIN_REQUIRE_OTP = False
    account = OidcAccount(sub="rf-1", email="rf@example.com", groups=("wopr-operations",))
    client = Client()
    with httpx.Client(timeout=10) as browser:  # keeps the provider's session, as a browser does
        assert sso_sign_in(client, sso, account, browser=browser)["Location"] == "/admin/"
        assert client.get("/admin/").status_code == 200

        _expire_id_token(client)
        recheck = client.get("/admin/")  # SessionRefresh: back to Authentik, prompt=none
        assert recheck.status_code == 302 and "prompt=none" in recheck["Location"]
        landed = follow_authorization(sso, recheck["Location"], login="-", browser=browser)
        assert sso_callback(client, landed)["Location"] == "/admin/"  # still staff: silent
        assert client.get("/admin/").status_code == 200

        sso.remove_account("rf-1")  # deactivated in Authentik
        _expire_id_token(client)
        recheck = client.get("/admin/")
        landed = follow_authorization(sso, recheck["Location"], login="-", browser=browser)
        assert "error=" in landed
        assert sso_callback(client, landed)["Location"] == "/admin/login/?sso=refused"
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def _expire_id_token(client: Client) -> None:
    session = client.session
    session["oidc_id_token_expiration"] = time.time() - 1
    session.save()


def test_staff_groups_setting_is_parsed_and_malformed_entries_refused():
    parsed = staff_group_map(" wopr-support=support , wopr-owners = owner ,")
    assert parsed == {"wopr-support": "support", "wopr-owners": "owner"}
    for bad in ("wopr-support", "=owner", "wopr-owners="):
        with pytest.raises(ImproperlyConfigured):
            staff_group_map(bad)


def test_the_system_check_refuses_sso_without_client_credentials(settings):
    settings.OIDC_ISSUER = "https://auth.example/application/o/wopr"
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = "", "s3cret"
    settings.OIDC_STAFF_GROUPS = "wopr-owners"
    errors = {error.id: error.msg for error in check_staff_sso()}
    assert errors == {
        "wopr.E120": "OIDC_ISSUER is set: set OIDC_CLIENT_ID too.",
        "wopr.E121": "OIDC_STAFF_GROUPS: 'wopr-owners' is not group=role "
        "(expected: group=role,group=role).",
    }

    settings.OIDC_RP_CLIENT_ID, settings.OIDC_STAFF_GROUPS = "wopr-staff", "wopr-owners=owner"
    assert check_staff_sso() == []
    settings.OIDC_ISSUER, settings.OIDC_RP_CLIENT_ID = "", ""
    assert check_staff_sso() == []  # no single sign-on: nothing to configure
