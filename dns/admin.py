"""Staff views of DNS records. Our records are read-only: editing a row here would not change
the zone at the DNS provider, only make the two disagree."""

from __future__ import annotations

from django.contrib import admin

from dns.models import DnsRecord, FakeDnsRecord
from wopr.lib.admin import FixedChoicesFilter, ReadOnlyAdminMixin


class RecordTypeFilter(FixedChoicesFilter):
    """DNS records by type: the types Beacons are published with, no DISTINCT query."""

    title = "record type"
    parameter_name = "record_type"

    def choices_known(self) -> list[str]:
        return ["A", "AAAA", "CNAME", "TXT"]


@admin.register(DnsRecord)
class DnsRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "record_type", "content", "ttl", "proxied", "status", "beacon")
    list_filter = ("status", RecordTypeFilter, "proxied")
    search_fields = ("name", "content", "provider_record_id", "beacon__name")
    list_select_related = ("beacon",)
    fields = (
        "beacon",
        "record_type",
        "name",
        "content",
        "ttl",
        "proxied",
        "status",
        "provider_record_id",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields


@admin.register(FakeDnsRecord)
class FakeDnsRecordAdmin(admin.ModelAdmin):
    """The fake backend's zone: editable, to stage demos."""

    list_display = ("name", "record_type", "content", "ttl", "proxied")
    list_filter = ("record_type",)
    search_fields = ("name", "content")
