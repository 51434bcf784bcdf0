"""One way to keep secrets out of anything stored or logged: `redact(text)`.

Exception texts end up in rows staff read (a Job's `last_error`, a JobEvent, a health finding,
dj-stripe's webhook trigger) and in the logs. A vendor library may quote a credential in its
error (stripe-python quoted a whole API key that had a trailing carriage return), so every such
text passes through `redact`: each configured secret value is replaced, and so is anything shaped
like a Stripe key or webhook secret, configured or not.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PLACEHOLDER = "[redacted]"

# Settings whose values are credentials (the names of .env.example).
SECRET_SETTINGS = (
    "SECRET_KEY",
    "STRIPE_TEST_SECRET_KEY",
    "STRIPE_LIVE_SECRET_KEY",
    "STRIPE_TEST_WEBHOOK_SECRET",
    "STRIPE_LIVE_WEBHOOK_SECRET",
    "HETZNER_API_TOKEN",
    "DIGITALOCEAN_API_TOKEN",
    "CLOUDFLARE_API_TOKEN",
    "AUTHENTIK_API_TOKEN",
    "EMAIL_HOST_PASSWORD",
    "METRICS_TOKEN",
)
SECRET_NAME_WORDS = ("KEY", "SECRET", "TOKEN", "PASS")

# Stripe-shaped credentials, whether configured here or not (a key pasted into a metadata
# field, a key of another account quoted by Stripe).
STRIPE_TOKEN = re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9_]+|\bwhsec_[A-Za-z0-9_+/=-]+")

# Shorter values are not replaced: redacting "1" everywhere would only garble the text.
MIN_SECRET_LENGTH = 6


def configured_secrets() -> list[str]:
    """Every credential value in the settings, longest first, with and without surrounding
    whitespace (a malformed value with a trailing "\\r" may be quoted either way)."""
    values: set[str] = set()
    for name in SECRET_SETTINGS:
        try:
            values.add(str(getattr(settings, name, "") or ""))
        except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
            continue
    anymail = getattr(settings, "ANYMAIL", {}) or {}
    for name, value in anymail.items():
        if isinstance(value, str) and any(word in name for word in SECRET_NAME_WORDS):
            values.add(value)
    variants = {
        variant
        for value in values
        for variant in (value, value.strip(), value.encode("unicode_escape").decode("ascii"))
    }
    return sorted((v for v in variants if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with every configured secret and every Stripe-shaped credential replaced."""
    if not text:
        return text
    for secret in configured_secrets():
        text = text.replace(secret, PLACEHOLDER)
    return STRIPE_TOKEN.sub(PLACEHOLDER, text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the message and the traceback of every record it sees
    (installed on the console handler, so it covers every logger that reaches it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as usual
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
