"""Customers' bearer tokens: `Authorization: Bearer <JWT>` from the OIDC provider (Authentik),
checked against its published keys, and the Customer and Beacons the token may touch.

A token is accepted only when it is short enough to be one (MAX_TOKEN_LENGTH), signed with
RS256 or ES256 by a key of the provider's JWKS, issued by OIDC_ISSUER for our audience
(OIDC_API_AUDIENCE, else OIDC_RP_CLIENT_ID), and inside its `nbf`..`exp` (LEEWAY_SECONDS).

The provider is asked for as little as possible, and never because of what a caller sends:
the discovery document is kept in Django's cache for DISCOVERY_TTL_SECONDS, the keys in this
process for KEYS_TTL_SECONDS, and a token naming an unknown `kid` makes this process fetch the
keys again at most once per UNKNOWN_KID_REFETCH_SECONDS (a key rotation is picked up within a
minute; a flood of made-up kids costs one fetch a minute). Each fetch times out after
FETCH_TIMEOUT_SECONDS; a provider that cannot be reached answers 503, not 401.

Every refusal is 401 with `WWW-Authenticate: Bearer error="invalid_token"` and the same
message, whatever was wrong: the answer helps no one guess. Tokens are never logged.
Without OIDC_ISSUER the self-service API answers 503 (it is documented, but switched off).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from billing.models import Customer
from billing.selfservice import SignInRefused, customer_sign_in
from integrations.http import http_client
from provisioning.models import Beacon
from wopr.api_common import ServiceUnavailable, bearer_token

logger = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "ES256"]
MAX_TOKEN_LENGTH = 8192
LEEWAY_SECONDS = 30
FETCH_TIMEOUT_SECONDS = 3.0
DISCOVERY_TTL_SECONDS = 3600
KEYS_TTL_SECONDS = 3600
UNKNOWN_KID_REFETCH_SECONDS = 60
# After a failed fetch, wait this long before the next try (a down provider costs no timeouts
# per request).
FAILED_FETCH_RETRY_SECONDS = 5
MAX_DOCUMENT_BYTES = 256 * 1024
# The clock of the key refetch rules (tests move it).
clock = time.monotonic

REFUSAL = "The bearer token is not valid."
# 403 for a sign-in whose e-mail is another account's (says no more than that it is refused).
SIGN_IN_REFUSED = "This sign-in cannot be linked to a customer account; please contact support."


class InvalidToken(exceptions.AuthenticationFailed):
    """401 for any token we do not accept (one message whatever the reason)."""

    default_code = "invalid_token"
    default_detail = REFUSAL


class ProviderUnavailable(ServiceUnavailable):
    """503: the sign-in provider's keys cannot be had just now."""

    default_detail = "The sign-in provider cannot be reached; try again shortly."


class SelfServiceDisabled(ServiceUnavailable):
    """503: no OIDC_ISSUER is configured, so no customer can sign in."""

    default_detail = "Customer self-service is not enabled on this server."


# --- the provider's keys ----------------------------------------------------------------------


def _fetch_json(url: str) -> dict[str, Any]:
    """GET a small JSON document from the provider (short timeout, no redirects)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ProviderUnavailable()
    origin = f"{parts.scheme}://{parts.netloc}"
    try:
        with http_client(base_url=origin, timeout=httpx.Timeout(FETCH_TIMEOUT_SECONDS)) as client:
            response = client.get(url, headers={"Accept": "application/json"})
            if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"HTTP {response.status_code}, {len(response.content)} bytes")
            body = response.json()
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("oidc: fetching %s failed: %s", url, type(error).__name__)
        raise ProviderUnavailable() from error
    if not isinstance(body, dict):
        raise ProviderUnavailable()
    return body


def oidc_jwks_uri(issuer: str) -> str:
    """The provider's `jwks_uri`, from its discovery document (cached DISCOVERY_TTL_SECONDS)."""
    key = _discovery_key(issuer)
    jwks_uri = cache.get(key)
    if jwks_uri == "":  # a fetch failed moments ago: do not wait on the provider again yet
        raise ProviderUnavailable()
    if jwks_uri is None:
        try:
            jwks_uri = _discover_jwks_uri(issuer)
        except ProviderUnavailable:
            # Marked only once it failed: while a fetch runs, other processes fetch too rather
            # than read a marker and answer 503.
            cache.set(key, "", FAILED_FETCH_RETRY_SECONDS)
            raise
        cache.set(key, jwks_uri, DISCOVERY_TTL_SECONDS)
    return jwks_uri


def _discover_jwks_uri(issuer: str) -> str:
    """The `jwks_uri` of `issuer`'s discovery document, or ProviderUnavailable."""
    document = _fetch_json(f"{issuer}/.well-known/openid-configuration")
    jwks_uri = document.get("jwks_uri")
    if str(document.get("issuer", "")).rstrip("/") != issuer or not isinstance(jwks_uri, str):
        logger.warning("oidc: the discovery document of %s is not for it", issuer)
        raise ProviderUnavailable()
    return jwks_uri


def _discovery_key(issuer: str) -> str:
    return "oidc-discovery:" + hashlib.sha256(issuer.encode()).hexdigest()


@dataclass
class _KeySet:
    """One JWKS as this process last fetched it, and when it last tried."""

    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    tried_at: float = float("-inf")


_keysets: dict[str, _KeySet] = {}
_keys_lock = threading.Lock()


