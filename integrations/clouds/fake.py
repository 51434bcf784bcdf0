"""The fake cloud: the provider contract over a store the app injects (no ORM, no app here).

Servers boot `boot_seconds` after creation. Where the servers live (the app keeps them in the
database so every process sees the same) and which faults are due are the store's business;
which sizes and locations are sold is passed in as catalogue facts.
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
    Server,
    ServerSpec,
    ServerType,
)

OWNER_LABELS = ("wopr-job", "wopr-beacon")


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
        self, *, store: FakeCloudStore, catalogue: FakeCatalogue, boot_seconds: float = 0
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.boot_seconds = boot_seconds

    def create_server(self, spec: ServerSpec) -> Created:
        """Create (or adopt our own server of that name, as HetznerProvider does)."""
        lost = self.store.fault("provider.create")
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
        """A create action runs until the server booted; power actions are done at once."""
        verb, _, server_id = action_id.partition("-")
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
        )


def _same_owner(found: dict[str, str], wanted: dict[str, str]) -> bool:
    return any(key in wanted and found.get(key) == wanted[key] for key in OWNER_LABELS)
