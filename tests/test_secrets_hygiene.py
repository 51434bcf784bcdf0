"""Issue 9, items 3 and 18 (checks): a malformed Stripe key or secret stops a production start
naming the variable and never the value; every stored or logged error text is redacted; a real
backend without its credential is named at start-up (a warning in development)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from djstripe.models import WebhookEventTrigger

from billing.simulation import checkout_completed_event, encode, sign
from integrations.errors import ProviderError
from provisioning.models import JobEvent
from tests.djstripe_route import djstripe_view_calls  # noqa: F401  (a fixture)
from tests.factories import BeaconFactory
from tests.loopback import database_url, free_port
from wopr.checks import check_backend_credentials_in_development, check_stripe_credential_formats
from wopr.devsecrets import dev_secret
from wopr.lib.redact import PLACEHOLDER, RedactingFilter, redact

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# A key as it arrived in the incident: well-formed but for a trailing carriage return.
BAD_KEY = "sk_test_51QzUniqueKeyBody0123456789abcdef\r"
KEY_BODY = "51QzUniqueKeyBody0123456789abcdef"


def ids(messages) -> list[str]:
    return [message.id for message in messages]


# --- the start-up check -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_TEST_SECRET_KEY", BAD_KEY),
        ("STRIPE_TEST_SECRET_KEY", " sk_test_abc"),
        ("STRIPE_TEST_SECRET_KEY", '"sk_test_abc"'),
        ("STRIPE_TEST_SECRET_KEY", "sk_live_abc"),  # the other mode's key
        ("STRIPE_TEST_SECRET_KEY", "pk_test_abc"),  # a publishable key
        ("STRIPE_LIVE_SECRET_KEY", "sk_live_abc\n"),
        ("STRIPE_LIVE_SECRET_KEY", "rk_test_abc"),
        ("STRIPE_TEST_WEBHOOK_SECRET", "whsec_abc\r"),
        ("STRIPE_LIVE_WEBHOOK_SECRET", "abc"),
    ],
)
def test_a_malformed_stripe_credential_is_an_error_naming_the_variable_only(settings, name, value):
    settings.DEBUG = False
    setattr(settings, name, value)

    (error,) = check_stripe_credential_formats()

    assert error.id == "wopr.E007"
    assert error.is_serious()
    assert name in error.msg
    assert value.strip().strip('"') not in error.msg
    assert "abc" not in error.msg and KEY_BODY not in error.msg


def test_a_malformed_key_is_a_warning_in_development(settings):
    settings.DEBUG = True
    settings.STRIPE_TEST_SECRET_KEY = BAD_KEY

    assert ids(check_stripe_credential_formats()) == ["wopr.W007"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_TEST_SECRET_KEY", "sk_test_51QzAbc123"),
        ("STRIPE_TEST_SECRET_KEY", "rk_test_51QzAbc123"),
        ("STRIPE_LIVE_SECRET_KEY", "sk_live_51QzAbc123"),
        ("STRIPE_LIVE_SECRET_KEY", "rk_live_51QzAbc123"),
        ("STRIPE_TEST_WEBHOOK_SECRET", "whsec_0123abcdEFGH"),
        ("STRIPE_LIVE_WEBHOOK_SECRET", "whsec_0123abcdEFGH"),
        ("STRIPE_LIVE_SECRET_KEY", ""),  # unset: wopr.E001 speaks for the active mode
    ],
)
def test_well_formed_stripe_credentials_pass(settings, name, value):
    settings.DEBUG = False
    setattr(settings, name, value)

    assert check_stripe_credential_formats() == []


def test_the_generated_development_webhook_secret_passes(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("DEBUG", "true")
    settings.DEBUG = False
    settings.STRIPE_TEST_WEBHOOK_SECRET = dev_secret(tmp_path, "webhook-secret", "whsec_dev_")

    assert settings.STRIPE_TEST_WEBHOOK_SECRET.startswith("whsec_dev_")
    assert check_stripe_credential_formats() == []


@pytest.mark.parametrize(
    ("providers", "dns", "expected"),
    [
        (["hetzner"], "fake", ["HETZNER_API_TOKEN"]),
        (["digitalocean"], "fake", ["DIGITALOCEAN_API_TOKEN"]),
        (["fake"], "cloudflare", ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ZONE_ID"]),
        (["hetzner", "digitalocean"], "fake", ["HETZNER_API_TOKEN", "DIGITALOCEAN_API_TOKEN"]),
    ],
)
def test_a_real_backend_without_its_credential_is_named_in_development(
    settings, providers, dns, expected
):
    settings.DEBUG = True
    settings.PROVIDERS = providers
    settings.DNS_BACKEND = dns
    for name in ("HETZNER_API_TOKEN", "DIGITALOCEAN_API_TOKEN"):
        setattr(settings, name, "")
    settings.CLOUDFLARE_API_TOKEN = settings.CLOUDFLARE_ZONE_ID = ""

    warnings = check_backend_credentials_in_development()

    assert ids(warnings) == ["wopr.W008"] * len(expected)
    assert [next(n for n in expected if n in w.msg) for w in warnings] == expected
    assert not any(w.is_serious() for w in warnings)


def test_configured_backends_give_no_development_warning(settings):
    settings.DEBUG = True
    settings.PROVIDERS = ["hetzner", "digitalocean"]
    settings.HETZNER_API_TOKEN = settings.DIGITALOCEAN_API_TOKEN = "token-value"
    settings.DNS_BACKEND = "cloudflare"
    settings.CLOUDFLARE_API_TOKEN = settings.CLOUDFLARE_ZONE_ID = "value"

    assert check_backend_credentials_in_development() == []


def test_manage_py_check_warns_about_a_missing_hetzner_token_in_development(tmp_path):
    keep = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        DEBUG="true",
        PROVIDERS="hetzner",
        DATABASE_URL=f"sqlite:///{tmp_path / 'check.sqlite3'}",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--tag", "wopr"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr  # a warning, development still starts
    assert "wopr.W008" in result.stderr
    assert "HETZNER_API_TOKEN" in result.stderr


# --- redaction ----------------------------------------------------------------------------------


def test_redact_replaces_configured_secrets_and_stripe_shaped_tokens(settings):
    settings.STRIPE_TEST_SECRET_KEY = BAD_KEY
    settings.HETZNER_API_TOKEN = "hetzner-token-value-123"

    text = redact(
        f"Invalid header value b'Bearer {BAD_KEY}' "
        f"{BAD_KEY.encode('unicode_escape').decode()} "
        "token hetzner-token-value-123, and sk_live_SomeoneElses99 whsec_abc-DEF_123 rk_test_x1"
    )

    assert KEY_BODY not in text
    assert "hetzner-token-value-123" not in text
    assert "SomeoneElses99" not in text and "abc-DEF_123" not in text and "x1" not in text
    assert text.count(PLACEHOLDER) >= 5


def test_redact_leaves_ordinary_text_alone():
    assert redact("beacon ada1 is active") == "beacon ada1 is active"


def test_log_records_are_redacted_with_their_tracebacks(settings):
    settings.STRIPE_TEST_SECRET_KEY = BAD_KEY
    try:
        raise ValueError(f"Invalid header value b'Bearer {BAD_KEY}'")
    except ValueError:
        record = logging.LogRecord(
            "stripe", logging.ERROR, __file__, 1, "request with %s failed", (BAD_KEY,), None
        )
        record.exc_info = sys.exc_info()

    assert RedactingFilter().filter(record)
    line = logging.Formatter("%(message)s").format(record)

    assert "Invalid header value" in line  # the traceback is kept, the key is not
    assert KEY_BODY not in line


def test_the_console_handler_redacts(settings):
    assert "redact" in settings.LOGGING["handlers"]["console"]["filters"]


@pytest.mark.django_db
def test_provider_errors_and_job_events_are_redacted(settings):
    from provisioning.jobs import _event

    settings.HETZNER_API_TOKEN = "hetzner-token-value-123"
    error = ProviderError("401 for token hetzner-token-value-123", transient=False)
    beacon = BeaconFactory()
    job = beacon.jobs.create(kind="provision", step="create_server")

    _event(job, "pending", f"attempt failed ({error}); also sk_test_AbC123")

    assert "hetzner-token-value-123" not in str(error)
    message = JobEvent.objects.get(job=job).message
    assert "hetzner-token-value-123" not in message and "AbC123" not in message


@pytest.mark.django_db
def test_a_webhook_failure_quoting_the_key_stores_no_part_of_it(settings, monkeypatch):
    """dj-stripe stored stripe-python's error, which quoted the malformed key, in the trigger's
    exception and traceback (shown in the admin)."""
    import billing.webhooks

    settings.STRIPE_TEST_SECRET_KEY = BAD_KEY

    def failing(trigger, api_key=None):
        raise ValueError(f"Invalid header value b'Bearer {api_key}'")

    monkeypatch.setattr(billing.webhooks, "process_trigger", failing)
    payload = encode(checkout_completed_event(beacon_name="leak1"))

    response = Client(raise_request_exception=False).post(
        "/api/webhook/stripe",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, settings.STRIPE_TEST_WEBHOOK_SECRET),
    )

    assert response.status_code == 500  # Stripe delivers it again once the key is fixed
    trigger = WebhookEventTrigger.objects.get()
    assert "Invalid header value" in trigger.exception
    assert "ValueError" in trigger.traceback
    for text in (trigger.exception, trigger.traceback, str(trigger.headers), trigger.body):
        assert KEY_BODY not in text


@pytest.mark.django_db
def test_a_failure_on_djstripes_path_stores_no_secret_even_where_its_text_is_cut(
    settings, monkeypatch, request
):
    """dj-stripe cuts the error to 128 characters before saving it; a secret straddling the
    cut must not leave its beginning behind (redaction runs on the whole text first)."""
    import billing.webhooks

    calls = request.getfixturevalue("djstripe_view_calls")

    token = "hetzner-token-" + "t" * 50
    settings.HETZNER_API_TOKEN = token

    def failing(trigger, api_key=None):
        raise RuntimeError("x" * 100 + f" token={token}")

    monkeypatch.setattr(billing.webhooks, "process_trigger", failing)
    payload = encode(checkout_completed_event(beacon_name="leak2"))

    response = Client(raise_request_exception=False).post(
        "/api/webhook/stripe",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, settings.STRIPE_TEST_WEBHOOK_SECRET),
    )

    assert response.status_code == 500
    assert len(calls) == 1  # dj-stripe's own view stored the trigger
    trigger = WebhookEventTrigger.objects.get()
    for text in (trigger.exception, trigger.traceback):
        assert "hetzner-tok" not in text
    assert trigger.exception.startswith("RuntimeError: xxx")
    assert len(trigger.exception) <= 128
    assert "RuntimeError" in trigger.traceback and PLACEHOLDER in trigger.traceback


# --- from outside: gunicorn refuses to start --------------------------------------------------


@pytest.mark.processes
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_gunicorn_with_a_key_carrying_a_carriage_return_refuses_to_start(tmp_path):
    keep = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        DEBUG="false",
        SECRET_KEY="process-test-secret-key-" + "x" * 30,
        DATABASE_URL=database_url(),
        STRIPE_TEST_SECRET_KEY=BAD_KEY,
        STRIPE_TEST_WEBHOOK_SECRET="whsec_process_test",
        PROVIDERS="hetzner",
        HETZNER_API_TOKEN="hetzner-token-value",
        DNS_BACKEND="cloudflare",
        CLOUDFLARE_API_TOKEN="cloudflare-token-value",
        CLOUDFLARE_ZONE_ID="cloudflare-zone-value",
        AUTHENTIK_URL="https://auth.example.com",
        AUTHENTIK_API_TOKEN="authentik-token-value",
        SMTP_HOST="127.0.0.1",
        DOCUMENTS_ROOT=str(tmp_path / "documents"),
    )
    command = [
        str(BIN / "gunicorn"),
        "wopr.wsgi:application",
        "-c",
        str(ROOT / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{free_port()}",
        "--no-control-socket",
    ]

    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # it did not refuse: stop it, and the test fails below
            process.kill()
            process.communicate()
    text = output.decode(errors="replace")

    assert process.returncode != 0, text[-3000:]
    assert "refusing to start" in text
    assert "[wopr.E007] STRIPE_TEST_SECRET_KEY is malformed" in text
    assert KEY_BODY not in text
    assert KEY_BODY[:12] not in text and KEY_BODY[-12:] not in text
