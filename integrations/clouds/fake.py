"""The fake cloud: the provider contract over a store the app injects (no ORM, no app here).

Servers boot `boot_seconds` after creation; snapshots are "creating" for `snapshot_seconds`,
then "available", and a server can be created from an available one (a restore). Where the
servers live (the app keeps them in the database so every process sees the same) and which
faults are due are the store's business; which sizes and locations are sold is passed in as
catalogue facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from integrations.clouds.base import (
    ActionStatus,
    CloudProvider,
    Created,
    Location,
    ProviderError,
    ResizeStarted,
    Server,
    ServerSpec,
    ServerType,
    Snapshot,
    SnapshotStarted,
)

OWNER_LABELS = ("wopr-job", "wopr-beacon")
SNAPSHOT_PRICE_PER_GB_MONTH = Decimal("0.01")
SNAPSHOT_GB_PER_SIZE_STEP = 1.5  # the smallest size's snapshot; each larger size adds as much


@dataclass(frozen=True)
class FakeRecord:
    """A server as the store keeps it."""

    id: str
    name: str
    size: str
    location: str
    labels: dict[str, str]
    ipv4: str
    ipv6: str
    powered_on: bool
    created_at: datetime


@dataclass(frozen=True)
class FakeSnapshotRecord:
    """A snapshot as the store keeps it."""

    id: str
    name: str
    server_id: str
    labels: dict[str, str]
    size_gb: float
    ready_at: datetime
    created_at: datetime


class FakeCloudStore(Protocol):
    """Where the fake cloud's servers live, its clock and its scripted faults."""

    def now(self) -> datetime:
        """The current time (the app's clock, which tests may move)."""

    def fault(self, point: str) -> ProviderError | None:
        """Raise the fault due at `point`; or return the error of a lost answer, raised after
        acting; None when no fault is due."""

    def create(self, spec: ServerSpec) -> FakeRecord | None:
        """A new live server; None when a live server has that name already."""

    def named(self, name: str) -> FakeRecord | None:
        """The live server of that name."""

    def get(self, server_id: str, *, deleted: bool = False) -> FakeRecord | None:
        """The live server of that id (or a deleted one too, with `deleted`)."""

    def find(self, labels: dict[str, str]) -> list[FakeRecord]:
        """Live servers carrying every label, oldest first."""

    def set_power(self, server_id: str, *, on: bool) -> bool:
        """Power a live server on or off; False when there is none."""

    def delete(self, server_id: str) -> None:
        """Delete the server (nothing when it is gone)."""

    def set_size(self, server_id: str, size: str) -> bool:
        """Give a live server another size; False when there is none."""

    def snapshot_create(
        self,
        *,
        server_id: str,
        name: str,
        labels: dict[str, str],
        size_gb: float,
        ready_at: datetime,
    ) -> FakeSnapshotRecord | None:
        """A new live snapshot; None when a live snapshot has that name already."""

    def snapshot_get(self, snapshot_id: str, *, deleted: bool = False) -> FakeSnapshotRecord | None:
        """The live snapshot of that id (or a deleted one too, with `deleted`)."""

    def snapshot_find(self, labels: dict[str, str]) -> list[FakeSnapshotRecord]:
        """Live snapshots carrying every label, oldest first."""

    def snapshot_delete(self, snapshot_id: str) -> None:
        """Delete the snapshot (nothing when it is gone)."""


@dataclass(frozen=True)
class FakeCatalogue:
    """What the fake sells: its location names and its size names, smallest first."""

    locations: Sequence[str]
    sizes: Sequence[str]


