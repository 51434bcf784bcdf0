"""Safe to face the internet (issue 9, items 4 and 5): admin sign-in lockouts, TOTP second
factors, the admin allow-list in the Caddyfile, HTTPS settings behind Caddy and the API docs
from packaged assets; in-process first, then against gunicorn as the container runs it."""

from __future__ import annotations

import http.server
import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.loopback import answers, database_url, free_port, wait_until
from tests.service import running_web
from tests.vendor_spec import unavailable

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

# Well-formed stand-ins for the secrets .env.example leaves empty ("required").
DUMMIES = {
    "SECRET_KEY": "dummy-Zq8Vb3Lr9xTw2Yp5Nd7Hs4Gf6Jm1Qc0Ea8Ub3Io7Kl2Xv5Rt9Wm4Ny6Bp1",
    "STRIPE_TEST_SECRET_KEY": "sk_test_A1b2C3d4E5f6G7h8I9j0K1l2M3n4",
    "STRIPE_TEST_WEBHOOK_SECRET": "whsec_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6",
    "HETZNER_API_TOKEN": "H1" * 32,
    "CLOUDFLARE_API_TOKEN": "Cf1" * 13 + "C",
    "CLOUDFLARE_ZONE_ID": "0123456789abcdef0123456789abcdef",
    "AUTHENTIK_URL": "https://auth.example.com",
    "AUTHENTIK_API_TOKEN": "A1" * 30,
    "SMTP_HOST": "smtp.example.com",
    # A DEBUG=false start needs a Beacon installer (installers.checks).
    "WOPR_INSTALLER_URL": "https://releases.example.com/wopr-installer-1.0.0.tar.gz",
    "WOPR_INSTALLER_SHA256": "0123456789abcdef" * 4,
}


