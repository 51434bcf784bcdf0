"""The end of the provision workflow: the Beacon's PDFs and the welcome e-mail (also sent again
when a customer asks, billing.selfservice, or staff press "Resend welcome"; the PDFs rendered
anew when staff press "Regenerate PDFs"), and how a step waits on an e-mail."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import account_welcome_context
from documents.emails import STALE_SENDING_AFTER, email_send_once
from documents.models import Document, EmailMessage, EmailStatus
from documents.services import (
    custom_domain,
    document_attachments,
    document_kinds_for,
    document_render,
)
from provisioning.checkpoint import Checkpoint
from provisioning.jobs import Done, Wait
from provisioning.models import Beacon, Job, JobKind
from wopr.lib.queue import task_enqueue_after_commit

# The wall clock of the resend window (tests move it).
clock = time.time


def step_render_documents(job: Job) -> Done:
    """Render the Beacon's PDFs (idempotent: a stored, unaltered file is kept)."""
    beacon = job.beacon  # loaded with the job (jobs.STEP_RELATED)
    kinds = [document_render(beacon=beacon, kind=kind).kind for kind in document_kinds_for(beacon)]
    return Done({"documents": kinds}, f"rendered {', '.join(kinds)}")


def step_send_welcome(job: Job) -> Done | Wait:
    """The welcome e-mail, once, with every document of the Beacon attached: the welcome card,
    and the custom-domain guide when the order has a custom domain."""
    message = welcome_send(beacon=job.beacon, key=f"welcome:{job.beacon_id}", job=job)
    return email_outcome(message, "welcome")


def welcome_send(*, beacon: Beacon, key: str, job: Job | None = None) -> EmailMessage:
    """Send the welcome e-mail under `key` (once per key). The account paragraph follows what
    the provision job found (`job`, else the Beacon's provision job): a set-your-password link,
    fetched only when the e-mail is rendered for sending and never stored, for an account
    that purchase made."""
    return email_send_once(
        key=key,
        template="welcome",
        to=beacon.order.email,
        context={
            "beacon": beacon,
            "order": beacon.order,
            "bundle": beacon.bundle,
            "tier": beacon.tier,
            "url": f"https://{beacon.fqdn}",
            "custom_domain": custom_domain(beacon),
            **_welcome_account(beacon, job),
        },
        beacon=beacon,
        order=beacon.order,
        attachments=document_attachments(beacon),
    )


def _welcome_account(beacon: Beacon, job: Job | None) -> dict[str, Any]:
    if job is None:
        job = beacon.jobs.filter(kind=JobKind.PROVISION).first()
    account = Checkpoint(job.checkpoint).result("account") if job else {}
    return account_welcome_context(
        beacon=beacon,
        new=bool(account.get("account_new")),
        user_pk=str(account.get("authentik_user_pk") or ""),
    )


def email_outcome(message: EmailMessage, template: str) -> Done | Wait:
    """Done once the e-mail is sent. Otherwise another worker is sending it, or one crashed
    mid-send: look again once that claim goes stale (email_send_once then sends it)."""
    if message.status != EmailStatus.SENT:
        return Wait(timezone.now() + STALE_SENDING_AFTER, f"{template} e-mail is {message.status}")
    return Done({"email": message.pk}, f"{template} e-mail sent")


# --- the welcome e-mail again: one per window, whoever asks --------------------------------


class WelcomeResendTooSoon(Exception):
    """The welcome e-mail was queued again in this window; `retry_after` seconds to the next."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the welcome e-mail was sent again moments ago; next in {retry_after}s")
        self.retry_after = retry_after


def _resend_window(beacon: Beacon, now: float) -> tuple[str, int]:
    """The key of the window `now` falls in, and the seconds left in it."""
    period = settings.WELCOME_RESEND_MINUTES * 60
    return f"welcome-resend:{beacon.pk}:{int(now // period)}", max(1, int(period - now % period))


def welcome_resend_wait(*, beacon: Beacon, now: float | None = None) -> int:
    """Seconds until the welcome e-mail may be sent again (0: now)."""
    key, left = _resend_window(beacon, clock() if now is None else now)
    return left if EmailMessage.objects.filter(idempotency_key=key).exists() else 0


def welcome_resend_queue(*, beacon: Beacon, now: float | None = None) -> str:
    """Queue the welcome e-mail to the order's address again; its key.

    At most one per WELCOME_RESEND_MINUTES window and Beacon, whoever asks (the customer's
    "send it again" and staff's button share the window): each one mints a new
    set-your-password link, killing the last. The window's e-mail row is claimed by its unique
    key, so a second request in the window, or a race of two, gets WelcomeResendTooSoon."""
    key, left = _resend_window(beacon, clock() if now is None else now)
    defaults = {"template": "welcome", "recipient": beacon.order.email, "order": beacon.order}
    try:
        with transaction.atomic():
            EmailMessage.objects.create(idempotency_key=key, beacon=beacon, **defaults)
    except IntegrityError:
        raise WelcomeResendTooSoon(left) from None
    task_enqueue_after_commit(
        "provisioning.tasks.welcome_resend", str(beacon.pk), key, group="emails"
    )
    return key


def welcome_newest_id(beacon: Beacon) -> int | None:
    """The newest welcome e-mail row of the Beacon (a page that saw another is stale)."""
    rows = EmailMessage.objects.filter(beacon=beacon, template="welcome")
    return rows.order_by("-created_at", "-id").values_list("pk", flat=True).first()


# --- the PDFs anew -----------------------------------------------------------------------------


def beacon_documents_regenerate(*, beacon: Beacon) -> list[str]:
    """Render every document of the Beacon again, replacing the stored files (a task's work:
    WeasyPrint takes seconds per PDF). Run twice, it replaces them twice: one row per kind.

    document_render keeps a stored file whose checksum matches; forgetting the checksum first
    sends it down its own crash-safe replace path (temp file, row locked, file moved). A render
    that fails rolls the forgetting back, so the old file and row stay as they were."""
    kinds = document_kinds_for(beacon)
    for kind in kinds:
        with transaction.atomic():
            Document.objects.filter(beacon=beacon, kind=kind).update(sha256="")
            document_render(beacon=beacon, kind=kind)
    return kinds
