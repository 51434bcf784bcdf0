"""Staff single sign-on against the real OIDC provider on loopback (tests/oidc_provider.py).

`sso` switches single sign-on on as a deployment would (OIDC_ISSUER set: the backend, the
session refresh and the /oidc/ routes), with the endpoints settings.py derives from the issuer
in a fresh process; `sso_sign_in` plays the browser: Django's /oidc/authenticate/, the
provider's login and consent pages, then Django's callback.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.test import Client
from django.urls import clear_url_caches

from tests.oidc_provider import OidcAccount, OidcProvider, follow_authorization

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = (
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
)
CALLBACK = "http://testserver/oidc/callback/"


def settings_for_issuer(issuer: str, **overrides: str) -> dict[str, object]:
    """What settings.py makes of OIDC_ISSUER (and `overrides`, more environment), read from a
    fresh process (not this one's)."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {(*ENDPOINTS, 'OIDC_ISSUER')!r}}} "
        "| {'backends': s.AUTHENTICATION_BACKENDS, 'middleware': s.MIDDLEWARE}))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "wopr.settings", "OIDC_ISSUER": issuer}
    for name in ENDPOINTS:
        env.pop(name, None)
    env.update(overrides)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def derived(oidc_provider: OidcProvider) -> dict[str, object]:
    return settings_for_issuer(oidc_provider.issuer)


def _urls_reload() -> None:
    import wopr.urls

    clear_url_caches()
    importlib.reload(wopr.urls)
    clear_url_caches()


@pytest.fixture
def sso(settings, oidc_provider: OidcProvider, derived) -> Iterator[OidcProvider]:
    """Single sign-on on, as settings.py sets it up with OIDC_ISSUER (the staff client's id and
    secret from the provider); the URL map is rebuilt with /oidc/ and rebuilt again after."""
    original = settings.OIDC_ISSUER
    settings.OIDC_ISSUER = derived["OIDC_ISSUER"]
    settings.OIDC_RP_CLIENT_ID = oidc_provider.staff.client_id
    settings.OIDC_RP_CLIENT_SECRET = oidc_provider.staff.client_secret
    for name in ENDPOINTS:
        setattr(settings, name, derived[name])
    settings.AUTHENTICATION_BACKENDS = derived["backends"]
    settings.MIDDLEWARE = derived["middleware"]
    _urls_reload()
    yield oidc_provider
    settings.OIDC_ISSUER = original
    _urls_reload()


@pytest.fixture
def sso_off(settings) -> Iterator[None]:
    """No OIDC_ISSUER (whatever this machine's environment says), URL map rebuilt to match."""
    original = settings.OIDC_ISSUER
    settings.OIDC_ISSUER = ""
    _urls_reload()
    yield
    settings.OIDC_ISSUER = original
    _urls_reload()


def sso_start(client: Client, next_url: str = "/admin/") -> str:
    """Django's side of the start: the provider's authorization URL it redirects to."""
    start = client.get("/oidc/authenticate/", {"next": next_url})
    assert start.status_code == 302, start.content[:500]
    return start["Location"]


def sso_callback(client: Client, landed: str):
    """The browser arriving back at Django's callback with what the provider sent."""
    assert landed.startswith(CALLBACK), landed
    parts = urlsplit(landed)
    return client.get(f"{parts.path}?{parts.query}")


def sso_sign_in(
    client: Client,
    provider: OidcProvider,
    account: OidcAccount,
    *,
    browser: httpx.Client | None = None,
):
    """The whole sign-in as a browser does it; returns Django's answer to the callback."""
    provider.put_account(account)
    authorize = sso_start(client)
    landed = follow_authorization(provider, authorize, login=account.sub, browser=browser)
    return sso_callback(client, landed)
