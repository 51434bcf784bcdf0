"""Customers' bearer tokens: only a token the provider signed for us, now, gets in; every other
one is the same 401, and no token can make us ask the provider for keys more than once a minute.

The provider is a loopback HTTP server of the test's own serving a discovery document and a
JWKS of keys generated here (tests/selfservice/conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.cache import cache

from billing import customer_auth
from billing.customer_auth import MAX_TOKEN_LENGTH, oidc_keys_forget
from billing.models import Customer
from tests.loopback import free_port

pytestmark = pytest.mark.django_db

URL = "/api/v1/me/beacons"


def get(client, token: str | None = None, **headers: str):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get(URL, **headers)


def assert_invalid_token(response) -> None:
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == 'Bearer realm="wopr", error="invalid_token"'
    assert response.json() == {
        "error": {
            "code": "invalid_token",
            "message": "The bearer token is not valid.",
            "fields": {},
        }
    }


def test_a_valid_rs256_token_lists_the_customers_beacons(client, provider):
    response = get(client, provider.token())
    assert response.status_code == 200, response.content
    assert response.json() == {"beacons": []}
    assert Customer.objects.get().oidc_subject == "subject-ada"


def test_a_valid_es256_token_is_accepted_too(client, provider):
    provider.add_key("k-ec", kind="ec")
    assert get(client, provider.token(kid="k-ec")).status_code == 200


def test_no_token_is_401_with_a_bare_bearer_challenge(client, provider):
    response = get(client)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="wopr"'
    assert get(client, HTTP_AUTHORIZATION="Basic YWRhOnB3").status_code == 401


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": int(time.time()) - 120}, id="expired"),
        pytest.param({"nbf": int(time.time()) + 600}, id="not-yet-valid"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({"aud": "another-client"}, id="wrong-audience"),
        pytest.param({"aud": None}, id="no-audience"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"sub": None}, id="no-subject"),
    ],
)
def test_a_token_with_wrong_claims_is_refused(client, provider, claims):
    assert_invalid_token(get(client, provider.token(**claims)))
    assert not Customer.objects.exists()


def test_the_issuer_may_carry_authentiks_trailing_slash_but_nothing_else(client, provider):
    assert get(client, provider.token(iss=f"{provider.issuer}/")).status_code == 200
    assert_invalid_token(get(client, provider.token(iss=f"{provider.issuer}/other/")))
    assert_invalid_token(get(client, provider.token(iss=f"{provider.issuer}//")))


def test_the_expiry_has_only_a_small_leeway(client, provider):
    assert get(client, provider.token(exp=int(time.time()) - 5)).status_code == 200
    assert_invalid_token(get(client, provider.token(exp=int(time.time()) - 45)))


def test_the_api_audience_replaces_the_client_id_when_set(client, provider, settings):
    settings.OIDC_API_AUDIENCE = "wopr-api"
    assert get(client, provider.token(aud="wopr-api")).status_code == 200
    assert_invalid_token(get(client, provider.token()))


def test_a_tampered_signature_or_payload_is_refused(client, provider):
    header, payload, signature = provider.token().split(".")
    flipped = signature[:-6] + ("AAAAAA" if signature[-6:] != "AAAAAA" else "BBBBBB")
    assert_invalid_token(get(client, f"{header}.{payload}.{flipped}"))
    other = provider.token(sub="subject-mallory").split(".")[1]
    assert_invalid_token(get(client, f"{header}.{other}.{signature}"))


def test_the_none_algorithm_is_refused(client, provider):
    unsigned = jwt.encode(
        {"iss": provider.issuer, "aud": "wopr-selfservice", "sub": "x", "exp": 2**31},
        key=None,
        algorithm="none",
        headers={"kid": "k1"},
    )
    assert_invalid_token(get(client, unsigned))


def test_hs256_signed_with_the_public_key_is_refused(client, provider):
    """The algorithm-confusion attack: the public key (known to all) used as an HMAC secret."""
    public = jwt.algorithms.RSAAlgorithm.from_jwk(provider.jwks()["keys"][0])
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": "wopr-selfservice", "sub": "x", "exp": now + 60}
    assert_invalid_token(get(client, _hmac_token(claims, pem)))


def _hmac_token(claims: dict, secret: bytes) -> str:
    """An HS256 JWS made by hand (PyJWT refuses a PEM as an HMAC key, as it should)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = ".".join(
        [
            b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()),
            b64(json.dumps(claims).encode()),
        ]
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_a_key_published_for_encryption_verifies_nothing(client, provider):
    provider.add_key("k-enc")
    provider.encryption_kids.add("k-enc")
    assert_invalid_token(get(client, provider.token(kid="k-enc")))
    assert get(client, provider.token()).status_code == 200


