"""Snapshots of Beacons' servers at their providers: what we keep, until when, at what cost."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SnapshotKind(models.TextChoices):
    DAILY = "daily", "Daily"
    FINAL = "final", "Final (before decommission)"
    MANUAL = "manual", "Manual"


class SnapshotStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CREATING = "creating", "Creating"
    AVAILABLE = "available", "Available"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


# Snapshots that exist (or may exist) at the provider and cost money.
LIVE_STATUSES = (SnapshotStatus.PENDING, SnapshotStatus.CREATING, SnapshotStatus.AVAILABLE)


class BackupSnapshot(models.Model):
    """One snapshot of a Beacon's server, as sold: kept until `expires_at` (taken + the tier's
    backup_days), then pruned.

    `name` (`wopr-<beacon uuid>-<kind>-<yyyymmdd>`) is both the label the provider carries
    (`wopr-snapshot`) and the idempotency key: a retried job finds its snapshot by it and never
    asks for a second one."""

    beacon = models.ForeignKey(
        "provisioning.Beacon", on_delete=models.PROTECT, related_name="backup_snapshots"
    )
    provider = models.ForeignKey("provisioning.Provider", on_delete=models.PROTECT)
    # Where the server was: a restore makes its new server here.
    location = models.CharField(max_length=32, blank=True)
    kind = models.CharField(max_length=8, choices=SnapshotKind.choices)
    name = models.CharField(max_length=128, unique=True)
    provider_snapshot_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=10, choices=SnapshotStatus.choices, default=SnapshotStatus.PENDING
    )
    # Why a snapshot failed or was not taken (no server left, the provider refused it).
    note = models.TextField(blank=True)
    size_gb = models.FloatField(null=True, blank=True)
    price_per_gb_month = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    monthly_cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    # When the snapshot was asked for: expires_at counts from here.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    available_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey(
        "provisioning.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backup_snapshots",
    )
    # The latest staff restore of this snapshot (its job finds what to restore here).
    restore_job = models.ForeignKey(
        "provisioning.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restored_snapshots",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "expires_at"]),
            models.Index(fields=["beacon", "kind", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"
