"""The buttons about what the customer holds: the welcome e-mail again, and the PDFs rendered
anew; both services live in provisioning.welcome, and both run in the background."""

from __future__ import annotations

from typing import Any

from django.utils.timezone import localtime

from documents.models import Document
from documents.services import document_kinds_for
from provisioning.beacon_actions.plans import ActionPlan, Outcome, refused, state_subject
from provisioning.checkpoint import Checkpoint
from provisioning.models import Beacon, BeaconStatus, JobKind
from provisioning.welcome import (
    WelcomeResendTooSoon,
    welcome_newest_id,
    welcome_resend_queue,
    welcome_resend_wait,
)
from wopr.lib.queue import task_enqueue_after_commit


def plan_resend_welcome(beacon: Beacon) -> ActionPlan:
    """The welcome e-mail again, as the customer's own "send it again" sends it, in the same
    window (provisioning.welcome): a second click, or a page shown before another resend,
    sends nothing (the subject names the newest welcome e-mail the page saw)."""
    if beacon.status not in (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED):
        return ActionPlan(refusal="it is not ready: its welcome e-mail comes when it is")
    wait = welcome_resend_wait(beacon=beacon)
    if wait:
        return ActionPlan(
            refusal=f"it was sent again moments ago; again in {(wait + 59) // 60} minute(s)"
        )
    kinds = ", ".join(document_kinds_for(beacon))
    makes = [f"one welcome e-mail to {beacon.order.email}, with the PDFs attached ({kinds})"]
    if _account_new(beacon):
        makes.append(
            "a new set-your-password link, fetched from Authentik when it is sent: the link "
            "of the earlier e-mail stops working"
        )
    return ActionPlan(
        summary=f"The welcome e-mail of {beacon.name} is sent again.",
        makes=tuple(makes),
        deletes=("nothing",),
        subject=f"{state_subject(beacon)}/{welcome_newest_id(beacon) or 0}",
        confirm=f"Yes, send the welcome e-mail to {beacon.order.email}",
    )


def _account_new(beacon: Beacon) -> bool:
    job = beacon.jobs.filter(kind=JobKind.PROVISION).first()
    return bool(job and Checkpoint(job.checkpoint).result("account").get("account_new"))


def act_resend_welcome(beacon: Beacon, user: Any) -> Outcome:
    """The e-mail's row first (the page lists it at once), then the task sends it."""
    try:
        welcome_resend_queue(beacon=beacon)
    except WelcomeResendTooSoon as error:  # a race of two clicks: the other one won
        return refused(f"not sent: {error}")
    return Outcome(f"welcome e-mail queued to {beacon.order.email}")


def plan_regenerate_pdfs(beacon: Beacon) -> ActionPlan:
    """Each document kind the Beacon gets is rendered anew; a stored one is replaced."""
    kinds = document_kinds_for(beacon)
    if "custom_domain_guide" in kinds and not beacon.ipv4:
        return ActionPlan(refusal="the custom-domain guide needs the server's address")
    stored = {document.kind: document for document in Document.objects.filter(beacon=beacon)}
    makes = []
    for kind in kinds:
        document = stored.get(kind)
        if document is None:
            makes.append(f"{kind}: made (none stored yet)")
        else:
            made = f"{localtime(document.created_at):%Y-%m-%d %H:%M}"
            makes.append(
                f"{kind}: replaced (the stored {document.size_bytes}-byte PDF, first made {made}, "
                f"sha256 {document.sha256[:12]}…)"
            )
    return ActionPlan(
        summary=f"The PDFs of {beacon.name} are rendered again from today's templates and data.",
        makes=tuple(makes),
        deletes=("the replaced files; e-mails already sent keep the PDFs they carried",),
        kept=("nobody is e-mailed",),
        subject=state_subject(beacon),
        confirm=f"Yes, regenerate the PDFs of {beacon.name}",
    )


def act_regenerate_pdfs(beacon: Beacon, user: Any) -> Outcome:
    """Queued: WeasyPrint takes seconds per PDF, too long for a request (ids only)."""
    task_enqueue_after_commit(
        "provisioning.tasks.beacon_documents_regenerate", str(beacon.pk), group="documents"
    )
    return Outcome("queued: the PDFs are rendered in the background and replace the stored ones")
