"""Staff views of providers, Beacons, Jobs and their timelines, and reconciliation runs.

Beacons and Jobs are read-only here: their state only changes through the job engine, so the
levers are actions: "Retry job" and "Cancel job" (calling `provisioning.jobs`), and on Beacons
suspend, resume, decommission now and cancel a scheduled decommission (calling
`provisioning.services`, which record the staff member on the job timeline). The Beacon page
carries the same levers and more as buttons (provisioning.beacon_actions), each behind a
confirmation page. Every lever needs its role's permission (wopr.roles) and is recorded in the
audit trail (wopr.audit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from dns.models import DnsRecord
from documents.models import Document, EmailMessage
from provisioning.beacon_actions import (
    beacon_action_view,
    beacon_buttons,
    beacon_note_view,
    provider_console_url,
)
from provisioning.jobs import WORKFLOWS, job_cancel, job_retry
from provisioning.models import (
    Beacon,
    BeaconStatus,
    FakeFault,
    FakeServer,
    FakeSnapshot,
    InstallStage,
    Job,
    JobEvent,
    Provider,
    ProviderHealthCheck,
    RateLimitBudget,
    ReconcileRun,
)
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
from wopr.lib.admin import ReadOnlyAdminMixin, ReadOnlyTabularInline, admin_link, html_table

# Never shown, not even read-only: with the secret key the salt rebuilds a Beacon's token.
JOB_SECRET_FIELDS = ("callback_token_salt", "callback_token_hash")


# --- providers ------------------------------------------------------------------------------


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "enabled", "weight", "health_status", "last_checked_at")
    list_editable = ("enabled", "weight")
    list_filter = ("enabled", "kind", "health_status")
    search_fields = ("name", "kind")
    readonly_fields = ("health_status", "last_checked_at")


@admin.register(ProviderHealthCheck)
class ProviderHealthCheckAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("provider", "status", "latency_ms", "checked_at")
    list_filter = ("status", "provider")
    list_select_related = ("provider",)
    date_hierarchy = "checked_at"
    fields = ("provider", "status", "latency_ms", "findings", "checked_at")
    readonly_fields = fields


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


def badge(value: str, label: str) -> SafeString:
    """A status as a coloured badge: the colour comes from its CSS class (cockpit.css)."""
    return format_html('<span class="cockpit-badge cockpit-badge-{}">{}</span>', value, label)


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


# --- beacons --------------------------------------------------------------------------------


class JobInline(ReadOnlyTabularInline):
    model = Job
    fields = (
        "kind",
        "job_state",
        "step",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
    )
    readonly_fields = fields
    exclude = JOB_SECRET_FIELDS
    ordering = ("-created_at",)

    @admin.display(description="State")
    def job_state(self, obj: Job) -> SafeString:
        return badge(obj.state, obj.get_state_display())


class DnsRecordInline(ReadOnlyTabularInline):
    model = DnsRecord
    fields = ("record_type", "name", "content", "ttl", "proxied", "status", "provider_record_id")
    readonly_fields = fields


class DocumentInline(ReadOnlyTabularInline):
    model = Document
    fields = ("kind", "size_bytes", "sha256", "created_at", "download")
    readonly_fields = fields

    @admin.display(description="PDF")
    def download(self, obj: Document) -> SafeString:
        url = reverse("admin:documents_document_download", args=[obj.pk])
        return format_html('<a href="{}">Download</a>', url)


class ExportWindowFilter(admin.SimpleListFilter):
    """Decommissioning Beacons whose server staff powered on for export, window still open."""

    title = "export window"
    parameter_name = "export_window"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("open", "Open now")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() != "open":
            return queryset
        return queryset.filter(status=BeaconStatus.DECOMMISSIONING, export_until__gt=timezone.now())


@admin.register(Beacon)
class BeaconAdmin(JobActionsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "fqdn",
        "status",
        "owner_email",
        "bundle",
        "tier",
        "provider",
        "region",
        "export_window",
        "created_at",
    )
    list_filter = ("status", ExportWindowFilter, "provider", "region", "bundle")
    search_fields = ("name", "fqdn", "owner__email", "provider_server_id", "ipv4")
    list_select_related = ("owner", "bundle", "tier", "provider")
    date_hierarchy = "created_at"
    actions = (
        "retry_job",
        "cancel_job",
        "suspend_beacon",
        "resume_beacon",
        "decommission_now",
        "cancel_decommission",
        "power_on_for_export",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "name",
                    "fqdn",
                    "status_badge",
                    "owner",
                    "order",
                    "bundle",
                    "tier",
                    "modules",
                    "region",
                    "stripe_mode",
                )
            },
        ),
        (
            "Server",
            {
                "fields": (
                    "provider",
                    "provider_location",
                    "server_size",
                    "provider_server_id",
                    "console",
                    "ipv4",
                    "ipv6",
                )
            },
        ),
        (
            "Lifecycle",
            {"fields": ("subscription", "staff_hold", "converge_requested_at", "export_until")},
        ),
        ("Staff notes", {"fields": ("staff_notes",)}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Backups", {"fields": ("backups",)}),
        ("E-mails sent", {"fields": ("emails_sent",)}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "id",
        "status_badge",
        "console",
        "subscription",
        "staff_notes",
        "timeline",
        "backups",
        "emails_sent",
        "created_at",
        "updated_at",
    )
    inlines = (JobInline, DnsRecordInline, DocumentInline)

    @admin.display(description="Export window until", ordering="export_until")
    def export_window(self, obj: Beacon) -> str:
        """Shown only while a decommissioning Beacon's export window is open."""
        until = obj.export_until
        if obj.status != BeaconStatus.DECOMMISSIONING or not until or until <= timezone.now():
            return "—"
        return f"{localtime(until):%Y-%m-%d %H:%M}"

    @admin.display(description="Owner", ordering="owner__email")
    def owner_email(self, obj: Beacon) -> str:
        return obj.owner.email if obj.owner else "—"

    @admin.display(description="Status")
    def status_badge(self, obj: Beacon) -> SafeString:
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Provider console")
    def console(self, obj: Beacon) -> SafeString | str:
        url = provider_console_url(obj)
        if not url:
            return "—"
        return format_html(
            '<a href="{}" rel="noopener noreferrer">Open at {} (server {})</a>',
            url,
            obj.provider,
            obj.provider_server_id,
        )

    @admin.display(description="Notes")
    def staff_notes(self, obj: Beacon) -> SafeString:
        notes = obj.staff_notes.all()  # type: ignore[attr-defined]
        return html_table(
            ("At", "By", "Note"),
            ((f"{localtime(n.created_at):%Y-%m-%d %H:%M}", n.author_name, n.body) for n in notes),
            "No notes yet.",
        )

    # --- the page's buttons (provisioning.beacon_actions) and its note form -----------------

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<uuid:object_id>/act/<str:action>/",
                self.admin_site.admin_view(self.act_view),
                name="provisioning_beacon_act",
            ),
            path(
                "<uuid:object_id>/note/",
                self.admin_site.admin_view(self.note_view),
                name="provisioning_beacon_note",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        beacon = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if beacon is not None and self.has_view_permission(request, beacon):
            extra["beacon_buttons"] = beacon_buttons(beacon=beacon, user=request.user)
            extra["can_add_note"] = request.user.has_perm("wopr.add_staffnote")
        return super().change_view(request, object_id, form_url, extra)

    def act_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        return beacon_action_view(self, request, object_id, action)

    def note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return beacon_note_view(self, request, object_id)

    @admin.display(description="Job timeline")
    def timeline(self, obj: Beacon) -> SafeString:
        events = JobEvent.objects.filter(job__beacon=obj).select_related("job").order_by("at", "id")
        return html_table(
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

    @admin.display(description="Snapshots")
    def backups(self, obj: Beacon) -> SafeString:
        """The backups app's snapshots (by the reverse relation and URL names: provisioning
        imports no backups), each available one with its "Restore this snapshot" link."""
        snapshots = obj.backup_snapshots.order_by("-created_at")  # type: ignore[attr-defined]
        return html_table(
            ("Snapshot", "Kind", "Status", "Size (GB)", "Monthly cost", "Expires", "Restore"),
            (
                (
                    admin_link(snapshot, snapshot.name),
                    snapshot.kind,
                    snapshot.status,
                    snapshot.size_gb if snapshot.size_gb is not None else "—",
                    snapshot.monthly_cost if snapshot.monthly_cost is not None else "—",
                    f"{localtime(snapshot.expires_at):%Y-%m-%d %H:%M}",
                    format_html(
                        '<a href="{}">Restore this snapshot…</a>',
                        reverse("admin:backups_backupsnapshot_restore", args=[snapshot.pk]),
                    )
                    if snapshot.status == "available"
                    else "—",
                )
                for snapshot in snapshots
            ),
            "No snapshots yet.",
        )

    @admin.display(description="E-mails")
    def emails_sent(self, obj: Beacon) -> SafeString:
        emails = EmailMessage.objects.filter(beacon=obj).order_by("created_at", "id")
        return html_table(
            ("Created", "Template", "To", "Subject", "Status", "Sent", "Body"),
            (
                (
                    f"{localtime(email.created_at):%Y-%m-%d %H:%M:%S}",
                    admin_link(email, email.template),
                    email.recipient,
                    email.subject,
                    badge(email.status, email.get_status_display()),
                    f"{localtime(email.sent_at):%Y-%m-%d %H:%M:%S}" if email.sent_at else "—",
                    format_html(
                        '<details class="cockpit-email-body"><summary>Show</summary>'
                        "<pre>{}</pre></details>",
                        email.body_text,
                    )
                    if email.body_text
                    else "—",
                )
                for email in emails
            ),
            "No e-mails sent for this Beacon.",
        )

    def jobs_for(self, queryset: QuerySet) -> list[Job | None]:
        return [beacon.jobs.order_by("-created_at").first() for beacon in queryset]

    @admin.display(description="Subscription (Stripe's view)")
    def subscription(self, obj: Beacon) -> str:
        order = obj.order
        if not order.subscription_status:
            return f"{order.stripe_subscription_id or '—'} (no status heard since checkout)"
        return (
            f"{order.stripe_subscription_id}: {order.subscription_status} "
            f"as of {localtime(order.subscription_status_at):%Y-%m-%d %H:%M:%S}"
        )

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


# --- jobs -----------------------------------------------------------------------------------


class InstallStageInline(ReadOnlyTabularInline):
    """What the Beacon reported of its install, once per stage and server round."""

    model = InstallStage
    fields = ("at", "round", "stage", "module", "index", "total", "message")
    readonly_fields = fields
    ordering = ("at", "id")
    show_change_link = False
    verbose_name_plural = "install stages reported by the Beacon"


class JobEventInline(ReadOnlyTabularInline):
    model = JobEvent
    fields = ("at", "step", "state", "level", "message")
    readonly_fields = fields
    ordering = ("at", "id")
    show_change_link = False


@admin.register(Job)
class JobAdmin(JobActionsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("kind", "beacon", "state", "step", "attempts", "next_attempt_at", "created_at")
    list_filter = ("kind", "state", "step")
    search_fields = ("id", "beacon__name", "beacon__fqdn", "last_error")
    list_select_related = ("beacon",)
    date_hierarchy = "created_at"
    actions = ("retry_job", "cancel_job")
    # Listed explicitly so the callback token's salt and hash can never reach the page.
    fields = (
        "id",
        "beacon",
        "kind",
        "state",
        "step",
        "attempts",
        "max_attempts",
        "next_attempt_at",
        "lease_expires_at",
        "last_error",
        "checkpoint_pretty",
        "callback_completed_at",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields
    exclude = JOB_SECRET_FIELDS
    inlines = (InstallStageInline, JobEventInline)

    @admin.display(description="Checkpoint")
    def checkpoint_pretty(self, obj: Job) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.checkpoint, indent=2, sort_keys=True))

    def jobs_for(self, queryset: QuerySet) -> list[Job | None]:
        return list(queryset)


@admin.register(InstallStage)
class InstallStageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "job", "round", "stage", "module", "index", "total")
    list_filter = ("stage",)
    search_fields = ("job__beacon__name", "module")
    list_select_related = ("job", "job__beacon")
    fields = ("job", "at", "round", "stage", "module", "index", "total", "message")
    readonly_fields = fields


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "job", "step", "state", "level", "message")
    list_filter = ("level", "state", "step")
    search_fields = ("message", "job__beacon__name")
    list_select_related = ("job", "job__beacon")
    date_hierarchy = "at"
    fields = ("job", "at", "step", "state", "level", "message")
    readonly_fields = fields