def _refetch_due(keyset: _KeySet, kid: str, now: float) -> bool:
    if now - keyset.tried_at < FAILED_FETCH_RETRY_SECONDS:
        return False
    if not keyset.keys or now - keyset.fetched_at >= KEYS_TTL_SECONDS:
        return True
    return kid not in keyset.keys and now - keyset.tried_at >= UNKNOWN_KID_REFETCH_SECONDS


def _keyset_fetch(keyset: _KeySet, jwks_uri: str, now: float) -> None:
    keyset.tried_at = now
    try:
        fetched = jwt.PyJWKSet.from_dict(_fetch_json(jwks_uri))
    except jwt.PyJWKSetError as error:
        logger.warning("oidc: the key set at %s has no usable key", jwks_uri)
        raise ProviderUnavailable() from error
    # Signing keys only: a key published for encryption never verifies a token.
    usable = [key for key in fetched.keys if key.key_id and key.public_key_use in (None, "sig")]
    keyset.keys = {key.key_id: key for key in usable}
    keyset.fetched_at = now


def oidc_signing_key(*, issuer: str, kid: str) -> jwt.PyJWK:
    """The provider's key `kid`; InvalidToken when it has none (after at most the bounded
    refetch the module docstring describes), ProviderUnavailable when it cannot be asked."""
    jwks_uri = oidc_jwks_uri(issuer)
    with _keys_lock:  # one thread fetches; the others then find the fresh keys
        keyset = _keysets.setdefault(jwks_uri, _KeySet())
        now = clock()
        if _refetch_due(keyset, kid, now):
            try:
                _keyset_fetch(keyset, jwks_uri, now)
            except ProviderUnavailable:
                if not keyset.keys:
                    raise
        key = keyset.keys.get(kid)
    if key is None:
        raise InvalidToken()
    return key


def oidc_keys_forget() -> None:
    """Forget every fetched key set and discovery document (tests; a changed issuer)."""
    with _keys_lock:
        _keysets.clear()
    cache.delete(_discovery_key(settings.OIDC_ISSUER))


# --- the token -----------------------------------------------------------------------------


def oidc_audience() -> str:
    return settings.OIDC_API_AUDIENCE or settings.OIDC_RP_CLIENT_ID


def token_claims(token: str) -> dict[str, Any]:
    """The verified claims of a customer's access token, or InvalidToken."""
    issuer = settings.OIDC_ISSUER
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise InvalidToken() from error
    kid, alg = header.get("kid"), header.get("alg")
    if alg not in ALGORITHMS or not isinstance(kid, str) or not kid or len(kid) > 256:
        raise InvalidToken()
    key = oidc_signing_key(issuer=issuer, kid=kid)
    try:
        return jwt.decode(
            token,
            key=key,
            algorithms=ALGORITHMS,
            audience=oidc_audience(),
            # Authentik's `iss` ends in a slash; OIDC_ISSUER is kept without one.
            issuer=[issuer, f"{issuer}/"],
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken() from error


# --- DRF ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerPrincipal:
    """request.user of a self-service request: the signed-in Customer."""

    customer: Customer
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> int:
        return self.customer.pk


class CustomerTokenAuthentication(BaseAuthentication):
    """DRF authentication by a customer's OIDC access token (see the module docstring).

    request.user is a CustomerPrincipal, request.auth the token's verified claims. No token:
    None (a view requiring sign-in answers 401 with the Bearer challenge)."""

    def authenticate(self, request: Request) -> tuple[CustomerPrincipal, dict[str, Any]] | None:
        if not settings.OIDC_ISSUER:
            raise SelfServiceDisabled()
        token = bearer_token(request)
        if not token:
            return None
        request._bearer_invalid = True  # the challenge says why, if this raises
        claims = token_claims(token)
        try:
            customer = customer_sign_in(
                subject=str(claims.get("sub", "")),
                email=claims.get("email") if isinstance(claims.get("email"), str) else "",
                email_verified=claims.get("email_verified") is True,
            )
        except SignInRefused:
            raise exceptions.PermissionDenied(SIGN_IN_REFUSED) from None
        if customer is None:
            raise exceptions.PermissionDenied("This sign-in has no verified e-mail address.")
        request._bearer_invalid = False
        return CustomerPrincipal(customer), claims

    def authenticate_header(self, request: Request) -> str:
        if getattr(request, "_bearer_invalid", False):
            return 'Bearer realm="wopr", error="invalid_token"'
        return 'Bearer realm="wopr"'


def request_customer(request: Request) -> Customer:
    """The signed-in Customer of a request authenticated by CustomerTokenAuthentication."""
    user = request.user
    if not isinstance(user, CustomerPrincipal):
        raise exceptions.NotAuthenticated()
    return user.customer


def customer_beacons(customer: Customer) -> Any:
    """The Beacons `customer` may see and touch (theirs by owner or by order)."""
    return Beacon.objects.filter(Q(owner=customer) | Q(order__customer=customer))


def customer_beacon(request: Request, beacon_id: uuid.UUID | str) -> Beacon:
    """The signed-in customer's Beacon `beacon_id` with its order; 404 (never 403) when it is
    not theirs, so nobody learns that another customer's Beacon exists."""
    customer = request_customer(request)
    try:
        beacon_id = uuid.UUID(str(beacon_id))
    except ValueError:
        raise exceptions.NotFound() from None
    beacon = (
        customer_beacons(customer)
        .select_related("order", "bundle", "tier", "order__tier_change_to")
        .filter(pk=beacon_id)
        .first()
    )
    if beacon is None:
        raise exceptions.NotFound()
    return beacon
