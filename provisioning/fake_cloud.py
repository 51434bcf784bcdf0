"""The fake cloud's app side: its servers as FakeServer rows, its snapshots as FakeSnapshot rows,
its faults, its catalogue.

`integrations.clouds.fake.FakeCloud` holds the provider contract; this module gives it the
database store (every process sees the same servers), the scripted faults of
provisioning.faults and the sizes and regions of the catalogue.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.catalog import catalog_data
from integrations.clouds.base import ProviderError, ServerSpec
from integrations.clouds.fake import FakeCatalogue, FakeCloud, FakeRecord, FakeSnapshotRecord
from provisioning.faults import fault_error, fault_raise_before
from provisioning.models import FakeServer, FakeSnapshot


class DbFakeCloudStore:
    """The FakeCloudStore protocol over FakeServer, FakeSnapshot and FakeFault rows."""

    def now(self) -> datetime:
        return timezone.now()

    def fault(self, point: str) -> ProviderError | None:
        lost = fault_raise_before(point, ProviderError)
        return None if lost is None else fault_error(lost, ProviderError)  # type: ignore[return-value]

    def create(self, spec: ServerSpec) -> FakeRecord | None:
        try:
            with transaction.atomic():
                row = FakeServer.objects.create(
                    name=spec.name,
                    size=spec.size,
                    image=spec.image,
                    location=spec.location,
                    labels=spec.labels,
                    user_data_sha256=hashlib.sha256(spec.user_data.encode()).hexdigest(),
                    ipv4="0.0.0.0",  # noqa: S104  (replaced below once the id is known)
                    ipv6="::",
                    created_at=timezone.now(),
                )
                row.ipv4 = f"198.18.{row.pk // 256 % 256}.{row.pk % 256}"
                row.ipv6 = f"2001:db8::{row.pk:x}"
                row.save(update_fields=["ipv4", "ipv6"])
        except IntegrityError:  # the live name is taken
            return None
        return _record(row)

    def named(self, name: str) -> FakeRecord | None:
        row = FakeServer.objects.filter(name=name, deleted=False).first()
        return _record(row) if row else None

    def get(self, server_id: str, *, deleted: bool = False) -> FakeRecord | None:
        rows = FakeServer.objects.filter(pk=_pk(server_id))
        row = (rows if deleted else rows.filter(deleted=False)).first()
        return _record(row) if row else None

    def find(self, labels: dict[str, str]) -> list[FakeRecord]:
        rows = FakeServer.objects.filter(deleted=False).order_by("pk")
        return [
            _record(row)
            for row in rows
            if all(row.labels.get(key) == value for key, value in labels.items())
        ]

    def set_power(self, server_id: str, *, on: bool) -> bool:
        rows = FakeServer.objects.filter(pk=_pk(server_id), deleted=False)
        return bool(rows.update(powered_on=on))

    def delete(self, server_id: str) -> None:
        FakeServer.objects.filter(pk=_pk(server_id), deleted=False).update(deleted=True)

    def set_size(self, server_id: str, size: str) -> bool:
        return bool(FakeServer.objects.filter(pk=_pk(server_id), deleted=False).update(size=size))

    def snapshot_create(
        self,
        *,
        server_id: str,
        name: str,
        labels: dict[str, str],
        size_gb: float,
        ready_at: datetime,
    ) -> FakeSnapshotRecord | None:
        try:
            with transaction.atomic():  # the unique live name settles a race between workers
                row = FakeSnapshot.objects.create(
                    name=name,
                    server_id=server_id,
                    labels=labels,
                    size_gb=size_gb,
                    ready_at=ready_at,
                    created_at=timezone.now(),
                )
        except IntegrityError:
            return None
        return _snapshot_record(row)

    def snapshot_get(self, snapshot_id: str, *, deleted: bool = False) -> FakeSnapshotRecord | None:
        rows = FakeSnapshot.objects.filter(pk=_pk(snapshot_id))
        row = (rows if deleted else rows.filter(deleted=False)).first()
        return _snapshot_record(row) if row else None

    def snapshot_find(self, labels: dict[str, str]) -> list[FakeSnapshotRecord]:
        rows = FakeSnapshot.objects.filter(deleted=False).order_by("pk")
        return [
            _snapshot_record(row)
            for row in rows
            if all(row.labels.get(key) == value for key, value in labels.items())
        ]

    def snapshot_delete(self, snapshot_id: str) -> None:
        FakeSnapshot.objects.filter(pk=_pk(snapshot_id), deleted=False).update(deleted=True)


class FakeProvider(FakeCloud):
    """The fake cloud as configured here: the database store, settings' boot time, and one
    fake location per catalogue region, selling the catalogue's Hetzner sizes."""

    def __init__(self) -> None:  # everything is read when used: settings change in tests
        pass

    @property  # type: ignore[override]
    def store(self) -> DbFakeCloudStore:
        return DbFakeCloudStore()

    @property  # type: ignore[override]
    def catalogue(self) -> FakeCatalogue:
        data = catalog_data()
        return FakeCatalogue(
            locations=[f"fake-{region}" for region in data["regions"]],
            sizes=list(data["server_sizes"]["hetzner"].values()),
        )

    @property  # type: ignore[override]
    def boot_seconds(self) -> float:
        return float(settings.FAKE_SERVER_BOOT_SECONDS)

    @property  # type: ignore[override]
    def snapshot_seconds(self) -> float:
        """A snapshot takes as long as a boot: one setting paces the whole fake cloud."""
        return float(settings.FAKE_SERVER_BOOT_SECONDS)


def _record(row: FakeServer) -> FakeRecord:
    return FakeRecord(
        id=str(row.pk),
        name=row.name,
        size=row.size,
        location=row.location,
        labels=dict(row.labels),
        ipv4=row.ipv4,
        ipv6=row.ipv6,
        powered_on=row.powered_on,
        created_at=row.created_at,
    )


def _snapshot_record(row: FakeSnapshot) -> FakeSnapshotRecord:
    return FakeSnapshotRecord(
        id=str(row.pk),
        name=row.name,
        server_id=row.server_id,
        labels=dict(row.labels),
        size_gb=row.size_gb,
        ready_at=row.ready_at,
        created_at=row.created_at,
    )


def _pk(server_id: str) -> int:
    try:
        return int(server_id)
    except ValueError:
        return -1
