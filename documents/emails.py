"""The one way to send e-mail: every message is keyed by its cause and goes out at most once.

A row in `documents.EmailMessage` is created per idempotency key, claimed with a conditional
update before sending, and records the outcome and the plain-text body (for staff), with every
value fetched at send time (a one-time set-your-password link) replaced by a placeholder. Call
this outside a database transaction: the claim and the outcome must be committed whatever the
caller does next.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Model, Q
from django.template import Context, engines
from django.template.loader import render_to_string
from django.utils import timezone

from documents.models import EmailMessage, EmailStatus
from integrations.errors import ExternalError
from wopr.lib.redact import redact

if TYPE_CHECKING:
    from billing.models import Order
    from provisioning.models import Beacon

# A row left in `sending` this long belongs to a sender that crashed mid-send; retry it.
STALE_SENDING_AFTER = timedelta(minutes=10)
MAX_ERROR_LENGTH = 500
# What the stored body says where the e-mail carried a value fetched at send time.
NOT_STORED = "[one-time link: sent, not stored]"

# Backends that keep mail on this machine: right for a developer, never for a customer.
NON_DELIVERING_EMAIL_BACKENDS = (
    "wopr.lib.console_email.EmailBackend",
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
)


def email_send_once(
    *,
    key: str,
    template: str,
    to: str,
    context: dict[str, Any],
    beacon: Beacon | None = None,
    order: Order | None = None,
    attachments: Sequence[tuple[str, bytes, str]] = (),
    reply_to_support: bool = True,
) -> EmailMessage:
    """Send templates/emails/<template>.{subject.txt,txt,html} to `to`, once per `key`.

    Every template sees `support_email` (SUPPORT_EMAIL). A customer's reply goes to support:
    messages carry Reply-To SUPPORT_EMAIL unless `reply_to_support` is False (the operators'
    alerts, whose readers are the staff themselves).

    Returns the row untouched when it was already sent or another worker holds the claim.
    On a delivery failure the row is marked failed and ExternalError(transient=True) is raised,
    so the caller may retry with the same key.
    """
    message = _message_row(
        key, {"template": template, "recipient": to, "beacon": beacon, "order": order}
    )
    if message.status == EmailStatus.SENT:
        return message

    # Render before claiming: a template error is a bug, not a delivery failure to retry.
    subject, text, html, stored = _render(template, context)
    if not _claim(message, subject, stored):
        message.refresh_from_db()
        return message

    reply_to = [settings.SUPPORT_EMAIL] if reply_to_support else []
    email = _build(
        subject=subject, text=text, html=html, to=to, reply_to=reply_to, attachments=attachments
    )
    _deliver(message, email, key)
    now = timezone.now()
    sent = {
        "status": EmailStatus.SENT,
        "provider_message_id": _provider_message_id(email)[:255],
        "last_error": "",
        "sent_at": now,
        "updated_at": now,
    }
    EmailMessage.objects.filter(pk=message.pk).update(**sent)
    for field, value in sent.items():  # what the row now holds: no re-read
        setattr(message, field, value)
    return message


def _message_row(key: str, defaults: dict[str, Any]) -> EmailMessage:
    """The log row of `key`, made on first use; a concurrent maker's row wins the race."""
    message = EmailMessage.objects.filter(idempotency_key=key).first()
    if message is not None:
        return message
    # A savepoint only inside a transaction (which a failed INSERT would break); in autocommit
    # the INSERT alone is atomic, so no BEGIN/COMMIT around it.
    guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with guard:
            return EmailMessage.objects.create(idempotency_key=key, **defaults)
    except IntegrityError:
        return EmailMessage.objects.get(idempotency_key=key)


def _deliver(message: EmailMessage, email: EmailMultiAlternatives, key: str) -> None:
    """Hand the message to the backend; on failure mark the row failed and raise a transient
    ExternalError (the caller retries with the same key)."""
    try:
        if email.send(fail_silently=False) != 1:
            raise RuntimeError("the mail backend accepted no message")
    except Exception as exc:
        error = _describe(exc)
        EmailMessage.objects.filter(pk=message.pk).update(
            status=EmailStatus.FAILED, last_error=error, updated_at=timezone.now()
        )
        raise ExternalError(f"e-mail {key!r} not sent: {error}", transient=True) from exc


def admin_change_url(obj: Model) -> str:
    """The absolute admin URL of `obj`'s change page, for operators' e-mails."""
    meta = obj._meta
    base = settings.WOPR_PUBLIC_URL.rstrip("/")
    return f"{base}/admin/{meta.app_label}/{meta.model_name}/{obj.pk}/change/"


