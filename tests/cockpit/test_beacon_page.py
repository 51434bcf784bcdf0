"""The Beacon page shows what staff need before acting: status badges coloured by CSS class, the
provider console link, DNS, documents, e-mails with their bodies (never a one-time link),
snapshots, notes; and notes on the customer's page too."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dns.models import DnsRecord
from documents.emails import NOT_STORED, email_send_once
from documents.models import Document, DocumentKind, EmailMessage
from provisioning.beacon_actions import provider_console_url
from provisioning.models import Beacon, BeaconStatus, Provider
from tests.test_admin import make_beacon, make_job
from wopr.models import StaffAction, StaffNote

pytestmark = pytest.mark.django_db

ONE_TIME = "https://authentik.test/if/flow/recovery/?flow_token=one-time-secret"


def page(client: Client, beacon: Beacon) -> str:
    response = client.get(reverse("admin:provisioning_beacon_change", args=[beacon.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_statuses_are_badges_coloured_by_css_class_with_no_inline_style(admin_client):
    beacon = make_beacon(status=BeaconStatus.FAILED)
    make_job(beacon, state="failed", step="create_server")

    content = page(admin_client, beacon)

    assert '<span class="cockpit-badge cockpit-badge-failed">Failed</span>' in content
    assert content.count("cockpit-badge-failed") >= 2  # the Beacon and its job
    assert "wopr/cockpit.css" in content
    actions = content.split('<section class="cockpit-actions"')[1].split("</section>")[0]
    assert ">Retry</a>" in actions
    assert "style=" not in actions


@pytest.mark.parametrize(
    ("kind", "server_id", "url"),
    [
        ("digitalocean", "3164444", "https://cloud.digitalocean.com/droplets/3164444"),
        ("hetzner", "42", "https://console.hetzner.cloud/projects"),
        ("fake", "", ""),
    ],
)
def test_the_console_link_goes_to_the_providers_page_of_the_server(kind, server_id, url):
    provider, _ = Provider.objects.get_or_create(name=kind, defaults={"kind": kind})
    beacon = make_beacon(provider=provider, provider_server_id=server_id)

    assert provider_console_url(beacon) == url


def test_the_hetzner_link_names_the_project_when_it_is_configured(settings):
    settings.HETZNER_PROJECT_ID = "1234"
    provider, _ = Provider.objects.get_or_create(name="hetzner", defaults={"kind": "hetzner"})
    beacon = make_beacon(provider=provider, provider_server_id="42")

    assert provider_console_url(beacon) == "https://console.hetzner.cloud/projects/1234/servers/42"


def test_a_fake_server_links_to_its_admin_page(admin_client):
    beacon = make_beacon(provider_server_id="7")

    content = page(admin_client, beacon)

    assert f'href="{reverse("admin:provisioning_fakeserver_change", args=["7"])}"' in content
    assert "Open at fake (server 7)" in content


def test_dns_documents_snapshots_and_emails_with_their_bodies_are_on_the_page(admin_client):
    beacon = make_beacon(status=BeaconStatus.ACTIVE)
    DnsRecord.objects.create(beacon=beacon, record_type="A", name=beacon.fqdn, content="192.0.2.9")
    document = Document.objects.create(
        beacon=beacon, kind=DocumentKind.WELCOME_CARD, path="x.pdf", sha256="0" * 64, size_bytes=1
    )
    EmailMessage.objects.create(
        idempotency_key="welcome:page",
        template="welcome",
        recipient="a@example.com",
        beacon=beacon,
        status="sent",
        body_text="Hello <Ada>,\nyour Beacon is ready",
    )

    content = page(admin_client, beacon)

    assert "192.0.2.9" in content
    assert reverse("admin:documents_document_download", args=[document.pk]) in content
    assert "Hello &lt;Ada&gt;,\nyour Beacon is ready" in content
    assert '<span class="cockpit-badge cockpit-badge-sent">Sent</span>' in content
    assert "No snapshots yet." in content


def test_every_button_the_user_may_press_is_on_the_page(admin_client):
    beacon = make_beacon(status=BeaconStatus.ACTIVE)

    content = page(admin_client, beacon)

    for label in (
        "Retry",
        "Cancel job",
        "Suspend",
        "Resume",
        "Power on for export",
        "Resize",
        "Restore snapshot",
        "Resend welcome",
        "Regenerate PDFs",
        "Decommission",
    ):
        assert f">{label}</" in content, label
    assert "Add a note" in content


# --- e-mail bodies: stored for staff, never with the one-time link ---------------------------


class OneTimeLink:
    """Like accounts' LinkAtSend: a value fetched only when the template shows it."""

    def __call__(self) -> str:
        return ONE_TIME


def test_an_email_body_is_stored_with_its_one_time_link_replaced(mailoutbox):
    beacon = make_beacon(status=BeaconStatus.ACTIVE)
    context = {
        "beacon": beacon,
        "order": beacon.order,
        "bundle": beacon.bundle,
        "tier": beacon.tier,
        "url": f"https://{beacon.fqdn}",
        "custom_domain": "",
        "account": {"new": True, "email": "a@example.com", "set_password_url": OneTimeLink()},
    }

    row = email_send_once(
        key="welcome:body", template="welcome", to="a@example.com", context=context
    )

    (sent,) = mailoutbox
    assert ONE_TIME in sent.body
    row.refresh_from_db()
    assert ONE_TIME not in row.body_text
    assert NOT_STORED in row.body_text
    assert "your Beacon is ready" in row.body_text


# --- notes on the customer's page ------------------------------------------------------------


def test_a_note_is_added_on_the_customer_page_and_signed(admin_user):
    beacon = make_beacon()
    customer = beacon.owner
    user = get_user_model().objects.create_user(username="ops-notes", is_staff=True)
    user.groups.add(Group.objects.get(name="operations"))
    client = Client()
    client.force_login(user)
    url = reverse("admin:billing_customer_change", args=[customer.pk])
    form = client.get(url).content.decode()
    assert 'name="staff_notes-0-body"' in form

    response = client.post(
        url,
        {
            "email": customer.email,
            "name": customer.name,
            "orders-TOTAL_FORMS": "1",
            "orders-INITIAL_FORMS": "1",
            "orders-MIN_NUM_FORMS": "0",
            "orders-MAX_NUM_FORMS": "0",
            "orders-0-id": str(beacon.order_id),
            "orders-0-customer": str(customer.pk),
            "staff_notes-TOTAL_FORMS": "1",
            "staff_notes-INITIAL_FORMS": "0",
            "staff_notes-MIN_NUM_FORMS": "0",
            "staff_notes-MAX_NUM_FORMS": "1000",
            "staff_notes-0-body": "Prefers e-mail",
            "staff_notes-0-customer": str(customer.pk),
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    note = StaffNote.objects.get(customer=customer)
    assert (note.body, note.author, note.author_name) == ("Prefers e-mail", user, "ops-notes")
    assert StaffAction.objects.filter(action="customer.note", user=user).exists()
    assert "Prefers e-mail" in client.get(url).content.decode()
    assert timezone.now() >= note.created_at
