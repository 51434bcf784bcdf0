"""E-mail goes out once per cause, escaped, with its PDF, and survives a failing mail server."""

from __future__ import annotations

import email
import socket
from datetime import timedelta
from email import policy
from smtplib import SMTPException

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from documents.emails import admin_change_url, email_send_once
from documents.models import DocumentKind, EmailMessage, EmailStatus
from documents.services import document_path, document_render
from integrations.errors import ExternalError
from tests.factories import BeaconFactory, OrderFactory

pytestmark = pytest.mark.django_db

SMTP_PASSWORD = "hunter2-smtp-password"


class FailingBackend(BaseEmailBackend):
    """A mail server that is down, and rude enough to echo the password back."""

    def send_messages(self, email_messages):
        raise SMTPException(f"421 service not available (auth {SMTP_PASSWORD})")


def failing_backend_path() -> str:
    return f"{FailingBackend.__module__}.{FailingBackend.__qualname__}"


def send_welcome(beacon, *, key: str | None = None) -> EmailMessage:
    """What the provisioning job does at its last step."""
    card = document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD)
    return email_send_once(
        key=key or f"welcome:{beacon.id}",
        template="welcome",
        to=beacon.order.email,
        context={
            "beacon": beacon,
            "order": beacon.order,
            "bundle": beacon.bundle,
            "tier": beacon.tier,
            "url": f"https://{beacon.fqdn}",
        },
        beacon=beacon,
        order=beacon.order,
        attachments=[("welcome-card.pdf", document_path(card).read_bytes(), "application/pdf")],
    )


def html_part(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def test_same_key_twice_sends_one_mail_with_the_welcome_card():
    beacon = BeaconFactory()

    first = send_welcome(beacon)
    second = send_welcome(beacon)

    assert len(mail.outbox) == 1
    assert first.pk == second.pk
    assert second.status == EmailStatus.SENT
    assert second.attempts == 1
    assert second.sent_at is not None
    assert second.provider_message_id.startswith("<")
    sent = mail.outbox[0]
    assert sent.to == [beacon.order.email]
    assert sent.subject == f"Your Beacon {beacon.fqdn} is ready"
    assert sent.extra_headers["Message-ID"] == second.provider_message_id
    [(filename, content, mimetype)] = sent.attachments
    assert (filename, mimetype) == ("welcome-card.pdf", "application/pdf")
    assert content.startswith(b"%PDF-")
    for module in beacon.bundle.modules:
        assert module in sent.body
        assert module in html_part(sent)


def test_html_part_escapes_customer_supplied_text():
    beacon = BeaconFactory(order=OrderFactory(name="<script>alert(1)</script>"))

    send_welcome(beacon)

    html = html_part(mail.outbox[0])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" in mail.outbox[0].body  # plain text is not HTML


def test_failing_backend_marks_failed_and_raises_then_retry_sends(settings):
    beacon = BeaconFactory()
    settings.EMAIL_HOST_PASSWORD = SMTP_PASSWORD
    settings.EMAIL_BACKEND = failing_backend_path()

    with pytest.raises(ExternalError) as raised:
        send_welcome(beacon)

    assert raised.value.transient is True
    row = EmailMessage.objects.get(idempotency_key=f"welcome:{beacon.id}")
    assert row.status == EmailStatus.FAILED
    assert row.attempts == 1
    assert row.last_error.startswith("SMTPException: 421 service not available")
    assert SMTP_PASSWORD not in row.last_error
    assert SMTP_PASSWORD not in str(raised.value)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    retried = send_welcome(beacon)

    assert retried.pk == row.pk
    assert retried.status == EmailStatus.SENT
    assert retried.attempts == 2
    assert retried.last_error == ""
    assert len(mail.outbox) == 1


def test_message_another_worker_is_sending_is_left_alone():
    beacon = BeaconFactory()
    row = EmailMessage.objects.create(
        idempotency_key=f"welcome:{beacon.id}",
        template="welcome",
        recipient=beacon.order.email,
        status=EmailStatus.SENDING,
        attempts=1,
    )

    result = send_welcome(beacon)

    assert mail.outbox == []
    assert result.pk == row.pk
    assert result.status == EmailStatus.SENDING
    assert result.attempts == 1


def test_message_stuck_in_sending_by_a_crashed_worker_is_sent():
    beacon = BeaconFactory()
    row = EmailMessage.objects.create(
        idempotency_key=f"welcome:{beacon.id}",
        template="welcome",
        recipient=beacon.order.email,
        status=EmailStatus.SENDING,
        attempts=1,
    )
    EmailMessage.objects.filter(pk=row.pk).update(updated_at=timezone.now() - timedelta(minutes=11))

    result = send_welcome(beacon)

    assert len(mail.outbox) == 1
    assert result.status == EmailStatus.SENT
    assert result.attempts == 2


def test_customer_failure_mail_apologises_without_internal_details():
    beacon = BeaconFactory()

    email_send_once(
        key=f"provisioning_failed_customer:{beacon.id}",
        template="provisioning_failed_customer",
        to=beacon.order.email,
        context={"beacon": beacon, "order": beacon.order},
        beacon=beacon,
    )

    [sent] = mail.outbox
    assert "not able to set up your Beacon" in sent.body
    assert "looking into it" in sent.body
    assert "Traceback" not in sent.body
    assert sent.alternatives


def test_operators_failure_mail_links_to_the_beacon_admin(settings):
    settings.WOPR_PUBLIC_URL = "https://control.wopr.example/"
    beacon = BeaconFactory()
    admin_url = admin_change_url(beacon)

    email_send_once(
        key=f"provisioning_failed_operators:{beacon.id}",
        template="provisioning_failed_operators",
        to=settings.OPERATORS_EMAIL,
        context={
            "beacon": beacon,
            "job": None,
            "error": "ProviderError: <quota>",
            "admin_url": admin_url,
        },
        beacon=beacon,
    )

    assert admin_url == (
        f"https://control.wopr.example/admin/provisioning/beacon/{beacon.id}/change/"
    )
    [sent] = mail.outbox
    assert sent.to == [settings.OPERATORS_EMAIL]
    assert admin_url in sent.body
    assert "ProviderError: <quota>" in sent.body
    assert "ProviderError: &lt;quota&gt;" in html_part(sent)
    assert beacon.fqdn in sent.subject


class Collector:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free local port, with Django's SMTP backend pointed at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    try:
        yield handler
    finally:
        controller.stop()


def test_welcome_mail_over_real_smtp_has_text_html_and_pdf(smtp_server):
    beacon = BeaconFactory()

    row = send_welcome(beacon)

    assert row.status == EmailStatus.SENT
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == [beacon.order.email]
    message = email.message_from_bytes(envelope.original_content, policy=policy.default)
    assert message["Subject"] == f"Your Beacon {beacon.fqdn} is ready"
    assert message["Message-ID"] == row.provider_message_id
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert f"https://{beacon.fqdn}" in text.get_content()
    assert f"https://{beacon.fqdn}" in html.get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "welcome-card.pdf"
    assert attachment.get_content().startswith(b"%PDF-")
