"""Staff views of providers, Beacons, Jobs and their timelines, and reconciliation runs.

Beacons and Jobs are read-only here: their state only changes through the job engine, so the
levers are actions: "Retry job" and "Cancel job" (calling `provisioning.jobs`), and on Beacons
suspend, resume, decommission now and cancel a scheduled decommission (calling
`provisioning.services`, which record the staff member on the job timeline); those actions live
in provisioning.beacon_actions.changelist. The Beacon's admin and its page, which carries the
same levers and more as buttons (provisioning.beacon_actions), each behind a confirmation page,
are in provisioning.beacon_admin, registered by the import below. Every lever needs its role's
permission (wopr.roles) and is recorded in the audit trail (wopr.audit).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from provisioning.admin_filters import StepFilter
from provisioning.beacon_actions.changelist import JobActionsMixin
from provisioning.beacon_admin import JOB_SECRET_FIELDS, BeaconAdmin
from provisioning.models import (
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
from wopr.lib.admin import ReadOnlyAdminMixin, ReadOnlyTabularInline, html_table

__all__ = ["BeaconAdmin"]  # registered on import (provisioning.beacon_admin)


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
    # Fixed choices and a date-range filter: no SELECT DISTINCT over a table that grows by a
    # snapshot job per Beacon a day (Django's date_hierarchy lists the years that way).
    list_filter = ("kind", "state", StepFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("id", "beacon__name", "beacon__fqdn", "last_error")
    list_select_related = ("beacon",)
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
    list_filter = ("level", "state", StepFilter, ("at", admin.DateFieldListFilter))
    search_fields = ("message", "job__beacon__name")
    list_select_related = ("job", "job__beacon")
    fields = ("job", "at", "step", "state", "level", "message")
    readonly_fields = fields

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """`?job__beacon=<id>`: the Beacon page's "see all job events" link."""
        return lookup == "job__beacon" or super().lookup_allowed(lookup, value, request)


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
