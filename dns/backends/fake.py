"""The fake DNS backend's app side: its zone in the database (FakeDnsRecord, so every process
sees one zone), handed to `integrations.dns.fake.FakeDns`. The staged faults are provisioning's
(`provisioning.faults.dns_faults`); `provisioning.vendors.get_dns_backend` wires them in."""

from __future__ import annotations

from dns.models import FakeDnsRecord
from integrations.dns import fake
from integrations.dns.base import Record, RecordSpec
from integrations.dns.fake import FaultHook


class OrmZone:
    """The fake zone's records as FakeDnsRecord rows (a ZoneStore)."""

    def find(self, name: str, record_type: str) -> list[Record]:
        rows = FakeDnsRecord.objects.filter(name=name, record_type=record_type).order_by("pk")
        return [_record(row) for row in rows]

    def with_suffix(self, suffix: str) -> list[Record]:
        rows = FakeDnsRecord.objects.filter(name__endswith=suffix).order_by("name", "record_type")
        return [_record(row) for row in rows]

    def put(self, spec: RecordSpec) -> Record:
        # One upsert statement (a concurrent create is patched, not an error); sets the pk.
        row = FakeDnsRecord(
            name=spec.name,
            record_type=spec.record_type,
            content=spec.content,
            ttl=spec.ttl,
            proxied=spec.proxied,
        )
        FakeDnsRecord.objects.bulk_create(
            [row],
            update_conflicts=True,
            unique_fields=["name", "record_type"],
            update_fields=["content", "ttl", "proxied"],
        )
        return _record(row)

    def remove(self, record_id: str) -> None:
        if record_id.isdigit():
            FakeDnsRecord.objects.filter(pk=int(record_id)).delete()


class FakeDns(fake.FakeDns):
    """The fake backend over the database zone (no faults unless given)."""

    def __init__(self, *, store: fake.ZoneStore | None = None, faults: FaultHook = fake.no_faults):
        super().__init__(store=store or OrmZone(), faults=faults)


def _record(row: FakeDnsRecord) -> Record:
    return Record(
        id=str(row.pk),
        record_type=row.record_type,
        name=row.name,
        content=row.content,
        ttl=row.ttl,
        proxied=row.proxied,
    )