class FakeCloud(CloudProvider):
    """An in-store cloud for the embedded first run, the tests and demos."""

    kind = "fake"
    adopts_on_create = True  # live names are unique, as at Hetzner

    def __init__(
        self,
        *,
        store: FakeCloudStore,
        catalogue: FakeCatalogue,
        boot_seconds: float = 0,
        snapshot_seconds: float = 0,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.boot_seconds = boot_seconds
        self.snapshot_seconds = snapshot_seconds

    def create_server(self, spec: ServerSpec) -> Created:
        """Create (or adopt our own server of that name, as HetznerProvider does). A numeric
        image is a snapshot id (a restore): it must name an available snapshot."""
        lost = self.store.fault("provider.create")
        self._check_image(spec.image)
        record = self.store.create(spec)
        if record is None:
            same = self.store.named(spec.name)
            if same is not None and _same_owner(same.labels, spec.labels):
                return Created(server=self._server(same), action_id="")
            raise ProviderError(
                f"server name {spec.name!r} is already used",
                transient=False,
                code="uniqueness_error",
            )
        if lost is not None:
            raise lost
        return Created(server=self._server(record), action_id=f"create-{record.id}")

    def get_server(self, server_id: str) -> Server | None:
        """The live server, or None."""
        self._fail_if_due("provider.get")
        record = self.store.get(server_id)
        return self._server(record) if record else None

    def find_servers(self, labels: dict[str, str]) -> list[Server]:
        """Live servers carrying every label."""
        self._fail_if_due("provider.get")
        return [self._server(record) for record in self.store.find(labels)]

    def action_status(self, action_id: str) -> ActionStatus:
        """A create action runs until the server booted, a snapshot action until the snapshot
        is available; power actions are done at once."""
        verb, _, server_id = action_id.partition("-")
        if verb == "snapshot":
            return self._snapshot_action(server_id)
        record = self.store.get(server_id, deleted=True)
        if record is None:
            return "error"
        if verb == "create" and not self._booted(record):
            return "running"
        return "success"

    def power_off(self, server_id: str) -> str:
        """Power off at once; the action id names the server."""
        return self._set_power(server_id, on=False)

    def power_on(self, server_id: str) -> str:
        """Power on at once; the action id names the server."""
        return self._set_power(server_id, on=True)

    def server_resize(self, server_id: str, size: str, *, grow_disk: bool = True) -> ResizeStarted:
        """Resize an off server at once (the action is done when asked about). The fake keeps
        no disk size: every move to a smaller catalogue size is refused, as the vendors refuse
        it once a disk grew. Fault point `provider.resize` (a lost answer resizes first)."""
        lost = self.store.fault("provider.resize")
        record = self.store.get(server_id)
        if record is None:
            raise ProviderError(f"server {server_id} not found", transient=False, code="not_found")
        if record.powered_on:
            raise ProviderError(
                f"server {server_id} must be off to resize",
                transient=False,
                code="server_not_stopped",
            )
        self._check_size(record.size, size)
        self.store.set_size(server_id, size)
        if lost is not None:
            raise lost
        return ResizeStarted(action_id=f"resize-{server_id}", size=size, grow_disk=grow_disk)

    def resize_in_progress(self, server_id: str) -> str | None:
        """Never: the fake's resizes are done at once."""
        return None

    def delete_server(self, server_id: str) -> None:
        """Delete; an unknown server is fine."""
        lost = self.store.fault("provider.delete")
        self.store.delete(server_id)
        if lost is not None:
            raise lost

    def list_locations(self) -> list[Location]:
        """The catalogue's locations."""
        return [Location(name=name) for name in self.catalogue.locations]

    def list_server_types(self) -> list[ServerType]:
        """The catalogue's sizes, each twice the one before, in every location."""
        locations = self.catalogue.locations
        return [
            ServerType(
                name=name,
                cores=2 * number,
                memory_gb=4.0 * number,
                disk_gb=80 * number,
                monthly_price={location: Decimal(5 * number) for location in locations},
            )
            for number, name in enumerate(self.catalogue.sizes, start=1)
        ]

    # --- snapshots ---------------------------------------------------------------------------
    def create_snapshot(
        self, server_id: str, *, name: str, labels: dict[str, str]
    ) -> SnapshotStarted:
        """Start a snapshot of a live server; a taken live name is refused (permanent), as the
        caller must have looked for it first. Fault point `provider.snapshot`."""
        lost = self.store.fault("provider.snapshot")
        server = self.store.get(server_id)
        if server is None:
            raise ProviderError(f"server {server_id} not found", transient=False, code="not_found")
        now = self.store.now()
        record = self.store.snapshot_create(
            server_id=server_id,
            name=name,
            labels=dict(labels),
            size_gb=self._snapshot_gb(server.size),
            ready_at=now + timedelta(seconds=self.snapshot_seconds),
        )
        if record is None:
            raise ProviderError(
                f"snapshot name {name!r} is already used", transient=False, code="uniqueness_error"
            )
        if lost is not None:
            raise lost
        return SnapshotStarted(snapshot_id=record.id, action_id=f"snapshot-{record.id}")

    def find_snapshots(self, labels: dict[str, str]) -> list[Snapshot]:
        """Live snapshots carrying every label, oldest first."""
        return [self._snapshot(record) for record in self.store.snapshot_find(labels)]

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        """The live snapshot, or None."""
        record = self.store.snapshot_get(snapshot_id)
        return self._snapshot(record) if record else None

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete; an unknown snapshot is fine. Fault point `provider.snapshot_delete`."""
        lost = self.store.fault("provider.snapshot_delete")
        self.store.snapshot_delete(snapshot_id)
        if lost is not None:
            raise lost

    def snapshot_price_per_gb_month(self, location: str) -> Decimal:
        """One price everywhere: a cent per GB and month."""
        return SNAPSHOT_PRICE_PER_GB_MONTH

    def _snapshot_action(self, snapshot_id: str) -> ActionStatus:
        record = self.store.snapshot_get(snapshot_id, deleted=True)
        if record is None:
            return "error"
        return "success" if self.store.now() >= record.ready_at else "running"

    def _snapshot_gb(self, size: str) -> float:
        sizes = list(self.catalogue.sizes)
        step = sizes.index(size) + 1 if size in sizes else 1
        return SNAPSHOT_GB_PER_SIZE_STEP * step

    def _check_size(self, current: str, wanted: str) -> None:
        sizes = list(self.catalogue.sizes)
        if wanted not in sizes:
            raise ProviderError(f"unknown size {wanted!r}", transient=False, code="invalid_input")
        if current in sizes and sizes.index(wanted) < sizes.index(current):
            raise ProviderError(
                f"size {wanted!r} has a smaller disk than the server's",
                transient=False,
                code="invalid_server_type",
            )

    def _check_image(self, image: str) -> None:
        if not image.isdigit():
            return  # an image name ("debian-12"): every name is fine here
        snapshot = self.store.snapshot_get(image)
        if snapshot is None or self.store.now() < snapshot.ready_at:
            raise ProviderError(
                f"image {image} not found or not available", transient=False, code="not_found"
            )

    def _snapshot(self, record: FakeSnapshotRecord) -> Snapshot:
        ready = self.store.now() >= record.ready_at
        return Snapshot(
            id=record.id,
            name=record.name,
            labels=dict(record.labels),
            status="available" if ready else "creating",
            size_gb=record.size_gb if ready else None,
            server_id=record.server_id or None,
            created_at=record.created_at,
        )

    # --- machinery ---------------------------------------------------------------------------
    def _set_power(self, server_id: str, *, on: bool) -> str:
        self._fail_if_due("provider.power_on" if on else "provider.power_off")
        if not self.store.set_power(server_id, on=on):
            raise ProviderError(f"server {server_id} not found", transient=False, code="not_found")
        return f"power-{server_id}"

    def _fail_if_due(self, point: str) -> None:
        lost = self.store.fault(point)
        if lost is not None:
            raise lost

    def _booted(self, record: FakeRecord) -> bool:
        return self.store.now() >= record.created_at + timedelta(seconds=self.boot_seconds)

    def _server(self, record: FakeRecord) -> Server:
        status = "running" if record.powered_on else "off"
        if not self._booted(record):
            status = "initializing"
        return Server(
            id=record.id,
            name=record.name,
            status=status,
            location=record.location,
            size=record.size,
            labels=dict(record.labels),
            ipv4=record.ipv4,
            ipv6=record.ipv6,
            created_at=record.created_at,
        )


def _same_owner(found: dict[str, str], wanted: dict[str, str]) -> bool:
    return any(key in wanted and found.get(key) == wanted[key] for key in OWNER_LABELS)
