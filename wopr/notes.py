"""Notes staff leave on a Beacon or a customer: the one way to add one, shared by both pages.

Notes are add-only (never edited or deleted), signed with the staff member's name (kept when
the user is deleted), and each is recorded once in the audit trail. Targets are passed in, so
this module imports no app (wopr sits beside them; see pyproject's import layers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from wopr.audit import staff_action_record
from wopr.lib.admin import html_table
from wopr.models import StaffNote

NOTE_MAX_CHARS = 5000
# Notes shown on a Beacon's or a customer's page before the "see all" link.
NOTE_LIMIT = 50


@dataclass(frozen=True)
class NoteOutcome:
    """What became of a note: added (`ok`) or refused, in a sentence for the staff member."""

    ok: bool
    text: str


def staff_note_add(
    *,
    user: Any,
    body: str,
    beacon: models.Model | None = None,
    customer: models.Model | None = None,
) -> NoteOutcome:
    """Add a note to exactly one of `beacon` or `customer` and record it (as `beacon.note` or
    `customer.note`). An empty note is refused; a long one is cut at NOTE_MAX_CHARS."""
    if (beacon is None) == (customer is None):
        raise ValueError("a note is on a Beacon or on a customer, not both or neither")
    text = body.strip()
    if not text:
        return NoteOutcome(ok=False, text="not added: the note is empty")
    note = StaffNote.objects.create(
        beacon=beacon,
        customer=customer,
        author=user,
        author_name=user.get_username(),
        body=text[:NOTE_MAX_CHARS],
    )
    staff_action_record(
        user=user,
        action="beacon.note" if beacon is not None else "customer.note",
        target=beacon if beacon is not None else customer,
        outcome="note added",
        detail={"note": note.pk},
    )
    return NoteOutcome(ok=True, text="note added")


def staff_notes_newest(*, limit: int, **target: models.Model) -> tuple[list[StaffNote], bool]:
    """The newest `limit` notes on the target (beacon= or customer=), and whether there are
    more (fetched as limit + 1, never counted)."""
    rows = list(StaffNote.objects.filter(**target).order_by("-created_at", "-id")[: limit + 1])
    return rows[:limit], len(rows) > limit


def staff_notes_table(*, limit: int, **target: models.Model) -> SafeString:
    """The newest `limit` notes as a table (escaped), with a "see all" link to the notes'
    changelist filtered to the target when there are more."""
    notes, more = staff_notes_newest(limit=limit, **target)
    table = html_table(
        ("At", "By", "Note"),
        ((f"{localtime(n.created_at):%Y-%m-%d %H:%M}", n.author_name, n.body) for n in notes),
        "No notes yet.",
    )
    if not more:
        return table
    ((name, obj),) = target.items()
    url = f"{reverse('admin:wopr_staffnote_changelist')}?{name}={obj.pk}"
    return format_html(
        '{}<p class="cockpit-more">The newest {} are shown. <a href="{}">See all notes</a></p>',
        table,
        limit,
        url,
    )


def staff_note_view(
    model_admin: Any, request: HttpRequest, *, back_url: str, **target: models.Model
) -> HttpResponse:
    """The POST of a page's note form: add the note (wopr.add_staffnote, and the right to see
    the page), say what came of it, and go back to the page. Never edits the target itself, so
    support, who may not change a customer, can still write notes on one."""
    ((_, obj),) = target.items()
    can_see = model_admin.has_view_permission(request, obj)
    if not can_see or not request.user.has_perm("wopr.add_staffnote"):
        raise PermissionDenied
    if request.method != "POST":
        raise Http404("notes are added with the form on the page")
    body = request.POST.get("body", "")
    outcome = staff_note_add(user=request.user, body=body, **target)  # type: ignore[arg-type]
    level = messages.SUCCESS if outcome.ok else messages.WARNING
    model_admin.message_user(request, f"Note: {outcome.text}", level)
    return HttpResponseRedirect(back_url)
