"""DNS records the control plane made for Beacons, and the fake DNS backend's zone."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class DnsRecordStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DELETED = "deleted", "Deleted"


class DnsRecord(models.Model):
    """A record we created at the DNS provider for a Beacon."""

    beacon = models.ForeignKey(
        "provisioning.Beacon", on_delete=models.CASCADE, related_name="dns_records"
    )
    record_type = models.CharField(max_length=8)
    name = models.CharField(max_length=253)
    content = models.CharField(max_length=255)
    ttl = models.PositiveIntegerField(default=300)
    proxied = models.BooleanField(default=False)
    provider_record_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=8, choices=DnsRecordStatus.choices, default=DnsRecordStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["record_type", "name"],
                condition=Q(status="active"),
                name="dnsrecord_unique_active_name_type",
            )
        ]
        ordering = ["name", "record_type"]

    def __str__(self) -> str:
        return f"{self.name} {self.record_type} {self.content}"


class FakeDnsRecord(models.Model):
    """A record in the fake DNS backend's zone (shared by every process through the database)."""

    record_type = models.CharField(max_length=8)
    name = models.CharField(max_length=253)
    content = models.CharField(max_length=255)
    ttl = models.PositiveIntegerField(default=300)
    proxied = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record_type", "name"], name="fakedns_unique_name_type")
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.record_type} {self.content}"
