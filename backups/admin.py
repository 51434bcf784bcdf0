"""Staff views of snapshots, and the one lever: "Restore this snapshot" (confirmed first).

Snapshots are read-only here: only the snapshot jobs change them. A restore is asked for on a
confirmation page that says what will be made, deleted and moved, and is recorded on the
Beacon's job timeline, in the admin log and in the audit trail with the staff member's name.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from backups.models import BackupSnapshot
from backups.services import snapshot_restore_preview, snapshot_restore_start
from wopr.audit import staff_action_record
from wopr.lib.admin import ReadOnlyAdminMixin


@admin.register(BackupSnapshot)
class BackupSnapshotAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "beacon",
        "kind",
        "status",
        "provider",
        "size_gb",
        "monthly_cost",
        "created_at",
        "expires_at",
    )
    list_filter = ("status", "kind", "provider")
    search_fields = ("name", "beacon__name", "beacon__fqdn", "provider_snapshot_id")
    list_select_related = ("beacon", "provider")
    date_hierarchy = "created_at"
    actions = ("restore_snapshot",)
    fields = (
        "name",
        "beacon",
        "kind",
        "status",
        "note",
        "provider",
        "location",
        "provider_snapshot_id",
        "size_gb",
        "price_per_gb_month",
        "monthly_cost",
        "created_at",
        "available_at",
        "expires_at",
        "deleted_at",
        "job",
        "restore_job",
    )
    readonly_fields = fields

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Restoring makes a server and moves DNS: operations and owner (wopr.roles)."""
        return request.user.has_perm("wopr.restore_snapshot")

    def get_urls(self) -> list[URLPattern]:
        restore = path(
            "<int:pk>/restore/",
            self.admin_site.admin_view(self.restore_view),
            name="backups_backupsnapshot_restore",
        )
        return [restore, *super().get_urls()]

    @admin.action(description="Restore this snapshot…", permissions=["operate"])
    def restore_snapshot(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """One snapshot at a time: to its confirmation page."""
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one snapshot to restore.", messages.WARNING)
            return None
        url = reverse("admin:backups_backupsnapshot_restore", args=[queryset.get().pk])
        return HttpResponseRedirect(url)

    def restore_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """GET: what the restore will do. POST with post=yes: start it, record who asked."""
        if not self.has_operate_permission(request):
            return HttpResponse("You may not restore snapshots.", status=403)
        snapshot = get_object_or_404(
            BackupSnapshot.objects.select_related("beacon", "beacon__provider", "provider"), pk=pk
        )
        preview = snapshot_restore_preview(snapshot=snapshot)
        if request.method == "POST" and request.POST.get("post") == "yes":
            outcome = snapshot_restore_start(snapshot=snapshot, requested_by=request.user)
            staff_action_record(
                user=request.user, action="snapshot.restore", target=snapshot, outcome=outcome
            )
            level = messages.WARNING if outcome.startswith("not restored") else messages.SUCCESS
            self.message_user(request, f"{snapshot.beacon.name}: {outcome}", level)
            beacon_url = reverse("admin:provisioning_beacon_change", args=[snapshot.beacon_id])
            return HttpResponseRedirect(beacon_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Restore {snapshot.beacon.name} from this snapshot?",
            "opts": self.model._meta,
            "preview": preview,
        }
        return TemplateResponse(request, "admin/backups/confirm_restore.html", context)