def production_values() -> dict[str, str]:
    """The KEY=value lines .env.example ships (its production values), placeholders filled."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value or DUMMIES.get(key, "")
    return values


def make_staff(username: str = "ada-admin") -> object:
    return get_user_model().objects.create_user(
        username, password=PASSWORD, is_staff=True, is_superuser=True
    )


def totp_now(device: TOTPDevice) -> str:
    code = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{code.token():0{device.digits}d}"


def admin_login(client: Client, username: str = "ada-admin", **fields: str):
    data = {"username": username, "password": PASSWORD, "next": "/admin/", **fields}
    return client.post("/admin/login/?next=/admin/", data)


# --- item 5: HTTPS settings ---------------------------------------------------------------------


def test_check_deploy_with_the_production_values_of_env_example_is_clean(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **production_values()}

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output, output
    assert "System check identified no issues" in output


@pytest.mark.django_db
def test_only_a_trusted_proxy_can_say_a_request_came_over_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.TRUSTED_PROXIES = ["10.0.0.2"]

    outsider = Client(REMOTE_ADDR="198.51.100.9").get(
        "/admin/login/", HTTP_X_FORWARDED_PROTO="https"
    )
    proxied = Client(REMOTE_ADDR="10.0.0.2").get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    health = Client(REMOTE_ADDR="198.51.100.9").get("/api/health")

    assert outsider.status_code == 301
    assert outsider["Location"] == "https://testserver/admin/login/"
    assert proxied.status_code == 200
    assert health.status_code != 301  # the container's HEALTHCHECK speaks plain http


@pytest.mark.django_db
def test_the_api_docs_page_loads_only_packaged_same_origin_scripts(client):
    page = client.get("/api/docs/")

    html = page.content.decode()
    scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)
    assert scripts == ["/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"]
    assert "<script>" not in html  # no inline script: the policy allows none
    assert not re.search(r"(href|src)=\"(https?:)?//", html)  # no CDN, no font service
    assert finders.find(scripts[0].removeprefix("/static/"))  # shipped in a package
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "worker-src 'self' blob:" in policy  # Redoc's search worker


# --- item 4: lockout and second factor, in-process ------------------------------------------------


@pytest.mark.django_db
def test_with_otp_required_a_password_alone_does_not_reach_the_admin(settings):
    settings.ADMIN_REQUIRE_OTP = True
    device = TOTPDevice.objects.create(user=make_staff(), name="phone", confirmed=True)
    client = Client()

    refused = admin_login(client)
    assert refused.status_code == 200  # the sign-in form again
    assert client.get("/admin/").status_code == 302  # to the sign-in page

    accepted = admin_login(client, otp_token=totp_now(device))
    assert (accepted.status_code, accepted["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_with_otp_required_a_wrong_code_does_not_reach_the_admin(settings):
    settings.ADMIN_REQUIRE_OTP = True
    device = TOTPDevice.objects.create(user=make_staff(), name="phone", confirmed=True)
    wrong = f"{(int(totp_now(device)) + 1) % 10**6:06d}"
    client = Client()

    assert admin_login(client, otp_token=wrong).status_code == 200
    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_the_lockout_answer_is_the_same_for_a_real_and_an_unknown_username(settings):
    settings.AXES_FAILURE_LIMIT = 3
    make_staff()
    locked = []
    for username, address in (("ada-admin", "198.51.100.1"), ("nobody-here", "198.51.100.2")):
        client = Client(REMOTE_ADDR=address)
        for _ in range(3):
            admin_login(client, username, password="wrong")
        locked.append(admin_login(client, username))  # the right password is refused too

    assert [response.status_code for response in locked] == [429, 429]
    assert locked[0].content == locked[1].content
    assert b"ada-admin" not in locked[0].content
    assert b"Sign-in paused" in locked[0].content


@pytest.mark.django_db
def test_totp_enroll_creates_a_confirmed_device_and_prints_its_otpauth_url():
    staff = make_staff()
    out = io.StringIO()

    call_command("totp_enroll", "ada-admin", stdout=out)

    device = TOTPDevice.objects.get(user=staff)
    assert device.confirmed
    assert device.config_url in out.getvalue()
    assert "issuer=WOPR" in device.config_url
    assert "██" in out.getvalue() or "█" in out.getvalue()  # the QR code for a phone
    with pytest.raises(CommandError, match="--replace"):
        call_command("totp_enroll", "ada-admin", stdout=io.StringIO())
    call_command("totp_enroll", "ada-admin", "--replace", "--no-qr", stdout=io.StringIO())
    assert TOTPDevice.objects.get(user=staff).key != device.key


@pytest.mark.django_db
def test_totp_enroll_refuses_unknown_and_non_staff_users():
    get_user_model().objects.create_user("customer", password=PASSWORD)

    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("totp_enroll", "ghost", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not an active staff user"):
        call_command("totp_enroll", "customer", stdout=io.StringIO())
    assert not TOTPDevice.objects.exists()


# --- item 4: the admin allow-list in the Caddyfile ----------------------------------------------


class _Upstream(http.server.BaseHTTPRequestHandler):
    """Stands in for gunicorn: 200 for every path, remembering the paths that reached it."""

    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


# The admin and the Prometheus endpoint (issue 14) are published to the same networks only.
RESTRICTED_PATHS = ("/admin/", "/admin", "/metrics", "/metrics/")


def _caddy_answers(tmp_path: Path, upstream_port: int, **extra: str) -> dict[str, int]:
    site = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CADDY_ADMIN": f"127.0.0.1:{free_port()}",
        "WOPR_SITE_ADDRESS": f"http://127.0.0.1:{site}",
        "WOPR_UPSTREAM_PORT": str(upstream_port),
        **extra,
    }
    config = ["--config", str(ROOT / "containers" / "Caddyfile"), "--adapter", "caddyfile"]
    validate = subprocess.run(
        ["caddy", "validate", *config], env=env, capture_output=True, text=True, timeout=60
    )
    assert validate.returncode == 0, validate.stderr[-2000:]
    caddy = subprocess.Popen(
        ["caddy", "run", *config], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{site}"
        wait_until(lambda: answers(f"{base}/api/health"), 30, "caddy")
        return {path: httpx.get(f"{base}{path}").status_code for path in RESTRICTED_PATHS}
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)


def test_the_caddyfile_lets_only_the_allowed_networks_reach_the_admin_and_metrics(tmp_path):
    if not shutil.which("caddy"):  # the only proof of the proxy's allow-list: fails in CI
        unavailable("caddy is not installed (.ci/run installs it: apt-get install caddy)")
    _Upstream.paths = []
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        default = _caddy_answers(tmp_path / "default", upstream.server_address[1])
        reached = list(_Upstream.paths)
        _Upstream.paths = []
        elsewhere = _caddy_answers(
            tmp_path / "office",
            upstream.server_address[1],
            ADMIN_ALLOWED_NETWORKS="192.0.2.0/24 2001:db8::/32",
        )
    finally:
        upstream.shutdown()

    assert default == dict.fromkeys(RESTRICTED_PATHS, 200)  # this host is allowed by default
    assert "/admin/" in reached and "/metrics" in reached
    assert elsewhere == dict.fromkeys(RESTRICTED_PATHS, 404)
    assert _Upstream.paths and not any(
        path.startswith(("/admin", "/metrics")) for path in _Upstream.paths
    )


# --- against gunicorn as the container runs it (PostgreSQL) ---------------------------------------

COOLOFF_SECONDS = 10
FAILURE_LIMIT = 5


@pytest.fixture(scope="module")
def static_root(tmp_path_factory) -> Path:
    """collectstatic as the image build does, so WhiteNoise serves the packaged Redoc."""
    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, "STATIC_ROOT": str(root)}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    return root


@pytest.fixture(scope="module")
def production_web(django_db_setup, static_root, tmp_path_factory) -> Iterator[str]:
    """gunicorn with .env.example's production values (DEBUG off) on the test database,
    behind a "Caddy" on 127.0.0.1 (TRUSTED_PROXIES). SECURE_SSL_REDIRECT is off only because
    chromium cannot send X-Forwarded-Proto; the redirect is proven in-process above."""
    tmp = tmp_path_factory.mktemp("production")
    env = {
        **production_values(),
        "DATABASE_URL": database_url(),
        "REDIS_URL": "",
        "DOCUMENTS_ROOT": str(tmp / "documents"),
        "STATIC_ROOT": str(static_root),
        "TRUSTED_PROXIES": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "ADMIN_REQUIRE_OTP": "false",
        "ADMIN_LOGIN_FAILURE_LIMIT": str(FAILURE_LIMIT),
        "ADMIN_LOCKOUT_COOLOFF_SECONDS": str(COOLOFF_SECONDS),
    }
    with running_web(env, tmp / "logs") as base:
        yield base


def _cookies(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name (httpx would not send Secure cookies over http)."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def sign_in(
    base: str, username: str, password: str, client_address: str
) -> tuple[httpx.Response, httpx.Response]:
    """The admin sign-in as it arrives from Caddy: https, the client in X-Forwarded-For."""
    headers = {"X-Forwarded-For": client_address, "X-Forwarded-Proto": "https"}
    page = httpx.get(f"{base}/admin/login/", headers=headers, timeout=30)
    assert page.status_code == 200, page.text[:300]
    csrf_cookie = _cookies(page)["csrftoken"].split(";")[0]
    answer = httpx.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "username": username,
            "password": password,
            "next": "/admin/",
            "csrfmiddlewaretoken": CSRF_FIELD.search(page.text).group(1),
        },
        headers={
            **headers,
            "Cookie": csrf_cookie,
            "Referer": f"{base.replace('http:', 'https:')}/admin/login/",
        },
        timeout=30,
    )
    return page, answer


@pytest.mark.postgres
@pytest.mark.processes
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_repeated_failures_lock_the_account_and_the_address_until_the_cooloff(production_web):
    make_staff("ada-admin")
    make_staff("grace-admin")
    attacker, elsewhere, colleague = "203.0.113.7", "203.0.113.8", "198.51.100.20"

    failures = [sign_in(production_web, "ada-admin", "guess", attacker)[1] for _ in range(5)]
    last_failure = time.monotonic()
    right_password = sign_in(production_web, "ada-admin", PASSWORD, attacker)[1]

    assert [response.status_code for response in failures[:-1]] == [200] * (FAILURE_LIMIT - 1)
    assert failures[-1].status_code == 429  # the fifth failure locks
    assert right_password.status_code == 429
    assert "sessionid" not in _cookies(right_password)
    assert "ada-admin" not in right_password.text
    # By design: the account is locked from every address, the address for every account...
    assert sign_in(production_web, "ada-admin", PASSWORD, elsewhere)[1].status_code == 429
    assert sign_in(production_web, "grace-admin", PASSWORD, attacker)[1].status_code == 429
    # ...and anyone else signs in as usual.
    other = sign_in(production_web, "grace-admin", PASSWORD, colleague)[1]
    assert (other.status_code, other.headers["location"]) == (302, "/admin/")

    # Refused attempts during the lockout do not extend it: the cool-off ends on time.
    def signs_in() -> bool:
        return sign_in(production_web, "ada-admin", PASSWORD, attacker)[1].status_code == 302

    wait_until(signs_in, COOLOFF_SECONDS + 30, "the cool-off to end")
    assert time.monotonic() - last_failure >= COOLOFF_SECONDS - 1


@pytest.mark.postgres
@pytest.mark.processes
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_https_through_a_trusted_proxy_gets_hsts_csp_and_secure_cookies(production_web):
    make_staff("ada-admin")

    page, signed_in = sign_in(production_web, "ada-admin", PASSWORD, "198.51.100.30")
    plain = httpx.get(f"{production_web}/admin/login/", timeout=30)

    assert page.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "; Secure" in _cookies(page)["csrftoken"]
    assert signed_in.status_code == 302
    session = _cookies(signed_in)["sessionid"]
    assert "; Secure" in session and "HttpOnly" in session
    # Plain http (not through the proxy as https) gets no HSTS: browsers would ignore it.
    assert "strict-transport-security" not in plain.headers


@pytest.mark.postgres
@pytest.mark.processes
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_api_docs_render_offline_from_packaged_assets(production_web, tmp_path):
    https = {"X-Forwarded-Proto": "https"}
    page = httpx.get(f"{production_web}/api/docs/", headers=https, timeout=30)
    assert page.status_code == 200
    for src in re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", page.text):
        assert src.startswith("/static/")
        script = httpx.get(f"{production_web}{src}", headers=https, timeout=30)
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # as root in CI containers
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=20000",  # let Redoc fetch the schema and render
            "--dump-dom",
            f"{production_web}/api/docs/",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    # Rendered by Redoc's script from the schema: neither text is in the page as served.
    assert "WOPR control plane API" in dom.stdout, dom.stderr[-2000:]
    assert "/api/v1/checkout" in dom.stdout
