"""The Beacon page shows what staff need before acting: status badges coloured by CSS class, the
provider console link, DNS, documents, e-mails with their bodies (never a one-time link),
snapshots, notes; the long lists bounded, with a link to all."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dns.models import DnsRecord
from documents.emails import NOT_STORED, email_send_once
from documents.models import Document, DocumentKind, EmailMessage
from provisioning.beacon_actions import provider_console_url
from provisioning.beacon_actions.panels import EMAIL_LIMIT, NOTE_LIMIT, TIMELINE_LIMIT
from provisioning.models import Beacon, BeaconStatus, JobEvent, Provider
from tests.test_admin import make_beacon, make_job
from wopr.models import StaffNote

# Measured 2026-12-05 (SQLite and PostgreSQL): every panel is one bounded query; the buttons'
# plans look at the latest job more than once (bounded, not per row).
BEACON_PAGE_MAX_QUERIES = 25

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


# --- long lists are bounded, with a link to all -------------------------------------------


def _fill(beacon: Beacon, events: int, emails: int, notes: int) -> None:
    """`events` job events, `emails` e-mails and `notes` notes, numbered oldest first."""
    job = make_job(beacon)
    JobEvent.objects.bulk_create(
        JobEvent(job=job, step="s", state=job.state, message=f"event-{i:04}") for i in range(events)
    )
    EmailMessage.objects.bulk_create(
        EmailMessage(
            idempotency_key=f"bound:{beacon.pk}:{i}",
            template="welcome",
            recipient="a@example.com",
            beacon=beacon,
            subject=f"mail-{i:04}",
        )
        for i in range(emails)
    )
    StaffNote.objects.bulk_create(
        StaffNote(beacon=beacon, author_name="ada", body=f"note-{i:04}") for i in range(notes)
    )


def test_the_page_shows_the_newest_events_emails_and_notes_and_links_to_all(admin_client):
    beacon = make_beacon(status=BeaconStatus.ACTIVE)
    _fill(beacon, events=TIMELINE_LIMIT + 5, emails=EMAIL_LIMIT + 5, notes=NOTE_LIMIT + 5)

    content = page(admin_client, beacon)

    newest_event, newest_mail, newest_note = (
        f"event-{TIMELINE_LIMIT + 4:04}",
        f"mail-{EMAIL_LIMIT + 4:04}",
        f"note-{NOTE_LIMIT + 4:04}",
    )
    assert newest_event in content and "event-0004" not in content and "event-0005" in content
    assert newest_mail in content and "mail-0004" not in content and "mail-0005" in content
    assert newest_note in content and "note-0004" not in content and "note-0005" in content
    assert content.count("cockpit-more") == 3
    events_url = f"{reverse('admin:provisioning_jobevent_changelist')}?job__beacon={beacon.pk}"
    mails_url = f"{reverse('admin:documents_emailmessage_changelist')}?beacon={beacon.pk}"
    notes_url = f"{reverse('admin:wopr_staffnote_changelist')}?beacon={beacon.pk}"
    for url, newest, oldest, limit in (
        (events_url, newest_event, "event-0000", TIMELINE_LIMIT),
        (mails_url, newest_mail, "mail-0000", EMAIL_LIMIT),
        (notes_url, newest_note, "note-0000", NOTE_LIMIT),
    ):
        assert f'href="{url}"' in content
        listed = admin_client.get(url)
        assert listed.status_code == 200, url
        assert newest in listed.content.decode() or oldest in listed.content.decode()
        assert listed.context["cl"].result_count > limit, url  # it reaches what the page left


@pytest.mark.parametrize(
    ("changelist", "param", "mine", "theirs"),
    [
        ("admin:provisioning_jobevent_changelist", "job__beacon", "event-0000", "event-other"),
        ("admin:documents_emailmessage_changelist", "beacon", "mail-0000", "mail-other"),
        ("admin:wopr_staffnote_changelist", "beacon", "note-0000", "note-other"),
    ],
)
def test_the_see_all_links_filter_to_the_beacon(admin_client, changelist, param, mine, theirs):
    beacon, other = make_beacon(), make_beacon()
    _fill(beacon, events=1, emails=1, notes=1)
    JobEvent.objects.create(job=make_job(other), step="s", state="queued", message="event-other")
    EmailMessage.objects.create(
        idempotency_key="other", template="welcome", beacon=other, subject="mail-other"
    )
    StaffNote.objects.create(beacon=other, author_name="bo", body="note-other")

    response = admin_client.get(reverse(changelist), {param: str(beacon.pk)})

    assert response.status_code == 200
    assert mine in response.content.decode()
    assert theirs not in response.content.decode()


def test_at_the_bound_nothing_is_left_out_and_no_link_is_shown(admin_client):
    beacon = make_beacon(status=BeaconStatus.ACTIVE)
    _fill(beacon, events=TIMELINE_LIMIT, emails=EMAIL_LIMIT, notes=NOTE_LIMIT)

    content = page(admin_client, beacon)

    assert "event-0000" in content and "mail-0000" in content and "note-0000" in content
    assert "cockpit-more" not in content


def _page_queries(client: Client, beacon: Beacon) -> int:
    url = reverse("admin:provisioning_beacon_change", args=[beacon.pk])
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_page_costs_the_same_queries_however_long_the_beacons_history(admin_client):
    short = make_beacon(status=BeaconStatus.ACTIVE)
    _fill(short, events=1, emails=1, notes=1)
    long = make_beacon(status=BeaconStatus.ACTIVE)
    _fill(long, events=TIMELINE_LIMIT * 3, emails=EMAIL_LIMIT * 3, notes=NOTE_LIMIT * 3)
    _page_queries(admin_client, short)  # the session and content types are warm, as for staff

    queries = _page_queries(admin_client, short)

    assert queries == _page_queries(admin_client, long)
    assert queries <= BEACON_PAGE_MAX_QUERIES
