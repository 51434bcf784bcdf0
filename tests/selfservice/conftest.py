"""Fixtures of the self-service tests: a sign-in provider's discovery document and keys served
from a loopback HTTP server of the test's own, tokens minted with those keys, the Stripe mock
(the storefront API tests' fixtures) and a customer with Beacons."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
import stripe
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.cache import cache

from billing.customer_auth import oidc_keys_forget

# The storefront API tests' Stripe mock, recorder and fresh throttle, shared without moving.
from tests.api.conftest import (  # noqa: F401
    _fresh_throttle,
    stripe_calls,
    stripe_mock,
    stripe_mock_url,
)

CLIENT_ID = "wopr-selfservice"


@dataclass
class Provider:
    """A loopback sign-in provider: its issuer URL, signing keys and what it was asked."""

    issuer: str = ""
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    published: list[str] = field(default_factory=list)  # kids in the JWKS
    requests: list[str] = field(default_factory=list)
    encryption_kids: set[str] = field(default_factory=set)  # published with use "enc"

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid in self.published:
            public = self.keys[kid].public_key()
            algorithm = (
                jwt.algorithms.RSAAlgorithm
                if isinstance(public, rsa.RSAPublicKey)
                else (jwt.algorithms.ECAlgorithm)
            )
            entry = json.loads(algorithm.to_jwk(public))
            entry.update(kid=kid, use="enc" if kid in self.encryption_kids else "sig")
            entries.append(entry)
        return {"keys": entries}

    def add_key(self, kid: str, *, kind: str = "rsa", publish: bool = True) -> None:
        self.keys[kid] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        if publish:
            self.published.append(kid)

    def token(
        self, *, kid: str = "k1", alg: str | None = None, headers: dict | None = None, **claims: Any
    ) -> str:
        """A signed access token; defaults make it valid, keyword arguments change claims
        (None drops one)."""
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "subject-ada",
            "email": "ada@example.com",
            "email_verified": True,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            **claims,
        }
        body = {name: value for name, value in body.items() if value is not None}
        key = self.keys[kid]
        alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, **(headers or {})})


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            provider.requests.append(self.path)
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks"}
            elif self.path == "/jwks":
                body = provider.jwks()
            else:
                self.send_error(404)
                return
            content = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args: Any) -> None:
            return

    return Handler


@pytest.fixture(scope="session")
def _provider_server() -> Iterator[Provider]:
    provider = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    provider.add_key("k1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield provider
    server.shutdown()
    server.server_close()


@pytest.fixture
def provider(_provider_server: Provider, settings) -> Iterator[Provider]:
    """The loopback provider as OIDC_ISSUER, with key `k1` only, nothing fetched yet."""
    provider = _provider_server
    provider.published[:] = ["k1"]
    provider.keys = {"k1": provider.keys["k1"]}
    provider.requests.clear()
    provider.encryption_kids.clear()
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_API_AUDIENCE = ""
    cache.clear()
    oidc_keys_forget()
    yield provider
    oidc_keys_forget()


@pytest.fixture
def bearer(provider: Provider) -> Callable[..., dict[str, str]]:
    """Client headers carrying a valid token (keyword arguments change its claims)."""

    def _headers(**claims: Any) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {provider.token(**claims)}"}

    return _headers


@pytest.fixture
def stripe_subscriptions(stripe_calls, monkeypatch) -> dict[str, dict[str, Any]]:  # noqa: F811
    """Stripe's subscriptions as a dict by id. Prism checks each update against Stripe's spec
    and answers with its one example subscription; this turns the answer into the updated
    subscription, as Stripe would (its id, status and period, the fields the update set)."""
    subscriptions: dict[str, dict[str, Any]] = {}
    recorded = stripe.RequestsClient.request

    def answering(self, method, url, headers, post_data=None):
        content, status, reply_headers = recorded(self, method, url, headers, post_data)
        path = urlsplit(url).path
        sub_id = path.removeprefix("/v1/subscriptions/")
        if method.upper() == "POST" and sub_id in subscriptions and status == 200:
            raw = post_data.decode() if isinstance(post_data, bytes) else post_data or ""
            form = dict(parse_qsl(raw))
            state = subscriptions[sub_id]
            if "cancel_at_period_end" in form:
                state["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
            content = json.dumps({**json.loads(content), **state}).encode()
        return content, status, reply_headers

    monkeypatch.setattr(stripe.RequestsClient, "request", answering)
    return subscriptions
