"""Publishing and removing a Beacon's DNS records."""

from __future__ import annotations

from django.db import transaction

from dns.backends import get_dns_backend
from dns.backends.base import RecordSpec
from dns.models import DnsRecord, DnsRecordStatus
from provisioning.models import Beacon

TTL = 300


def beacon_record_specs(beacon: Beacon) -> list[RecordSpec]:
    """A and AAAA for the fqdn and its wildcard (AAAA only when the server has IPv6)."""
    specs = []
    for name in (beacon.fqdn, f"*.{beacon.fqdn}"):
        specs.append(RecordSpec("A", name, str(beacon.ipv4), TTL, False))
        if beacon.ipv6:
            specs.append(RecordSpec("AAAA", name, beacon.ipv6, TTL, False))
    return specs


def dns_records_upsert(*, beacon: Beacon) -> list[DnsRecord]:
    """Make the Beacon's records exist with the right content; safe to repeat."""
    if not beacon.ipv4:
        raise ValueError(f"beacon {beacon.pk} has no IPv4 address yet")
    backend = get_dns_backend()
    rows = []
    for spec in beacon_record_specs(beacon):
        record = backend.upsert(spec)
        with transaction.atomic():
            row, _ = DnsRecord.objects.update_or_create(
                beacon=beacon,
                record_type=spec.record_type,
                name=spec.name,
                status=DnsRecordStatus.ACTIVE,
                defaults={
                    "content": spec.content,
                    "ttl": spec.ttl,
                    "proxied": spec.proxied,
                    "provider_record_id": record.id,
                },
            )
        rows.append(row)
    return rows


def dns_records_delete(*, beacon: Beacon) -> int:
    """Remove every record at the Beacon's names, recorded or not (a crash may have left one
    unrecorded); returns how many were deleted at the provider."""
    backend = get_dns_backend()
    deleted = 0
    for name in (beacon.fqdn, f"*.{beacon.fqdn}"):
        for record_type in ("A", "AAAA"):
            for record in backend.find(name, record_type):
                backend.delete(record.id)
                deleted += 1
    DnsRecord.objects.filter(beacon=beacon, status=DnsRecordStatus.ACTIVE).update(
        status=DnsRecordStatus.DELETED
    )
    return deleted
