"""The fake DNS backend: a zone kept in the database, with injectable faults."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from dns.backends.base import DnsBackend, DnsError, Record, RecordSpec
from dns.models import FakeDnsRecord
from provisioning.faults import fault_error, fault_raise_before


class FakeDns(DnsBackend):
    """An in-database zone for the embedded first run, the tests and demos."""

    kind = "fake"

    def find(self, name: str, record_type: str) -> list[Record]:
        rows = FakeDnsRecord.objects.filter(name=name, record_type=record_type).order_by("pk")
        return [_record(row) for row in rows]

    def list_records(self, suffix: str) -> list[Record]:
        rows = FakeDnsRecord.objects.filter(name__endswith=suffix).order_by("name", "record_type")
        return [_record(row) for row in rows]

    def upsert(self, spec: RecordSpec) -> Record:
        lost = fault_raise_before("dns.upsert", DnsError)
        values = {"content": spec.content, "ttl": spec.ttl, "proxied": spec.proxied}
        try:
            with transaction.atomic():
                row, _ = FakeDnsRecord.objects.update_or_create(
                    name=spec.name, record_type=spec.record_type, defaults=values
                )
        except IntegrityError:  # a concurrent create won; patch what it made
            row = FakeDnsRecord.objects.get(name=spec.name, record_type=spec.record_type)
            FakeDnsRecord.objects.filter(pk=row.pk).update(**values)
            row.refresh_from_db()
        if lost is not None:
            raise fault_error(lost, DnsError)
        return _record(row)

    def delete(self, record_id: str) -> None:
        lost = fault_raise_before("dns.delete", DnsError)
        if record_id.isdigit():
            FakeDnsRecord.objects.filter(pk=int(record_id)).delete()
        if lost is not None:
            raise fault_error(lost, DnsError)


def _record(row: FakeDnsRecord) -> Record:
    return Record(
        id=str(row.pk),
        record_type=row.record_type,
        name=row.name,
        content=row.content,
        ttl=row.ttl,
        proxied=row.proxied,
    )