def test_an_oversized_token_is_refused_without_asking_the_provider(client, provider):
    padding = "x" * MAX_TOKEN_LENGTH
    assert_invalid_token(get(client, provider.token(padding=padding)))
    assert provider.requests == []


def test_garbage_is_refused(client, provider):
    for token in ["abc", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30.", "\u00e9t\u00e9"]:
        assert_invalid_token(get(client, token))


def test_unknown_kids_refetch_the_keys_at_most_once_a_minute(client, provider, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(customer_auth, "clock", lambda: now[0])
    provider.add_key("k-unpublished", publish=False)
    assert get(client, provider.token()).status_code == 200
    assert provider.requests.count("/jwks") == 1

    for n in range(5):  # made-up kids, and a real key the provider does not publish
        forged = provider.token(kid="k-unpublished", headers={"kid": f"made-up-{n}"})
        assert_invalid_token(get(client, forged))
        now[0] += 5
    assert_invalid_token(get(client, provider.token(kid="k-unpublished")))
    # All within a minute of the last fetch: none of them made us ask again.
    assert provider.requests.count("/jwks") == 1

    # The provider rotates: a new key is picked up once a minute has passed.
    provider.add_key("k2")
    now[0] += 60
    assert get(client, provider.token(kid="k2")).status_code == 200
    assert provider.requests.count("/jwks") == 2
    assert_invalid_token(get(client, provider.token(kid="k-unpublished")))
    assert provider.requests.count("/jwks") == 2
    assert provider.requests.count("/.well-known/openid-configuration") == 1


def test_a_provider_that_cannot_be_reached_is_503_and_not_asked_per_request(
    client, provider, settings, monkeypatch
):
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    oidc_keys_forget()
    calls = []
    original = customer_auth._fetch_json

    def counted(url: str) -> dict:
        calls.append(url)
        return original(url)

    monkeypatch.setattr(customer_auth, "_fetch_json", counted)
    token = provider.token(iss=settings.OIDC_ISSUER)
    for _ in range(3):
        response = get(client, token)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "service_unavailable"
    assert len(calls) == 1


def test_without_an_issuer_the_api_answers_503(client, provider, settings):
    settings.OIDC_ISSUER = ""
    response = get(client, provider.token())
    assert response.status_code == 503
    assert "not enabled" in response.json()["error"]["message"]
    assert get(client).status_code == 503


def test_the_discovery_document_is_cached(client, provider):
    for _ in range(3):
        assert get(client, provider.token()).status_code == 200
    assert provider.requests == ["/.well-known/openid-configuration", "/jwks"]
    cache.clear()  # another process, or the TTL passed: discovery again, the keys still held
    assert get(client, provider.token()).status_code == 200
    assert provider.requests.count("/.well-known/openid-configuration") == 2


def test_tokens_never_reach_the_logs(client, provider, caplog):
    caplog.set_level(logging.DEBUG)
    tokens = [provider.token(), provider.token(aud="x"), provider.token(kid="k1")[:-4] + "AAAA"]
    for token in tokens:
        get(client, token)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for token in tokens:
        assert token not in logged
        assert token.split(".")[2] not in logged


def test_a_discovery_fetch_in_progress_does_not_make_others_answer_503(
    client, provider, monkeypatch
):
    """While one process fetches the discovery document (up to seconds), another one reading
    the shared cache must not find a "recently failed" marker: it fetches too, and succeeds.
    Only a failed fetch leaves the marker."""
    original = customer_auth._fetch_json
    seen_meanwhile: list[str] = []

    def slow_fetch(url: str) -> dict:
        if url.endswith("/openid-configuration") and not seen_meanwhile:
            seen_meanwhile.append("asking")  # another process asks during this fetch
            seen_meanwhile.append(customer_auth.oidc_jwks_uri(provider.issuer))
        return original(url)

    monkeypatch.setattr(customer_auth, "_fetch_json", slow_fetch)
    assert get(client, provider.token()).status_code == 200
    assert seen_meanwhile == ["asking", f"{provider.issuer}/jwks"]


def test_a_failed_discovery_is_remembered_for_a_few_seconds(client, provider, settings):
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    oidc_keys_forget()
    with pytest.raises(customer_auth.ProviderUnavailable):
        customer_auth.oidc_jwks_uri(settings.OIDC_ISSUER)
    assert cache.get(customer_auth._discovery_key(settings.OIDC_ISSUER)) == ""
