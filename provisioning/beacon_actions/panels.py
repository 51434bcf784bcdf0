"""The Beacon page's long lists, bounded: the newest TIMELINE_LIMIT job events, EMAIL_LIMIT
e-mails (with their bodies) and NOTE_LIMIT notes. A Beacon that ran for years has thousands of
events; the page must open in the same time for it as for a new one. Each list is fetched as
limit + 1 rows (never counted) and, when there are more, links to its changelist filtered to
the Beacon. Everything is escaped by construction (html_table, format_html)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from documents.models import EmailMessage
from provisioning.models import Beacon, JobEvent
from wopr.lib.admin import admin_link, html_table
from wopr.notes import NOTE_LIMIT, staff_notes_table

TIMELINE_LIMIT = 200
EMAIL_LIMIT = 20


def badge(value: str, label: str) -> SafeString:
    """A status as a coloured badge: the colour comes from its CSS class (cockpit.css)."""
    return format_html('<span class="cockpit-badge cockpit-badge-{}">{}</span>', value, label)


def see_all(table: SafeString, *, more: bool, limit: int, url: str, what: str) -> SafeString:
    """The table, and when rows were left out, a line saying so with the link to all of them."""
    if not more:
        return table
    return format_html(
        '{}<p class="cockpit-more">The newest {} are shown. <a href="{}">See all {}</a></p>',
        table,
        limit,
        url,
        what,
    )


def _newest(rows: list, limit: int) -> tuple[list, bool]:
    """The first `limit` of limit + 1 rows fetched newest first, oldest first; and whether
    there were more."""
    return rows[:limit][::-1], len(rows) > limit


def beacon_timeline(beacon: Beacon) -> SafeString:
    """The newest TIMELINE_LIMIT events of all the Beacon's jobs, in the order they happened."""
    query = JobEvent.objects.filter(job__beacon=beacon).select_related("job")
    events, more = _newest(list(query.order_by("-at", "-id")[: TIMELINE_LIMIT + 1]), TIMELINE_LIMIT)
    table = html_table(
        ("At", "Job", "Step", "State", "Level", "Message"),
        (
            (
                f"{localtime(event.at):%Y-%m-%d %H:%M:%S}",
                admin_link(event.job, event.job.kind),
                event.step,
                badge(event.state, event.get_state_display()),
                event.level,
                event.message,
            )
            for event in events
        ),
        "No job events yet.",
    )
    url = f"{reverse('admin:provisioning_jobevent_changelist')}?job__beacon={beacon.pk}"
    return see_all(table, more=more, limit=TIMELINE_LIMIT, url=url, what="job events")


def _email_body(email: EmailMessage) -> SafeString | str:
    if not email.body_text:
        return "—"
    return format_html(
        '<details class="cockpit-email-body"><summary>Show</summary><pre>{}</pre></details>',
        email.body_text,
    )


def beacon_emails(beacon: Beacon) -> SafeString:
    """The newest EMAIL_LIMIT e-mails of the Beacon with their stored bodies, oldest first."""
    query = EmailMessage.objects.filter(beacon=beacon).order_by("-created_at", "-id")
    emails, more = _newest(list(query[: EMAIL_LIMIT + 1]), EMAIL_LIMIT)
    table = html_table(
        ("Created", "Template", "To", "Subject", "Status", "Sent", "Body"),
        (
            (
                f"{localtime(email.created_at):%Y-%m-%d %H:%M:%S}",
                admin_link(email, email.template),
                email.recipient,
                email.subject,
                badge(email.status, email.get_status_display()),
                f"{localtime(email.sent_at):%Y-%m-%d %H:%M:%S}" if email.sent_at else "—",
                _email_body(email),
            )
            for email in emails
        ),
        "No e-mails sent for this Beacon.",
    )
    url = f"{reverse('admin:documents_emailmessage_changelist')}?beacon={beacon.pk}"
    return see_all(table, more=more, limit=EMAIL_LIMIT, url=url, what="e-mails")


def beacon_notes(beacon: Beacon) -> SafeString:
    """The newest NOTE_LIMIT notes, newest first (wopr.notes)."""
    return staff_notes_table(limit=NOTE_LIMIT, beacon=beacon)
