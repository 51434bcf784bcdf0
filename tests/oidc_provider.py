"""A real OpenID Connect provider on loopback, standing in for Authentik's OIDC endpoints.

The provider is panva's `oidc-provider` (npm, pinned in tests/oidc/package-lock.json), run by
`node tests/oidc/server.js`. Routes follow Authentik's layout: the issuer is
`http://127.0.0.1:<port>/application/o/wopr/` (with Authentik's trailing slash), discovery is
under the issuer, authorize/token/userinfo under `/application/o/`, the JWKS at
`<issuer>jwks/`. Note: settings.OIDC_ISSUER is stored without the trailing slash (settings.py
strips it) while tokens carry Authentik's `iss` with it: compare `iss.rstrip("/")`.
Without node or `tests/oidc/node_modules` (`npm ci --prefix tests/oidc`, which `make test` runs)
the tests using it skip, and fail under CI=true.

The `oidc_provider` fixture is registered in tests/conftest.py (started lazily, once)::

    from tests.oidc_provider import OidcAccount, authorization_code, tokens

    def test_x(oidc_provider):
        alice = OidcAccount(sub="cus-1", email="a@example.com", groups=("wopr-nextcloud",))
        got = tokens(oidc_provider, account=alice, client=oidc_provider.customer)
        got.access_token   # a JWT: RS256, iss = oidc_provider.issuer,
                           # aud = oidc_provider.audience (set settings.OIDC_API_AUDIENCE to it),
                           # sub = alice.sub, and (as Authentik's) email, email_verified,
                           # name, preferred_username, groups, client_id
        got.id_token       # a JWT: aud = the client id; email, name, groups claims included,
                           # and `amr` (alice.amr, default ["pwd"]: a password only)
        got.claims         # the id_token's claims, decoded (signature checked against the JWKS)

API:
- `oidc_provider` (session fixture) -> `OidcProvider`: `.issuer`, `.base_url`, `.audience`,
  `.jwks_uri`, `.discovery` (dict), `.staff` and `.customer` (`OidcClient`), and
  `.put_account(OidcAccount)` / `.remove_account(sub)`: the accounts file is re-read on every
  lookup, so a change applies to the next sign-in. Use a sub of your own per test (the provider
  lives for the whole session).
- `OidcClient(client_id, client_secret, redirect_uri, api)`: `staff` is confidential
  (client_secret_post, redirect `http://testserver/oidc/callback/`, opaque access
  token good for userinfo); `customer` is public (PKCE S256, redirect
  `http://127.0.0.1/callback`) and gets JWT access tokens for the API audience (`api=True`).
- `authorization_code(provider, *, account, client, scope=..., state=None, nonce=None)` ->
  `AuthorizationCode(code, state, nonce, code_verifier, redirect_uri)`: the code flow without a
  browser (login form and consent page answered with httpx).
- `follow_authorization(provider, authorize_url, *, login, browser=None)` -> the URL the
  provider finally redirects the browser to (the client's redirect URI with `code` and
  `state`, or an error): for a flow started by the application under test (e.g. Django's
  /oidc/authenticate/); pass an httpx.Client as `browser` to keep the provider's session.
- `tokens(provider, *, account, client, scope=...)` -> `OidcTokens(access_token, id_token,
  claims, raw)`: code flow plus the token request.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import jwt
import pytest

from tests.loopback import process_stop, wait_until
from tests.vendor_spec import unavailable

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
ISSUER_PATH = "/application/o/wopr/"
API_AUDIENCE = "https://wopr.test/api/v1/"
DEFAULT_SCOPE = "openid email profile"  # Authentik's profile scope carries `groups`
STAFF_REDIRECT_URI = "http://testserver/oidc/callback/"
CUSTOMER_REDIRECT_URI = "http://127.0.0.1/callback"
_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
_PROMPT = re.compile(r'name="prompt" value="([a-z]+)"')


@dataclass(frozen=True)
class OidcAccount:
    """One user at the provider; `sub` is also what its login form is answered with."""

    sub: str
    email: str
    name: str = ""
    groups: tuple[str, ...] = ()
    email_verified: bool = True
    # How the sign-in authenticated (RFC 8176), in the ID token's `amr`: Authentik's values,
    # "pwd" for a password, plus "mfa" when an MFA stage ran. Empty: no `amr` claim.
    amr: tuple[str, ...] = ("pwd",)


@dataclass(frozen=True)
class OidcClient:
    """A client registered at the provider (client_secret None: a public client, PKCE)."""

    client_id: str
    client_secret: str | None
    redirect_uri: str
    api: bool = False


@dataclass(frozen=True)
class AuthorizationCode:
    code: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str


@dataclass(frozen=True)
class OidcTokens:
    access_token: str
    id_token: str
    claims: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass
class OidcProvider:
    """The running provider: where it is, its clients, and its accounts file."""

    base_url: str
    issuer: str
    audience: str
    staff: OidcClient
    customer: OidcClient
    accounts_file: Path
    discovery: dict[str, Any] = field(default_factory=dict)

    @property
    def jwks_uri(self) -> str:
        return self.discovery["jwks_uri"]

    def put_account(self, account: OidcAccount) -> None:
        """Create or replace the account (applies to the next sign-in)."""
        accounts = json.loads(self.accounts_file.read_text())
        accounts[account.sub] = {
            "email": account.email,
            "name": account.name or account.email,
            "groups": list(account.groups),
            "email_verified": account.email_verified,
            "amr": list(account.amr),
        }
        self._write(accounts)

    def remove_account(self, sub: str) -> None:
        accounts = json.loads(self.accounts_file.read_text())
        accounts.pop(sub, None)
        self._write(accounts)

    def _write(self, accounts: dict[str, Any]) -> None:
        # Atomic: node re-reads the file on every lookup.
        scratch = self.accounts_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(accounts))
        scratch.replace(self.accounts_file)


def _require_node() -> str:
    """node's path; skip without node or node_modules, except under CI=true (then fail)."""
    node = shutil.which("node")
    installed = (OIDC_DIR / "node_modules" / "oidc-provider").is_dir()
    if node and installed:
        return node
    unavailable(
        "needs node and tests/oidc/node_modules (`npm ci --prefix tests/oidc`, `make test`)"
    )


