"""Staff sign in to the admin with Authentik (here: the real oidc-provider on loopback); their
Authentik groups become staff roles, re-synced at every sign-in; nobody else gets in."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tests.oidc_provider import OidcAccount, follow_authorization
from tests.sso.conftest import CALLBACK, sso_callback, sso_sign_in, sso_start
from wopr.models import StaffIdentity
from wopr.staff_sso import _audience_ok

pytestmark = pytest.mark.django_db
User = get_user_model()


def roles(user) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def signed_in_user(client: Client):
    """Who the client's session belongs to (None: nobody)."""
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def test_operations_member_lands_in_the_admin_as_staff_with_the_operations_role(sso, settings):
    settings.ADMIN_REQUIRE_OTP = True  # Authentik's MFA (`amr` "mfa") stands in for the TOTP
    client = Client()
    groups = ("wopr-operations", "misc")
    ops = OidcAccount(sub="ops-1", email="ops@example.com", groups=groups, amr=("pwd", "mfa"))

    answer = sso_sign_in(client, sso, ops)

    assert (answer.status_code, answer["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200
    user = StaffIdentity.objects.get(subject="ops-1").user
    assert (user.is_staff, user.is_superuser, roles(user)) == (True, False, ["operations"])
    assert user.email == "ops@example.com"
    assert not user.has_usable_password()  # no local sign-in for an SSO-made user
    assert StaffIdentity.objects.get(user=user).issuer == settings.OIDC_ISSUER


def test_owner_gets_the_owner_role_and_its_permissions_not_superuser(sso):
    client = Client()
    owner = OidcAccount(sub="own-1", email="owner@example.com", groups=("wopr-owners",))

    assert sso_sign_in(client, sso, owner)["Location"] == "/admin/"

    user = StaffIdentity.objects.get(subject="own-1").user
    assert (user.is_staff, user.is_superuser, roles(user)) == (True, False, ["owner"])
    assert user.has_perm("wopr.decommission_beacon") and user.has_perm("billing.change_price")
    listing = client.get("/admin/wopr/staffidentity/")
    assert listing.status_code == 200 and "own-1" in listing.content.decode()


def test_someone_in_no_staff_group_is_refused_and_no_user_is_made(sso):
    client = Client()
    customer = OidcAccount(sub="cus-1", email="cus@example.com", groups=("wopr-nextcloud",))
    users_before = User.objects.count()

    answer = sso_sign_in(client, sso, customer)

    assert answer["Location"] == "/admin/login/?sso=refused"
    assert signed_in_user(client) is None
    assert (User.objects.count(), StaffIdentity.objects.count()) == (users_before, 0)
    assert client.get("/admin/").status_code == 302
    page = client.get("/admin/login/?sso=refused").content.decode()
    assert "no staff role" in page
    assert AccessAttempt.objects.get().failures_since_start == 1  # counts towards the lockout


def test_a_second_sign_in_after_group_removal_drops_the_role(sso):
    client = Client()
    both = ("wopr-operations", "wopr-support")
    sso_sign_in(client, sso, OidcAccount(sub="mix-1", email="mix@example.com", groups=both))
    user = StaffIdentity.objects.get(subject="mix-1").user
    user.groups.add(Group.objects.create(name="newsletter"))  # not a staff role: left alone
    assert roles(user) == ["newsletter", "operations", "support"]

    fewer = OidcAccount(sub="mix-1", email="mix@example.com", groups=("wopr-support",))
    assert sso_sign_in(Client(), sso, fewer)["Location"] == "/admin/"
    user.refresh_from_db()
    assert (user.is_staff, roles(user)) == (True, ["newsletter", "support"])

    none = OidcAccount(sub="mix-1", email="mix@example.com")
    assert sso_sign_in(client, sso, none)["Location"] == "/admin/login/?sso=refused"
    user.refresh_from_db()
    assert (user.is_staff, user.is_superuser, roles(user)) == (False, False, ["newsletter"])
    assert signed_in_user(client) is None  # the session it had is over too
    assert User.objects.filter(email="mix@example.com").count() == 1


def test_staff_are_matched_by_subject_never_by_e_mail(sso, settings):
    settings.ADMIN_REQUIRE_OTP = False
    local = User.objects.create_user("ops-local", email="ops@example.com", password="pw-1234567")
    first = OidcAccount(sub="sub-a", email="ops@example.com", groups=("wopr-operations",))
    reused = OidcAccount(sub="sub-b", email="ops@example.com", groups=("wopr-support",))

    sso_sign_in(Client(), sso, first)
    sso_sign_in(Client(), sso, reused)

    a, b = (StaffIdentity.objects.get(subject=s).user for s in ("sub-a", "sub-b"))
    assert len({a.pk, b.pk, local.pk}) == 3
    assert (roles(a), roles(b)) == (["operations"], ["support"])
    local.refresh_from_db()
    assert (local.is_staff, roles(local), local.has_usable_password()) == (False, [], True)


def test_a_tampered_state_is_refused(sso):
    client = Client()
    account = OidcAccount(sub="st-1", email="st@example.com", groups=("wopr-operations",))
    sso.put_account(account)
    landed = follow_authorization(sso, sso_start(client), login="st-1")
    query = parse_qs(urlsplit(landed).query)
    forged = urlencode({"code": query["code"][0], "state": query["state"][0] + "x"})

    assert sso_callback(client, f"{CALLBACK}?{forged}").status_code == 400
    assert signed_in_user(client) is None
    assert not StaffIdentity.objects.exists()


def test_a_callback_for_another_browser_s_flow_is_refused(sso):
    victim, attacker = Client(), Client()
    account = OidcAccount(sub="st-2", email="st2@example.com", groups=("wopr-owners",))
    sso.put_account(account)
    landed = follow_authorization(sso, sso_start(attacker), login="st-2")

    sso_start(victim)  # the victim has a flow of its own, with another state
    assert sso_callback(victim, landed).status_code == 400
    assert signed_in_user(victim) is None


def test_a_tampered_nonce_is_refused(sso):
    client = Client()
    account = OidcAccount(sub="nc-1", email="nc@example.com", groups=("wopr-operations",))
    sso.put_account(account)
    authorize = urlsplit(sso_start(client))
    query = {key: values[0] for key, values in parse_qs(authorize.query).items()}
    query["nonce"] = query["nonce"][::-1]  # the ID token will carry a nonce Django never sent
    forged = urlunsplit(authorize._replace(query=urlencode(query)))

    landed = follow_authorization(sso, forged, login="nc-1")

    assert sso_callback(client, landed).status_code == 400
    assert signed_in_user(client) is None
    assert not StaffIdentity.objects.exists()


def test_a_callback_replayed_does_not_sign_in_again(sso):
    account = OidcAccount(sub="rp-1", email="rp@example.com", groups=("wopr-operations",))
    sso.put_account(account)
    client = Client()
    landed = follow_authorization(sso, sso_start(client), login="rp-1")
    assert sso_callback(client, landed)["Location"] == "/admin/"
    client.logout()

    assert sso_callback(client, landed).status_code in (302, 400)
    assert signed_in_user(client) is None


def test_an_error_from_the_provider_signs_nobody_in(sso):
    client = Client()
    state = parse_qs(urlsplit(sso_start(client)).query)["state"][0]
    answer = sso_callback(client, f"{CALLBACK}?error=access_denied&state={state}")
    assert answer["Location"] == "/admin/login/?sso=refused"
    assert signed_in_user(client) is None


def test_an_id_token_from_another_issuer_is_refused(sso, settings):
    settings.OIDC_ISSUER = sso.issuer.rstrip("/").replace("/wopr", "/another-app")
    client = Client()
    account = OidcAccount(sub="is-1", email="is@example.com", groups=("wopr-owners",))

    assert sso_sign_in(client, sso, account).status_code == 400
    assert signed_in_user(client) is None
    assert not StaffIdentity.objects.exists()


def test_an_id_token_must_be_meant_for_this_client():
    assert _audience_ok({"aud": "wopr-staff"}, "wopr-staff")
    assert _audience_ok({"aud": ["wopr-staff", "x"], "azp": "wopr-staff"}, "wopr-staff")
    assert not _audience_ok({"aud": ["wopr-staff", "x"], "azp": "x"}, "wopr-staff")
    assert not _audience_ok({"aud": "wopr-customer"}, "wopr-staff")
    assert not _audience_ok({}, "wopr-staff")
