"""The buttons as one registry (ACTIONS: label, permission, plan, act), running one with its
audit record, what the page shows (the buttons a user may press, the provider console link),
and the two admin views: the confirmation page of a button and the note form (wopr.notes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from provisioning.beacon_actions.emails_pdfs import (
    act_regenerate_pdfs,
    act_resend_welcome,
    plan_regenerate_pdfs,
    plan_resend_welcome,
)
from provisioning.beacon_actions.plans import (
    BeaconAction,
    Outcome,
    act_cancel,
    act_export,
    act_resize,
    act_retry,
    plan_cancel,
    plan_decommission,
    plan_export,
    plan_resize,
    plan_restore,
    plan_resume,
    plan_retry,
    plan_suspend,
    refused,
    service_outcome,
)
from provisioning.models import Beacon
from provisioning.services import (
    beacon_staff_decommission_now,
    beacon_staff_resume,
    beacon_staff_suspend,
)
from wopr.audit import staff_action_record
from wopr.notes import staff_note_view


def _staff(service: Callable[..., str]) -> Callable[[Beacon, Any], Outcome]:
    return lambda beacon, user: service_outcome(service(beacon=beacon, requested_by=user))


ACTIONS: dict[str, BeaconAction] = {
    action.name: action
    for action in (
        BeaconAction("retry", "Retry", "wopr.retry_job", plan_retry, act_retry),
        BeaconAction("cancel", "Cancel job", "wopr.cancel_job", plan_cancel, act_cancel),
        BeaconAction(
            "suspend", "Suspend", "wopr.suspend_beacon", plan_suspend, _staff(beacon_staff_suspend)
        ),
        BeaconAction(
            "resume", "Resume", "wopr.suspend_beacon", plan_resume, _staff(beacon_staff_resume)
        ),
        BeaconAction(
            "export", "Power on for export", "wopr.suspend_beacon", plan_export, act_export
        ),
        BeaconAction("resize", "Resize", "wopr.resize_beacon", plan_resize, act_resize),
        BeaconAction("restore", "Restore snapshot", "wopr.restore_snapshot", plan_restore, None),
        BeaconAction(
            "resend_welcome",
            "Resend welcome",
            "wopr.resend_email",
            plan_resend_welcome,
            act_resend_welcome,
        ),
        BeaconAction(
            "regenerate_pdfs",
            "Regenerate PDFs",
            "wopr.resend_email",
            plan_regenerate_pdfs,
            act_regenerate_pdfs,
        ),
        BeaconAction(
            "decommission",
            "Decommission",
            "wopr.decommission_beacon",
            plan_decommission,
            _staff(beacon_staff_decommission_now),
        ),
    )
}


def beacon_action_run(*, action: BeaconAction, beacon: Beacon, user: Any, subject: str) -> Outcome:
    """Plan again and act only if the plan still applies to what the page showed; record it.

    Returns what happened (done, or refused and why) for the staff member's message."""
    plan = action.plan(beacon)
    if action.act is None or plan.refusal:
        outcome = refused(f"not done: {plan.refusal or 'choose one of the links on the page'}")
    elif plan.subject != subject:
        outcome = refused("not done: the Beacon changed since the page was shown; look again")
    else:
        outcome = action.act(beacon, user)
    staff_action_record(
        user=user,
        action=f"beacon.{action.name}",
        target=beacon,
        outcome=outcome.text,
        detail={"via": "beacon page", "subject": plan.subject, "ok": outcome.ok},
    )
    return outcome


# --- the page around the buttons: which ones, the console link, notes --------------------------


@dataclass(frozen=True)
class Button:
    """A button as the page shows it: a link to its confirmation, or disabled with a reason."""

    name: str
    label: str
    url: str
    refusal: str


def beacon_buttons(*, beacon: Beacon, user: Any) -> list[Button]:
    """The buttons `user` may press (the others are not shown), each with why it cannot apply
    now, if it cannot."""
    return [
        Button(
            name=action.name,
            label=action.label,
            url=reverse("admin:provisioning_beacon_act", args=[beacon.pk, action.name]),
            refusal=action.plan(beacon).refusal,
        )
        for action in ACTIONS.values()
        if user.has_perm(action.permission)
    ]


def provider_console_url(beacon: Beacon) -> str:
    """Where the server is at its provider ('' when it has none). Hetzner's console addresses
    servers by project, which its API never names: with HETZNER_PROJECT_ID unset, the link
    opens the project list (the server id is shown beside it)."""
    server_id = beacon.provider_server_id
    if beacon.provider is None or not server_id:
        return ""
    kind = beacon.provider.kind
    if kind == "hetzner":
        project = settings.HETZNER_PROJECT_ID
        if not project:
            return "https://console.hetzner.cloud/projects"
        return f"https://console.hetzner.cloud/projects/{project}/servers/{server_id}"
    if kind == "digitalocean":
        return f"https://cloud.digitalocean.com/droplets/{server_id}"
    if kind == "fake" and server_id.isdigit():
        return reverse("admin:provisioning_fakeserver_change", args=[server_id])
    return ""


# --- the two admin views (BeaconAdmin.get_urls routes to them) -----------------------------


def _beacon_for(model_admin: Any, request: HttpRequest, object_id: str, permission: str) -> Beacon:
    """The Beacon, if the user may see it and holds `permission` (else 403)."""
    beacon = get_object_or_404(
        Beacon.objects.select_related("order", "order__tier", "provider", "tier", "bundle"),
        pk=object_id,
    )
    if not model_admin.has_view_permission(request, beacon) or not request.user.has_perm(
        permission
    ):
        raise PermissionDenied
    return beacon


def beacon_action_view(
    model_admin: Any, request: HttpRequest, object_id: str, action: str
) -> HttpResponse:
    """GET: the confirmation page saying what the button will do. POST (post=yes, with CSRF):
    do it, and say what happened on the Beacon page."""
    beacon_action = ACTIONS.get(action)
    if beacon_action is None:
        raise Http404("no such action")
    beacon = _beacon_for(model_admin, request, object_id, beacon_action.permission)
    change_url = reverse("admin:provisioning_beacon_change", args=[beacon.pk])
    if request.method == "POST" and request.POST.get("post") == "yes":
        outcome = beacon_action_run(
            action=beacon_action,
            beacon=beacon,
            user=request.user,
            subject=request.POST.get("subject", ""),
        )
        level = messages.SUCCESS if outcome.ok else messages.WARNING
        model_admin.message_user(request, f"{beacon_action.label}: {outcome.text}", level)
        return HttpResponseRedirect(change_url)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{beacon_action.label}: {beacon.name}?",
        "opts": Beacon._meta,
        "beacon": beacon,
        "action": beacon_action,
        "plan": beacon_action.plan(beacon),
        "change_url": change_url,
    }
    return TemplateResponse(request, "admin/provisioning/beacon/confirm_action.html", context)


def beacon_note_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    """POST: add a note to the Beacon (notes are add-only, wopr.notes), then back to its page."""
    beacon = get_object_or_404(Beacon, pk=object_id)
    back = reverse("admin:provisioning_beacon_change", args=[beacon.pk])
    return staff_note_view(model_admin, request, back_url=back, beacon=beacon)