def _claim(message: EmailMessage, subject: str, body: str) -> bool:
    """Move the row to `sending` if nobody else is sending it; True when this caller won."""
    now = timezone.now()
    claimable = Q(status__in=[EmailStatus.PENDING, EmailStatus.FAILED]) | Q(
        status=EmailStatus.SENDING, updated_at__lt=now - STALE_SENDING_AFTER
    )
    touched = EmailMessage.objects.filter(claimable, pk=message.pk).update(
        status=EmailStatus.SENDING,
        attempts=F("attempts") + 1,
        subject=subject[:255],
        body_text=body,
        updated_at=now,
    )
    if touched == 1:  # the claim matched the row as read: mirror it instead of re-reading
        message.status, message.attempts = EmailStatus.SENDING, message.attempts + 1
        message.subject, message.updated_at, message.body_text = subject[:255], now, body
    return touched == 1


def _render(template: str, context: dict[str, Any]) -> tuple[str, str, str, str]:
    """Subject (one line), text body (not HTML-escaped), HTML body (autoescaped) and the text
    body to store (`_stored_body`). Every template sees `support_email`."""
    context = {"support_email": settings.SUPPORT_EMAIL, **context}
    base = f"emails/{template}"
    subject = " ".join(_render_plain(f"{base}.subject.txt", context).split())
    text = _render_plain(f"{base}.txt", context)
    html = render_to_string(f"{base}.html", context)
    return subject, text, html, _stored_body(template, context)


def _stored_body(template: str, context: dict[str, Any]) -> str:
    """The text body as staff may read it: rendered again with every callable value (fetched
    only when a template shows it, like accounts' LinkAtSend: a one-time link) replaced by
    NOT_STORED, so the secret never reaches the row; configured secrets are redacted too."""
    return redact(_render_plain(f"emails/{template}.txt", _without_fetched(context)))


def _without_fetched(context: dict[str, Any]) -> dict[str, Any]:
    """`context` with its callable values, in nested dicts too, replaced by NOT_STORED."""
    return {
        name: _without_fetched(value)
        if isinstance(value, dict)
        else (NOT_STORED if callable(value) and not isinstance(value, type) else value)
        for name, value in context.items()
    }


def _render_plain(name: str, context: dict[str, Any]) -> str:
    """Render a text template without HTML escaping; only `context` is visible to it."""
    engine = engines["django"].engine
    return engine.get_template(name).render(Context(context, autoescape=False))


def _build(
    *,
    subject: str,
    text: str,
    html: str,
    to: str,
    reply_to: list[str],
    attachments: Sequence[tuple[str, bytes, str]],
) -> EmailMultiAlternatives:
    """The message with text and HTML parts, our own Message-ID, Reply-To and the attachments."""
    sender_domain = parseaddr(settings.EMAIL_FROM)[1].rpartition("@")[2] or "localhost"
    email = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.EMAIL_FROM,
        to=[to],
        reply_to=reply_to,
        headers={"Message-ID": make_msgid(domain=sender_domain)},
    )
    email.attach_alternative(html, "text/html")
    for filename, content, mimetype in attachments:
        email.attach(filename, content, mimetype)
    return email


def _provider_message_id(email: EmailMultiAlternatives) -> str:
    """The ESP's id when Anymail reports one, else the Message-ID header we set."""
    status = getattr(email, "anymail_status", None)
    message_id = getattr(status, "message_id", None)
    if isinstance(message_id, set):
        message_id = ",".join(sorted(str(m) for m in message_id))
    return str(message_id) if message_id else email.extra_headers["Message-ID"]


def _describe(exc: BaseException) -> str:
    """A short, credential-free account of a failure for the row and the logs."""
    text = f"{type(exc).__name__}: {exc}"
    for secret in _configured_secrets():
        text = text.replace(secret, "***")
    return text[:MAX_ERROR_LENGTH]


def _configured_secrets() -> list[str]:
    """Mail credentials that must never reach the database, even if a backend echoes them."""
    secrets = [getattr(settings, "EMAIL_HOST_PASSWORD", "")]
    anymail = getattr(settings, "ANYMAIL", {}) or {}
    secrets += [
        value
        for name, value in anymail.items()
        if isinstance(value, str) and any(w in name for w in ("KEY", "SECRET", "TOKEN", "PASS"))
    ]
    return [s for s in secrets if s and len(s) >= 4]
