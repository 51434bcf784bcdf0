"""The test OIDC provider itself: the tokens it hands out are the ones the API and the staff
sign-in will see (signed with its JWKS, the right audience, the account's claims)."""

from __future__ import annotations

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import oidc_provider as oidc_provider_module
from tests.oidc_provider import (
    OidcAccount,
    authorization_code,
    follow_authorization,
    tokens,
    verified_claims,
)


def test_customer_access_token_is_a_jwt_for_the_api_audience(oidc_provider):
    alice = OidcAccount(sub="prov-alice", email="alice@example.com", groups=("wopr-nextcloud",))
    got = tokens(oidc_provider, account=alice, client=oidc_provider.customer)
    claims = verified_claims(oidc_provider, got.access_token, audience=oidc_provider.audience)
    assert claims["sub"] == "prov-alice"
    assert claims["iss"] == oidc_provider.issuer
    assert claims["client_id"] == "wopr-customer"
    assert got.claims["email"] == "alice@example.com"
    assert got.claims["groups"] == ["wopr-nextcloud"]


def test_access_token_signed_by_another_key_is_not_verified(oidc_provider):
    bob = OidcAccount(sub="prov-bob", email="bob@example.com")
    got = tokens(oidc_provider, account=bob, client=oidc_provider.customer)
    claims = jwt.decode(got.access_token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(got.access_token)["kid"]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": kid})
    with pytest.raises(jwt.PyJWTError):
        verified_claims(oidc_provider, forged, audience=oidc_provider.audience)


def test_staff_client_gets_an_access_token_good_for_userinfo(oidc_provider):
    carol = OidcAccount(sub="prov-carol", email="carol@example.com", groups=("wopr-operations",))
    got = tokens(oidc_provider, account=carol, client=oidc_provider.staff)
    answer = httpx.get(
        oidc_provider.discovery["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {got.access_token}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["groups"] == ["wopr-operations"]


def test_the_id_token_carries_the_account_s_authentication_methods(oidc_provider):
    """As Authentik's: `amr` says how the sign-in authenticated ("mfa" after an MFA stage)."""
    staff = oidc_provider.staff
    mfa = OidcAccount(sub="prov-mfa", email="mfa@example.com", amr=("pwd", "mfa"))
    assert tokens(oidc_provider, account=mfa, client=staff).claims["amr"] == ["pwd", "mfa"]
    password = OidcAccount(sub="prov-pwd", email="pwd@example.com")
    assert tokens(oidc_provider, account=password, client=staff).claims["amr"] == ["pwd"]
    silent = OidcAccount(sub="prov-none", email="none@example.com", amr=())
    assert "amr" not in tokens(oidc_provider, account=silent, client=staff).claims


def test_group_change_applies_to_the_next_sign_in(oidc_provider):
    dave = OidcAccount(sub="prov-dave", email="dave@example.com", groups=("wopr-owners",))
    assert tokens(oidc_provider, account=dave, client=oidc_provider.staff).claims["groups"] == [
        "wopr-owners"
    ]
    oidc_provider.put_account(OidcAccount(sub="prov-dave", email="dave@example.com"))
    assert (
        tokens(oidc_provider, account="prov-dave", client=oidc_provider.staff).claims["groups"]
        == []
    )


def test_unknown_account_gets_no_code(oidc_provider):
    with pytest.raises(AssertionError):
        authorization_code(oidc_provider, account="nobody-here", client=oidc_provider.customer)


def test_wrong_redirect_uri_is_refused_by_the_provider(oidc_provider):
    url = (
        f"{oidc_provider.discovery['authorization_endpoint']}?client_id=wopr-staff"
        "&response_type=code&scope=openid&redirect_uri=http://evil.example/cb&state=s&nonce=n"
    )
    with pytest.raises(AssertionError, match="400"):
        follow_authorization(oidc_provider, url, login="prov-carol")


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_without_node_the_provider_tests_fail_in_ci_and_skip_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(oidc_provider_module.shutil, "which", lambda name: None)
    with pytest.raises(outcome, match="npm ci --prefix tests/oidc"):
        oidc_provider_module._require_node()


def test_with_node_and_its_modules_the_provider_is_required_not_skipped(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert oidc_provider_module._require_node().endswith("node")
