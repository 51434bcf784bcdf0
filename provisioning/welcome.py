"""The end of the provision workflow: the Beacon's PDFs and the welcome e-mail (also sent again
when a customer asks, billing.selfservice), and how a step waits on an e-mail."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from accounts.services import account_welcome_context
from documents.emails import STALE_SENDING_AFTER, email_send_once
from documents.models import EmailMessage, EmailStatus
from documents.services import (
    custom_domain,
    document_attachments,
    document_kinds_for,
    document_render,
)
from provisioning.checkpoint import Checkpoint
from provisioning.jobs import Done, Wait
from provisioning.models import Beacon, Job, JobKind


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
