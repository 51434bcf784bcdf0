"""System checks: a production start (DEBUG off) names what is missing and never shows a value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from integrations.dns.registry import DNS_BACKENDS
from provisioning.vendors import PROVIDER_CLASSES
from wopr.checks import check_known_backends, check_production_configuration

ROOT = Path(__file__).resolve().parent.parent
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def messages(errors) -> list[str]:
    return [error.msg for error in errors]


def ids(errors) -> list[str]:
    return [error.id for error in errors]


@pytest.fixture
def production(settings):
    """A complete production configuration; each test takes away what it is about."""
    settings.DEBUG = False
    settings.SECRET_KEY = "prod-secret-key-value"
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_configured"
    settings.STRIPE_TEST_WEBHOOK_SECRET = "whsec_configured"
    settings.STRIPE_LIVE_SECRET_KEY = ""
    settings.STRIPE_LIVE_WEBHOOK_SECRET = ""
    settings.PROVIDERS = ["hetzner"]
    settings.HETZNER_API_TOKEN = "hetzner-token-value"
    settings.DIGITALOCEAN_API_TOKEN = ""
    settings.DNS_BACKEND = "cloudflare"
    settings.CLOUDFLARE_API_TOKEN = "cloudflare-token-value"
    settings.CLOUDFLARE_ZONE_ID = "cloudflare-zone-value"
    settings.AUTHENTIK_URL = "https://auth.example.com"
    settings.AUTHENTIK_API_TOKEN = "authentik-token-value"
    settings.EMAIL_BACKEND = SMTP_BACKEND
    return settings


def test_fully_configured_production_has_no_production_errors(production):
    assert check_production_configuration() == []


def test_the_development_defaults_each_give_an_error_naming_the_variable(production):
    production.PROVIDERS = ["fake"]
    production.DNS_BACKEND = "fake"
    production.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    production.STRIPE_TEST_SECRET_KEY = ""
    production.STRIPE_TEST_WEBHOOK_SECRET = ""

    errors = check_production_configuration()

    by_id: dict[str, list[str]] = {}
    for error in errors:
        by_id.setdefault(error.id, []).append(error.msg)
    assert sorted(by_id) == ["wopr.E001", "wopr.E002", "wopr.E003", "wopr.E004"]
    assert len(by_id["wopr.E001"]) == 2
    assert any("STRIPE_TEST_SECRET_KEY" in msg for msg in by_id["wopr.E001"])
    assert any("STRIPE_TEST_WEBHOOK_SECRET" in msg for msg in by_id["wopr.E001"])
    assert "PROVIDERS" in by_id["wopr.E002"][0]
    assert "DNS_BACKEND" in by_id["wopr.E003"][0]
    assert "SMTP_HOST" in by_id["wopr.E004"][0]


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
        "django.core.mail.backends.filebased.EmailBackend",
    ],
)
def test_mail_that_stays_on_this_machine_is_refused(production, backend):
    production.EMAIL_BACKEND = backend

    errors = check_production_configuration()

    assert ids(errors) == ["wopr.E004"]


def test_an_esp_backend_is_accepted(production):
    production.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"

    assert check_production_configuration() == []


def test_an_empty_secret_key_is_named(production):
    production.SECRET_KEY = ""

    errors = check_production_configuration()

    assert ids(errors) == ["wopr.E001"]
    assert "SECRET_KEY" in errors[0].msg


@pytest.mark.parametrize(
    ("provider", "token"),
    [("hetzner", "HETZNER_API_TOKEN"), ("digitalocean", "DIGITALOCEAN_API_TOKEN")],
)
def test_a_real_provider_needs_its_token(production, provider, token):
    production.PROVIDERS = [provider]
    setattr(production, token, "")

    errors = check_production_configuration()

    assert ids(errors) == ["wopr.E001"]
    assert token in errors[0].msg


def test_cloudflare_needs_its_token_and_zone(production):
    production.CLOUDFLARE_API_TOKEN = ""
    production.CLOUDFLARE_ZONE_ID = ""

    errors = check_production_configuration()

    assert ids(errors) == ["wopr.E001", "wopr.E001"]
    assert "CLOUDFLARE_API_TOKEN" in errors[0].msg
    assert "CLOUDFLARE_ZONE_ID" in errors[1].msg


def test_production_needs_authentik_for_customer_accounts(production):
    production.AUTHENTIK_URL = ""
    production.AUTHENTIK_API_TOKEN = ""

    errors = check_production_configuration()

    assert ids(errors) == ["wopr.E001", "wopr.E001"]
    assert "AUTHENTIK_URL" in errors[0].msg
    assert "AUTHENTIK_API_TOKEN" in errors[1].msg


def test_no_message_shows_a_configured_value(production):
    production.STRIPE_TEST_SECRET_KEY = "sk_test_SHOULD_NOT_APPEAR"
    production.STRIPE_TEST_WEBHOOK_SECRET = "whsec_SHOULD_NOT_APPEAR"
    production.HETZNER_API_TOKEN = "hetzner_SHOULD_NOT_APPEAR"
    production.CLOUDFLARE_API_TOKEN = "cloudflare_SHOULD_NOT_APPEAR"
    production.SECRET_KEY = ""
    production.CLOUDFLARE_ZONE_ID = ""
    production.PROVIDERS = ["hetzner", "fake"]
    production.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    errors = check_production_configuration() + check_known_backends()

    assert len(errors) >= 4
    for msg in messages(errors):
        assert "SHOULD_NOT_APPEAR" not in msg


def test_live_mode_requires_the_live_keys(production):
    production.STRIPE_LIVE_MODE = True

    errors = check_production_configuration()

    assert ids(errors) == ["wopr.E001", "wopr.E001"]
    assert "STRIPE_LIVE_SECRET_KEY" in errors[0].msg
    assert "STRIPE_LIVE_WEBHOOK_SECRET" in errors[1].msg


def test_live_mode_with_live_keys_does_not_ask_for_the_test_keys(production):
    production.STRIPE_LIVE_MODE = True
    production.STRIPE_LIVE_SECRET_KEY = "sk_live_configured"
    production.STRIPE_LIVE_WEBHOOK_SECRET = "whsec_live_configured"
    production.STRIPE_TEST_SECRET_KEY = ""
    production.STRIPE_TEST_WEBHOOK_SECRET = ""

    assert check_production_configuration() == []


def test_debug_gives_no_production_errors(settings):
    settings.DEBUG = True
    settings.SECRET_KEY = ""
    settings.STRIPE_TEST_SECRET_KEY = ""
    settings.STRIPE_TEST_WEBHOOK_SECRET = ""
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    # The conftest already configures the fake provider and DNS backend.

    assert check_production_configuration() == []


def test_the_fake_backends_are_known(settings):
    assert check_known_backends() == []


def test_an_unknown_provider_is_named_with_the_known_ones(settings):
    settings.PROVIDERS = ["fake", "linode"]

    errors = check_known_backends()

    assert ids(errors) == ["wopr.E005"]
    assert "'linode'" in errors[0].msg
    for known in PROVIDER_CLASSES:
        assert known in errors[0].msg


def test_the_production_backends_are_known(production):
    assert check_known_backends() == []


def test_an_unknown_dns_backend_is_named(settings):
    settings.DNS_BACKEND = "route53"

    errors = check_known_backends()

    assert ids(errors) == ["wopr.E006"]
    assert "'route53'" in errors[0].msg
    for known in DNS_BACKENDS:
        assert known in errors[0].msg


def test_unknown_backends_are_errors_with_debug_on_too(settings):
    settings.DEBUG = True
    settings.PROVIDERS = ["nosuchcloud"]

    assert ids(check_known_backends()) == ["wopr.E005"]


def test_manage_py_check_without_debug_names_the_missing_variables(tmp_path):
    prefixes = ("STRIPE_", "SMTP_", "ANYMAIL_", "HETZNER_", "DIGITALOCEAN_", "CLOUDFLARE_")
    names = {"SECRET_KEY", "PROVIDERS", "DNS_BACKEND", "EMAIL_BACKEND", "DJANGO_SETTINGS_MODULE"}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(prefixes)}
    env["DEBUG"] = "false"
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'check.sqlite3'}"

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "SECRET_KEY" in result.stderr
    assert "PROVIDERS" in result.stderr
    assert "STRIPE_TEST_SECRET_KEY" in result.stderr
    assert "wopr.E001" in result.stderr


def test_the_wsgi_application_refuses_a_production_start_on_fakes(tmp_path):
    """gunicorn imports wopr.wsgi; Django runs no system checks there, so wsgi.py does."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "SECRET_KEY"))}
    env.update(DEBUG="false", SECRET_KEY="x" * 50, DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    result = subprocess.run(
        [sys.executable, "-c", "import wopr.wsgi"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "refusing to start" in result.stderr
    assert "PROVIDERS" in result.stderr
