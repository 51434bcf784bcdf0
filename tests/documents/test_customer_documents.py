"""What a customer receives: the PDFs' footer and paper size, the custom-domain guide in the
welcome e-mail, the support address (never the operators') and a truthful failure e-mail."""

from __future__ import annotations

import email
import io
import uuid
from email import policy

import httpx
import pytest
from django.core import mail
from django.template.loader import render_to_string
from pypdf import PdfReader

from billing.simulation import checkout_completed_event, encode, sign
from documents import services
from documents.checks import check_customer_documents
from documents.models import DocumentKind
from documents.services import document_path, document_render
from provisioning.faults import fault_inject
from provisioning.models import Beacon
from tests.factories import BeaconFactory, OrderFactory
from tests.vendor_spec import mock_server

pytestmark = pytest.mark.django_db

SUPPORT = "help@wopr.example"
OPERATORS = "alerts@ops.wopr.example"
WEBHOOK = "/api/webhook/stripe"
# Points per millimetre, and the two paper sizes in points (width, height).
MM = 72 / 25.4
A4 = (210 * MM, 297 * MM)
LETTER = (8.5 * 72, 11 * 72)


@pytest.fixture
def addresses(settings):
    settings.SUPPORT_EMAIL = SUPPORT
    settings.OPERATORS_EMAIL = OPERATORS
    return settings


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks, settings):
    """POST a signed event to the webhook and run the work it enqueues (tasks run inline)."""

    def _deliver(event):
        payload = encode(event)
        signature = sign(payload, settings.STRIPE_TEST_WEBHOOK_SECRET)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                WEBHOOK, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
            )
        assert response.status_code == 200
        return response

    return _deliver