def _clients() -> tuple[OidcClient, OidcClient]:
    staff = OidcClient("wopr-staff", secrets.token_urlsafe(32), STAFF_REDIRECT_URI)
    customer = OidcClient("wopr-customer", None, CUSTOMER_REDIRECT_URI, api=True)
    return staff, customer


def _client_metadata(client: OidcClient) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "client_id": client.client_id,
        "redirect_uris": [client.redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    if client.client_secret is None:
        metadata["token_endpoint_auth_method"] = "none"
    else:
        metadata["client_secret"] = client.client_secret
        metadata["token_endpoint_auth_method"] = "client_secret_post"
    return metadata


def _write_config(directory: Path, staff: OidcClient, customer: OidcClient) -> Path:
    accounts = directory / "accounts.json"
    accounts.write_text("{}")
    config = directory / "config.json"
    body = {
        "issuer_path": ISSUER_PATH,
        "audience": API_AUDIENCE,
        "accounts_file": str(accounts),
        "clients": [_client_metadata(staff), _client_metadata(customer)],
        "api_clients": [customer.client_id],
    }
    config.write_text(json.dumps(body))
    return config


def _started(stdout: Path, process: subprocess.Popen) -> dict[str, str] | None:
    if process.poll() is not None:
        raise AssertionError(f"the OIDC provider exited with {process.returncode}")
    first = stdout.read_text().partition("\n")
    return json.loads(first[0]) if first[1] else None


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """The provider, started once per session on a free loopback port and stopped at the end."""
    node = _require_node()
    staff, customer = _clients()
    with tempfile.TemporaryDirectory(prefix="wopr-test-oidc-") as scratch:
        directory = Path(scratch)
        config = _write_config(directory, staff, customer)
        stdout = directory / "stdout"
        process = subprocess.Popen(
            [node, str(OIDC_DIR / "server.js"), str(config)],
            cwd=OIDC_DIR,
            stdout=stdout.open("w"),
            stderr=None,  # inherited: its warnings and server_error traces go with the test's
        )
        try:
            where = wait_until(lambda: _started(stdout, process), 30, "the OIDC provider")
            provider = OidcProvider(
                base_url=where["base_url"],
                issuer=where["issuer"],
                audience=API_AUDIENCE,
                staff=staff,
                customer=customer,
                accounts_file=directory / "accounts.json",
            )
            provider.discovery = _discovery(provider.issuer)
            yield provider
        finally:
            process_stop(process, timeout=10)


def _discovery(issuer: str) -> dict[str, Any]:
    url = f"{issuer}.well-known/openid-configuration"
    answer = wait_until(lambda: _get_ok(url), 30, url)
    return answer.json()


def _get_ok(url: str) -> httpx.Response | None:
    try:
        answer = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
    return answer if answer.status_code == 200 else None


def follow_authorization(
    provider: OidcProvider,
    authorize_url: str,
    *,
    login: str,
    browser: httpx.Client | None = None,
) -> str:
    """Play the browser from the authorization URL: sign in as `login` (the account's sub) on
    the provider's login form, confirm consent, and return the URL the provider finally
    redirects to (the client's redirect URI with code and state, or with an error). Pass your
    own `browser` (an httpx.Client) to keep the provider's session cookies between flows, e.g.
    for a `prompt=none` re-check."""
    if browser is None:
        with httpx.Client(timeout=10) as fresh:
            return follow_authorization(provider, authorize_url, login=login, browser=fresh)
    url = authorize_url
    for _ in range(12):
        answer = browser.get(url, follow_redirects=False)
        if not answer.is_redirect:
            answer = _submit_interaction(browser, answer, login)
        url = urljoin(url, answer.headers["location"])
        if not url.startswith(provider.base_url):
            return url
    raise AssertionError(f"the provider kept redirecting; last {url}")


def _submit_interaction(browser: httpx.Client, page: httpx.Response, login: str) -> httpx.Response:
    """Answer a login or consent page; the answer must be the provider's redirect onwards."""
    action, prompt = _FORM_ACTION.search(page.text), _PROMPT.search(page.text)
    if page.status_code != 200 or action is None or prompt is None:
        raise AssertionError(f"the provider answered {page.status_code}: {page.text[-1500:]}")
    form = {"prompt": prompt.group(1)}
    if form["prompt"] == "login":
        form |= {"login": login, "password": "any"}
    answer = browser.post(html.unescape(action.group(1)), data=form, follow_redirects=False)
    if not answer.is_redirect:
        raise AssertionError(f"the provider answered {answer.status_code}: {answer.text[:800]}")
    return answer


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorization_code(
    provider: OidcProvider,
    *,
    account: OidcAccount | str,
    client: OidcClient,
    scope: str = DEFAULT_SCOPE,
    state: str | None = None,
    nonce: str | None = None,
) -> AuthorizationCode:
    """The authorization-code flow without a browser for `account` (an OidcAccount is stored
    first; a str is the sub of one already stored); returns the code and what went with it."""
    sub = account if isinstance(account, str) else account.sub
    if isinstance(account, OidcAccount):
        provider.put_account(account)
    state, nonce = state or secrets.token_urlsafe(16), nonce or secrets.token_urlsafe(16)
    verifier, challenge = _pkce()
    query = {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": client.redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    url = f"{provider.discovery['authorization_endpoint']}?{urlencode(query)}"
    landed = follow_authorization(provider, url, login=sub)
    params = {key: values[0] for key, values in parse_qs(urlsplit(landed).query).items()}
    if "code" not in params or params.get("state") != state:
        raise AssertionError(f"no code for {client.client_id}: {landed}")
    return AuthorizationCode(params["code"], state, nonce, verifier, client.redirect_uri)


def tokens(
    provider: OidcProvider,
    *,
    account: OidcAccount | str,
    client: OidcClient,
    scope: str = DEFAULT_SCOPE,
) -> OidcTokens:
    """Sign `account` in at `client` and exchange the code: the client's tokens (for an `api`
    client the access token is a JWT for `provider.audience`)."""
    grant = authorization_code(provider, account=account, client=client, scope=scope)
    form = {
        "grant_type": "authorization_code",
        "code": grant.code,
        "redirect_uri": grant.redirect_uri,
        "client_id": client.client_id,
        "code_verifier": grant.code_verifier,
    }
    if client.client_secret is not None:
        form["client_secret"] = client.client_secret
    answer = httpx.post(provider.discovery["token_endpoint"], data=form, timeout=10)
    if answer.status_code != 200:
        raise AssertionError(f"token request refused: {answer.status_code} {answer.text}")
    body = answer.json()
    claims = verified_claims(provider, body["id_token"], audience=client.client_id)
    if claims.get("nonce") != grant.nonce:
        raise AssertionError("the ID token's nonce is not the one sent")
    return OidcTokens(body["access_token"], body["id_token"], claims, body)


def verified_claims(provider: OidcProvider, token: str, *, audience: str) -> dict[str, Any]:
    """A JWT from the provider, its signature checked against the provider's JWKS."""
    key = jwt.PyJWKClient(provider.jwks_uri).get_signing_key_from_jwt(token)
    return jwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=provider.issuer
    )
