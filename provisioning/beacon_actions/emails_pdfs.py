"""The buttons about what the customer holds: the welcome e-mail again, and the PDFs rendered
anew (the one service these buttons add: documents_render keeps a stored file as it is)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.timezone import localtime

from documents.models import Document, EmailMessage
from documents.services import document_kinds_for, document_render
from provisioning.beacon_actions.plans import ActionPlan, state_subject
from provisioning.checkpoint import Checkpoint
from provisioning.models import Beacon, BeaconStatus, JobKind

# The task that sends a welcome e-mail under a key (billing's, named not imported: billing sits
# above provisioning). The customer's own "send it again" uses it too.
WELCOME_TASK = "billing.tasks.welcome_resend"


def plan_resend_welcome(beacon: Beacon) -> ActionPlan:
    """The welcome e-mail again, as the customer's own "send it again" sends it."""
    if beacon.status not in (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED):
        return ActionPlan(refusal="it is not ready: its welcome e-mail comes when it is")
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
        subject=state_subject(beacon),
        confirm=f"Yes, send the welcome e-mail to {beacon.order.email}",
    )


def _account_new(beacon: Beacon) -> bool:
    job = beacon.jobs.filter(kind=JobKind.PROVISION).first()
    return bool(job and Checkpoint(job.checkpoint).result("account").get("account_new"))


def act_resend_welcome(beacon: Beacon, user: Any) -> str:
    """The e-mail's row first (the page lists it at once), then the task sends it."""
    from wopr.lib.queue import task_enqueue_after_commit

    key = f"welcome-staff:{beacon.pk}:{int(timezone.now().timestamp())}"
    defaults = {"template": "welcome", "recipient": beacon.order.email, "order": beacon.order}
    try:
        with transaction.atomic():
            EmailMessage.objects.create(idempotency_key=key, beacon=beacon, **defaults)
    except IntegrityError:  # a double click within the second
        return "already queued a moment ago"
    task_enqueue_after_commit(WELCOME_TASK, str(beacon.pk), key, group="emails")
    return f"welcome e-mail queued to {beacon.order.email}"


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
                f"{kind}: replaced (the stored {document.size_bytes}-byte PDF of {made}, "
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


def beacon_documents_regenerate(*, beacon: Beacon) -> list[str]:
    """Render every document of the Beacon again, replacing the stored files.

    document_render keeps a stored file whose checksum matches; forgetting the checksum first
    sends it down its own crash-safe replace path (temp file, row locked, file moved). A render
    that fails rolls the forgetting back, so the old file and row stay as they were."""
    kinds = document_kinds_for(beacon)
    for kind in kinds:
        with transaction.atomic():
            Document.objects.filter(beacon=beacon, kind=kind).update(sha256="")
            document_render(beacon=beacon, kind=kind)
    return kinds


def act_regenerate_pdfs(beacon: Beacon, user: Any) -> str:
    return f"regenerated {', '.join(beacon_documents_regenerate(beacon=beacon))}"
