"""The changelist actions of Beacons and Jobs: "Retry job" and "Cancel job" (the job engine's
staff actions, on each Beacon's latest job), and on Beacons suspend, resume, decommission now,
cancel a scheduled decommission and power on for export (provisioning.services, which record
the staff member on the job timeline). The ones that delete or power on ask first, on a
confirmation page that says exactly what; each one acted on is recorded in the audit trail."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from provisioning.beacon_actions.plans import latest_job
from provisioning.jobs import WORKFLOWS, job_cancel, job_retry
from provisioning.models import Job
from provisioning.services import (
    beacon_export_window_open,
    beacon_export_window_plan,
    beacon_staff_decommission_cancel,
    beacon_staff_decommission_now,
    beacon_staff_resume,
    beacon_staff_suspend,
)
from provisioning.teardown import Teardown, beacon_decommission_teardown, job_cancel_teardown
from wopr.audit import staff_action_record

# --- confirmation before deleting ------------------------------------------------------------


def confirmed(request: HttpRequest) -> bool:
    """The action's second POST, from its confirmation page (Django's delete uses `post` too)."""
    return request.POST.get("post") == "yes"


def confirmation_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    teardowns: list[Teardown],
) -> TemplateResponse:
    """Say exactly what `action` will delete and keep, and ask; nothing happens on this POST."""
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "queryset": queryset,
        "teardowns": teardowns,
        "action": action,
        "acts": any(teardown.deletes or teardown.kept for teardown in teardowns),
        "confirm_label": f"Yes, {title[0].lower()}{title[1:].rstrip('?')}",
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/provisioning/confirm_teardown.html", context)


# --- the two staff actions, on Jobs and on Beacons (acting on each Beacon's latest job) ----


class JobActionsMixin:
    """The "Retry job" and "Cancel job" actions, calling the job engine's staff actions."""

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("wopr.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("wopr.cancel_job")

    def jobs_for(self, queryset: QuerySet) -> list[Job | None]:
        raise NotImplementedError

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        verb: str,
        act: Callable[[Job], bool],
        name: str,
    ) -> None:
        """Act on each Beacon's job; record each one acted on (as `beacon.<name>`)."""
        done = skipped = 0
        for job in self.jobs_for(queryset):
            # A kind with no registered workflow (not built yet) cannot be retried or cancelled.
            if job is not None and job.kind in WORKFLOWS and act(job):
                done += 1
                self._record(request, job, verb, name)
            else:
                skipped += 1
        level = messages.SUCCESS if done else messages.WARNING
        self.message_user(  # type: ignore[attr-defined]
            request,
            f"{verb} {done} job(s); skipped {skipped} (finished, already compensating, "
            "not retryable or no job).",
            level,
        )

    def _record(self, request: HttpRequest, job: Job, verb: str, name: str) -> None:
        staff_action_record(
            user=request.user,
            action=f"beacon.{name}",
            target=job.beacon,
            outcome=f"{verb.lower()} {job.kind} job {job.pk}",
            detail={"via": "changelist", "job": str(job.pk), "kind": job.kind},
        )

    @admin.action(description="Retry job", permissions=["retry"])
    def retry_job(self, request: HttpRequest, queryset: QuerySet) -> None:
        user = request.user
        self._apply(
            request,
            queryset,
            "Retried",
            lambda job: job_retry(job=job, requested_by=user),
            "retry",
        )

    @admin.action(description="Cancel job…", permissions=["cancel"])
    def cancel_job(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        """Cancelling a provision job deletes what it made: show what, act on confirmation."""
        if not confirmed(request):
            jobs = [job for job in self.jobs_for(queryset) if job is not None]
            return confirmation_page(
                self,  # type: ignore[arg-type]
                request,
                queryset,
                action="cancel_job",
                title="Cancel these jobs?",
                teardowns=[job_cancel_teardown(job=job) for job in jobs],
            )
        reason = f"cancelled by {request.user}"
        self._apply(
            request,
            queryset,
            "Cancelled",
            lambda job: job_cancel(job=job, reason=reason),
            "cancel",
        )
        return None


# --- Beacons only -------------------------------------------------------------------------


class BeaconActionsMixin(JobActionsMixin):
    """The Beacon changelist's actions: each Beacon's latest job, and the staff services."""

    def jobs_for(self, queryset: QuerySet) -> list[Job | None]:
        return [latest_job(beacon) for beacon in queryset]

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("wopr.suspend_beacon")

    def has_decommission_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("wopr.decommission_beacon")

    def _staff_action(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        verb: str,
        act: Callable[..., str],
        name: str,
    ) -> None:
        """Call the staff service for each Beacon, record who did it (the audit trail, as
        `beacon.<name>`), and say what happened."""
        lines = []
        for beacon in queryset.select_related("order"):
            outcome = act(beacon=beacon, requested_by=request.user)
            staff_action_record(
                user=request.user,
                action=f"beacon.{name}",
                target=beacon,
                outcome=outcome,
                detail={"via": "changelist"},
            )
            lines.append(f"{beacon.name}: {outcome}")
        self.message_user(request, f"{verb} — " + "; ".join(lines), messages.INFO)

    @admin.action(description="Suspend (power off) until staff resume", permissions=["suspend"])
    def suspend_beacon(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._staff_action(request, queryset, "Suspend", beacon_staff_suspend, "suspend")

    @admin.action(description="Resume (lift a staff suspension)", permissions=["suspend"])
    def resume_beacon(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._staff_action(request, queryset, "Resume", beacon_staff_resume, "resume")

    @admin.action(
        description="Decommission now (delete server and DNS)…", permissions=["decommission"]
    )
    def decommission_now(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        """Deletes servers and DNS records at once: show exactly what, act on confirmation."""
        if not confirmed(request):
            beacons = queryset.select_related("provider")
            return confirmation_page(
                self,
                request,
                queryset,
                action="decommission_now",
                title="Decommission these Beacons now?",
                teardowns=[beacon_decommission_teardown(beacon=beacon) for beacon in beacons],
            )
        self._staff_action(
            request, queryset, "Decommission now", beacon_staff_decommission_now, "decommission"
        )
        return None

    @admin.action(description="Cancel the scheduled decommission", permissions=["decommission"])
    def cancel_decommission(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._staff_action(
            request,
            queryset,
            "Cancel decommission",
            beacon_staff_decommission_cancel,
            "cancel_decommission",
        )

    @admin.action(
        description="Power on for export (decommission grace period)…", permissions=["suspend"]
    )
    def power_on_for_export(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        """Powers a server on that the customer stopped paying for: say until when, ask first."""
        hours = settings.EXPORT_WINDOW_HOURS
        if not confirmed(request):
            plans = [beacon_export_window_plan(beacon=beacon, hours=hours) for beacon in queryset]
            context = {
                **self.admin_site.each_context(request),
                "title": "Power these Beacons on for export?",
                "opts": self.model._meta,
                "queryset": queryset,
                "plans": plans,
                "hours": hours,
                "acts": any(not plan.refusal for plan in plans),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/provisioning/confirm_export_window.html", context
            )
        self._staff_action(
            request,
            queryset,
            "Power on for export",
            lambda **kwargs: beacon_export_window_open(hours=hours, **kwargs),
            "export",
        )
        return None