def pages_text(data: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def page_sizes(data: bytes) -> set[tuple[float, float]]:
    reader = PdfReader(io.BytesIO(data))
    return {
        (round(float(p.mediabox.width), 1), round(float(p.mediabox.height), 1))
        for p in reader.pages
    }


def rendered(beacon, kind) -> bytes:
    return document_path(document_render(beacon=beacon, kind=kind)).read_bytes()


# --- PDFs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [DocumentKind.WELCOME_CARD, DocumentKind.CUSTOM_DOMAIN_GUIDE])
def test_every_page_footer_names_the_beacon_the_page_of_pages_and_the_support_address(
    addresses, kind
):
    beacon = BeaconFactory(
        order=OrderFactory(custom_domain="cloud.example.org"),
        ipv4="198.51.100.7",
        ipv6="2001:db8:42::1",
    )

    pages = pages_text(rendered(beacon, kind))

    for number, text in enumerate(pages, start=1):
        assert f"Beacon {beacon.fqdn}" in text
        assert f"page {number} of {len(pages)}" in text
        assert f"Support: {SUPPORT}" in text


def test_pdfs_name_the_support_address_and_never_the_operators_alert_address(settings):
    settings.OPERATORS_EMAIL = OPERATORS
    beacon = BeaconFactory(order=OrderFactory(custom_domain="cloud.example.org"))

    for kind in (DocumentKind.WELCOME_CARD, DocumentKind.CUSTOM_DOMAIN_GUIDE):
        text = "\n".join(pages_text(rendered(beacon, kind)))
        assert settings.SUPPORT_EMAIL == "support@localhost"  # the embedded run's default
        assert "support@localhost" in text
        assert OPERATORS not in text


@pytest.mark.parametrize(("setting", "size"), [("A4", A4), ("Letter", LETTER), ("letter", LETTER)])
def test_page_size_follows_documents_page_size(settings, setting, size):
    settings.DOCUMENTS_PAGE_SIZE = setting
    beacon = BeaconFactory(order=OrderFactory(custom_domain="cloud.example.org"))

    for kind in (DocumentKind.WELCOME_CARD, DocumentKind.CUSTOM_DOMAIN_GUIDE):
        assert page_sizes(rendered(beacon, kind)) == {(round(size[0], 1), round(size[1], 1))}


def test_no_order_text_reaches_the_stylesheet():
    """The footer used to be a CSS string holding the custom domain; now the footer's text
    comes from the document body, and the stylesheet holds no order or Beacon text."""
    beacon = BeaconFactory(order=OrderFactory(custom_domain="cloud.example.org"))
    context = {**services._context(beacon, DocumentKind.CUSTOM_DOMAIN_GUIDE), "page_size": "A4"}

    html = render_to_string(services.TEMPLATES[DocumentKind.CUSTOM_DOMAIN_GUIDE], context)

    stylesheet = html[html.index("<style>") : html.index("</style>")]
    assert "cloud.example.org" not in stylesheet
    assert beacon.fqdn not in stylesheet
    assert "size: A4;" in stylesheet


# --- system checks ------------------------------------------------------------------------------


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_check_accepts_a4_letter_and_a_support_address(settings):
    settings.SUPPORT_EMAIL = SUPPORT
    for value in ("A4", "a4", "Letter", "LETTER"):
        settings.DOCUMENTS_PAGE_SIZE = value
        assert check_customer_documents() == []


def test_check_refuses_another_page_size_naming_the_variable(settings):
    settings.SUPPORT_EMAIL = SUPPORT
    settings.DOCUMENTS_PAGE_SIZE = "A5"

    messages = check_customer_documents()

    assert ids(messages) == ["documents.E001"]
    assert "DOCUMENTS_PAGE_SIZE" in messages[0].msg
    assert messages[0].is_serious()


@pytest.mark.parametrize(
    "value", ["", "not an address", "a@example.com, b@example.com", "a@example.com\r\nBcc: x@y.z"]
)
def test_check_refuses_a_support_email_that_is_not_one_address(settings, value):
    settings.SUPPORT_EMAIL = value

    messages = check_customer_documents()

    assert ids(messages) == ["documents.E002"]
    assert "SUPPORT_EMAIL" in messages[0].msg
    assert not value or value not in messages[0].msg


def test_check_warns_about_the_embedded_support_address_only_in_production(settings):
    settings.SUPPORT_EMAIL = "support@localhost"
    settings.DEBUG = True
    assert check_customer_documents() == []

    settings.DEBUG = False
    messages = check_customer_documents()
    assert ids(messages) == ["documents.W001"]
    assert not messages[0].is_serious()


def test_manage_py_check_reports_a_bad_page_size(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.DOCUMENTS_PAGE_SIZE = "tabloid"
    with pytest.raises(SystemCheckError, match=r"documents\.E001"):
        call_command("check")


# --- e-mails through the real flow -------------------------------------------------------------


def test_custom_domain_order_gets_the_guide_attached_to_the_welcome_email(addresses, deliver):
    deliver(checkout_completed_event(beacon_name="dom1", custom_domain="Cloud.Example.org."))

    beacon = Beacon.objects.get(name="dom1")
    [welcome] = mail.outbox
    names = [name for name, _content, _mimetype in welcome.attachments]
    assert names == ["dom1-welcome-card.pdf", "dom1-custom-domain-guide.pdf"]
    assert {mimetype for _name, _content, mimetype in welcome.attachments} == {"application/pdf"}
    guide = "\n".join(pages_text(welcome.attachments[1][1]))
    assert "*.cloud.example.org" in guide
    assert beacon.ipv4 in guide
    assert "custom-domain guide is attached" in welcome.body
    assert "where you registered cloud.example.org" in welcome.body
    assert "custom-domain guide" in welcome.alternatives[0][0]


def test_order_without_custom_domain_gets_only_the_welcome_card(addresses, deliver):
    deliver(checkout_completed_event(beacon_name="dom2"))

    [welcome] = mail.outbox
    assert [name for name, _c, _m in welcome.attachments] == ["dom2-welcome-card.pdf"]
    assert "custom-domain guide" not in welcome.body


def test_welcome_email_replies_go_to_support_and_name_it(addresses, deliver):
    deliver(checkout_completed_event(beacon_name="dom3"))

    [welcome] = mail.outbox
    assert welcome.reply_to == [SUPPORT]
    assert SUPPORT in welcome.body
    assert SUPPORT in welcome.alternatives[0][0]
    assert OPERATORS not in welcome.body
    card = "\n".join(pages_text(welcome.attachments[0][1]))
    assert SUPPORT in card
    assert OPERATORS not in card


def test_failed_purchase_tells_the_customer_they_paid_and_what_happens_next(addresses, deliver):
    fault_inject("dns.upsert", "permanent", message="zone refused the record")

    deliver(checkout_completed_event(beacon_name="sad1", email="sad@example.com"))

    customer = next(m for m in mail.outbox if m.to == ["sad@example.com"])
    operators = next(m for m in mail.outbox if m.to == [OPERATORS])
    html = customer.alternatives[0][0]
    for body in (customer.body, html):
        assert "not be charged" not in body
        assert "We have received your payment." in body
        assert "set up your Beacon again" in body
        assert "refund your payment" in body
        assert SUPPORT in body
        assert OPERATORS not in body
        assert "zone refused" not in body
    assert customer.reply_to == [SUPPORT]
    assert operators.reply_to == []


def test_failure_email_during_a_trial_says_nothing_was_charged(addresses):
    from documents.emails import email_send_once

    beacon = BeaconFactory(order=OrderFactory(subscription_status="trialing"))
    email_send_once(
        key=f"provisioning_failed_customer:{beacon.pk}",
        template="provisioning_failed_customer",
        to=beacon.order.email,
        context={"beacon": beacon, "order": beacon.order},
        beacon=beacon,
    )

    [sent] = mail.outbox
    assert "you have not been charged yet" in sent.body
    assert "received your payment" not in sent.body
    assert "refund" not in sent.body


# --- end to end over SMTP, to the mock servers' SMTP sink ----------------------------------------

MAIL_API = "http://127.0.0.1:1080"


@pytest.fixture
def smtp_sink(settings):
    """Django's SMTP backend pointed at ../shared/mocks' SMTP sink (started if need be)."""
    mock_server(f"{MAIL_API}/health")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = 1025
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    return MAIL_API


def sink_message(api: str, recipient: str) -> email.message.EmailMessage:
    """The one message the sink holds for `recipient` (unique per test; the sink is shared, so
    it is never cleared)."""
    listed = [
        m for m in httpx.get(f"{api}/messages", timeout=5).json() if recipient in m["rcpt_tos"]
    ]
    assert len(listed) == 1, listed
    raw = httpx.get(f"{api}/messages/{listed[0]['id']}", timeout=5).content
    return email.message_from_bytes(raw, policy=policy.default)


def test_welcome_with_guide_over_real_smtp_reaches_the_sink_with_reply_to_and_both_pdfs(
    addresses, deliver, smtp_sink
):
    recipient = f"smtp-{uuid.uuid4().hex[:12]}@example.com"

    deliver(
        checkout_completed_event(
            beacon_name="smtp1", email=recipient, custom_domain="cloud.example.org"
        )
    )

    beacon = Beacon.objects.get(name="smtp1")
    message = sink_message(smtp_sink, recipient)
    assert message["Reply-To"] == SUPPORT
    assert message["Subject"] == f"Your Beacon {beacon.fqdn} is ready"
    assert SUPPORT in message.get_body(preferencelist=("plain",)).get_content()
    attachments = {part.get_filename(): part for part in message.iter_attachments()}
    assert sorted(attachments) == ["smtp1-custom-domain-guide.pdf", "smtp1-welcome-card.pdf"]
    guide = pages_text(attachments["smtp1-custom-domain-guide.pdf"].get_content())
    assert "cloud.example.org" in "\n".join(guide)
    assert f"page 1 of {len(guide)}" in guide[0]
    card = pages_text(attachments["smtp1-welcome-card.pdf"].get_content())
    assert f"Support: {SUPPORT}" in card[0]
    assert message["To"] == recipient
