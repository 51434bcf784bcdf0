"""Publishing and removing a Beacon's DNS records.

`dns` sits below `provisioning`: these services take the Beacon as anything with its `pk`,
`fqdn` and addresses (a `BeaconAddresses`), and never import provisioning.
"""

from __future__ import annotations

from typing import Protocol

from django.utils import timezone

from dns.models import DnsRecord, DnsRecordStatus
from integrations.dns.base import DnsBackend, Record, RecordSpec

TTL = 300
ADDRESS_TYPES = ("A", "AAAA")


class BeaconAddresses(Protocol):
    """What DNS needs of a Beacon (provisioning.models.Beacon has it)."""

    pk: int
    fqdn: str
    ipv4: str | None
    ipv6: str


def beacon_names(beacon: BeaconAddresses) -> tuple[str, str]:
    """The Beacon's names: its fqdn and the wildcard below it."""
    return beacon.fqdn, f"*.{beacon.fqdn}"


def beacon_record_specs(beacon: BeaconAddresses) -> list[RecordSpec]:
    """A and AAAA for the fqdn and its wildcard (AAAA only when the server has IPv6)."""
    specs = []
    for name in beacon_names(beacon):
        specs.append(RecordSpec("A", name, str(beacon.ipv4), TTL, False))
        if beacon.ipv6:
            specs.append(RecordSpec("AAAA", name, beacon.ipv6, TTL, False))
    return specs


def dns_records_upsert(*, beacon: BeaconAddresses, backend: DnsBackend) -> list[DnsRecord]:
    """Make the Beacon's records exist with the right content; safe to repeat.

    All of them in one backend call (for Cloudflare: one listing per name and one batch)."""
    if not beacon.ipv4:
        raise ValueError(f"beacon {beacon.pk} has no IPv4 address yet")
    specs = beacon_record_specs(beacon)
    records = backend.upsert_all(specs)
    return _record_rows(beacon, specs, records)


def _record_rows(
    beacon: BeaconAddresses, specs: list[RecordSpec], records: list[Record]
) -> list[DnsRecord]:
    """Our rows of the published records: one read, one insert of the new ones, an update per
    changed one (a first publish reads and inserts only; a repeat usually just reads)."""
    active = DnsRecord.objects.filter(
        beacon_id=beacon.pk, status=DnsRecordStatus.ACTIVE, name__in=beacon_names(beacon)
    )
    existing = {(row.record_type, row.name): row for row in active}
    rows, new = [], []
    for spec, record in zip(specs, records, strict=True):
        values = {
            "content": spec.content,
            "ttl": spec.ttl,
            "proxied": spec.proxied,
            "provider_record_id": record.id,
        }
        row = existing.get((spec.record_type, spec.name))
        if row is None:
            row = DnsRecord(beacon_id=beacon.pk, record_type=spec.record_type, name=spec.name)
            new.append(row)
        elif any(getattr(row, field) != value for field, value in values.items()):
            DnsRecord.objects.filter(pk=row.pk).update(**values, updated_at=timezone.now())
        for field, value in values.items():
            setattr(row, field, value)
        rows.append(row)
    DnsRecord.objects.bulk_create(new)
    return rows


def dns_records_delete(*, beacon: BeaconAddresses, backend: DnsBackend) -> int:
    """Remove every record at the Beacon's names, recorded or not (a crash may have left one
    unrecorded); returns how many were deleted at the provider."""
    deleted = backend.delete_names(beacon_names(beacon), ADDRESS_TYPES)
    DnsRecord.objects.filter(beacon_id=beacon.pk, status=DnsRecordStatus.ACTIVE).update(
        status=DnsRecordStatus.DELETED
    )
    return deleted
