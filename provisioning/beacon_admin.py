"""The Beacon in the admin: its changelist (with the job and staff actions of
provisioning.beacon_actions.changelist) and its page, the place to act: status badges, the
provider console link, DNS, documents, snapshots, the newest job events, e-mails and notes
(bounded, provisioning.beacon_actions.panels), the buttons of provisioning.beacon_actions
behind their confirmation pages, and the note form. Registered by importing this module from
provisioning.admin. Read-only: state changes only through the job engine and the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from dns.models import DnsRecord
from documents.models import Document
from provisioning.admin_filters import RegionFilter
from provisioning.beacon_actions import (
    beacon_action_view,
    beacon_buttons,
    beacon_note_view,
    provider_console_url,
)
from provisioning.beacon_actions.changelist import BeaconActionsMixin
from provisioning.beacon_actions.panels import badge, beacon_emails, beacon_notes, beacon_timeline
from provisioning.models import Beacon, BeaconStatus, Job
from wopr.lib.admin import ReadOnlyAdminMixin, ReadOnlyTabularInline, admin_link, html_table

# Never shown, not even read-only: with the secret key the salt rebuilds a Beacon's token.
JOB_SECRET_FIELDS = ("callback_token_salt", "callback_token_hash")


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
class BeaconAdmin(BeaconActionsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Beacons: read-only rows, levers as actions and as the page's buttons."""

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
    # Fixed choices and a date-range filter: nothing here lists its choices with a SELECT
    # DISTINCT over the table (as a plain CharField filter or the date hierarchy would).
    list_filter = (
        "status",
        ExportWindowFilter,
        "provider",
        RegionFilter,
        "bundle",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("name", "fqdn", "owner__email", "provider_server_id", "ipv4")
    list_select_related = ("owner", "bundle", "tier", "provider")
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
        return beacon_notes(obj)

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

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        """Once per page, with what the buttons' plans read (the order, its tier, the provider)."""
        queryset = self.get_queryset(request).select_related(
            "owner", "order", "order__tier", "provider", "tier", "bundle"
        )
        try:
            return queryset.get(pk=object_id)
        except (Beacon.DoesNotExist, ValidationError, ValueError):
            return None

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Beacon | None = None,
    ) -> TemplateResponse:
        """The buttons and the note form, for the Beacon the change view loaded already."""
        if obj is not None:
            context["beacon_buttons"] = beacon_buttons(beacon=obj, user=request.user)
            context["can_add_note"] = request.user.has_perm("wopr.add_staffnote")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def act_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        return beacon_action_view(self, request, object_id, action)

    def note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return beacon_note_view(self, request, object_id)

    @admin.display(description="Job timeline")
    def timeline(self, obj: Beacon) -> SafeString:
        return beacon_timeline(obj)

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
        return beacon_emails(obj)

    @admin.display(description="Subscription (Stripe's view)")
    def subscription(self, obj: Beacon) -> str:
        order = obj.order
        if not order.subscription_status:
            return f"{order.stripe_subscription_id or '—'} (no status heard since checkout)"
        return (
            f"{order.stripe_subscription_id}: {order.subscription_status} "
            f"as of {localtime(order.subscription_status_at):%Y-%m-%d %H:%M:%S}"
        )