# --- reconciliation ---------------------------------------------------------------------------


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("started_at", "fix", "finding_count", "fixed", "needs_human", "finished_at")
    list_filter = ("needs_human", "fix")
    date_hierarchy = "started_at"
    fields = ("started_at", "finished_at", "fix", "fixed", "needs_human", "notes", "findings_table")
    readonly_fields = fields

    @admin.display(description="Findings")
    def finding_count(self, obj: ReconcileRun) -> int:
        return len(obj.findings)

    @admin.display(description="Findings")
    def findings_table(self, obj: ReconcileRun) -> SafeString:
        return html_table(
            ("Kind", "Where", "Id", "Status", "First seen", "Detail"),
            (
                (
                    item.get("kind", ""),
                    item.get("provider", ""),
                    item.get("id", ""),
                    item.get("status", ""),
                    item.get("first_seen", ""),
                    item.get("detail", ""),
                )
                for item in obj.findings
            ),
            "Nothing to report: money, Beacons, servers and DNS agree.",
        )


# --- the fake cloud (demos and tests) -------------------------------------------------------


@admin.register(FakeServer)
class FakeServerAdmin(admin.ModelAdmin):
    list_display = ("name", "size", "location", "ipv4", "powered_on", "deleted", "created_at")
    list_filter = ("powered_on", "deleted", "location")
    search_fields = ("name", "ipv4")


@admin.register(FakeSnapshot)
class FakeSnapshotAdmin(admin.ModelAdmin):
    list_display = ("name", "server_id", "size_gb", "ready_at", "deleted", "created_at")
    list_filter = ("deleted",)
    search_fields = ("name",)


@admin.register(FakeFault)
class FakeFaultAdmin(admin.ModelAdmin):
    list_display = ("point", "kind", "remaining", "message", "created_at")
    list_filter = ("point", "kind")

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "point":
            field.help_text = (
                "provider.create, provider.get, provider.power_off, provider.power_on, "
                "provider.delete, provider.snapshot, provider.snapshot_delete, dns.upsert or "
                "dns.delete"
            )
        return field


@admin.register(RateLimitBudget)
class RateLimitBudgetAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The vendors' shared request budgets, as their last answers left them."""

    list_display = ("key", "remaining", "limit", "blocked_until", "updated_at")
