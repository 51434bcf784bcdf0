"""The interface every cloud provider adapter implements, with typed values in and out.

Adapters never touch the ORM and never return raw JSON. The in-database fake reaches its store
through a protocol the app injects (see integrations.clouds.fake).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from integrations.budget import NoBudget, RateBudget
from integrations.errors import ProviderError

ActionStatus = Literal["running", "success", "error"]
SnapshotStatus = Literal["creating", "available", "error"]

__all__ = [
    "ActionStatus",
    "CloudProvider",
    "Created",
    "Location",
    "NoBudget",
    "ProviderError",
    "RateBudget",
    "ResizeStarted",
    "Server",
    "ServerSpec",
    "ServerType",
    "Snapshot",
    "SnapshotStarted",
    "SnapshotStatus",
    "parse_timestamp",
]


@dataclass(frozen=True)
class ServerSpec:
    """What to create. `labels` never carry personal data (no e-mail, no name).

    `image` is an image name ("debian-12") or, for a restore, a snapshot id as the provider
    gave it (Snapshot.id: numeric at Hetzner and DigitalOcean)."""

    name: str
    size: str
    image: str
    location: str
    labels: dict[str, str]
    user_data: str
    ssh_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Server:
    """A server as the provider reports it."""

    id: str
    name: str
    status: str  # "initializing", "starting", "running", "off", ...
    location: str
    size: str
    labels: dict[str, str]
    ipv4: str | None
    ipv6: str | None
    protected: bool = False
    # When the provider made it (None where it does not say): a stray's age (reconcile).
    created_at: datetime | None = None


@dataclass(frozen=True)
class Location:
    """A place servers can be created, as the provider names it."""

    name: str
    available: bool = True


@dataclass(frozen=True)
class ServerType:
    """A server size and its monthly price per location (None where not sold)."""

    name: str
    cores: int
    memory_gb: float
    disk_gb: int
    monthly_price: dict[str, Decimal] = field(default_factory=dict)
    deprecated: bool = False


@dataclass(frozen=True)
class Created:
    """A create call's result: the server and the provider action to poll until it is ready."""

    server: Server
    action_id: str


@dataclass(frozen=True)
class Snapshot:
    """A server snapshot (image) as the provider reports it.

    `labels` carry {"wopr-snapshot": name, "wopr-beacon": id, "managed-by": "wopr"}; where the
    provider has no labels on images (DigitalOcean) they are read back from the name."""

    id: str
    name: str
    labels: dict[str, str]
    status: SnapshotStatus
    size_gb: float | None
    server_id: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class SnapshotStarted:
    """A snapshot request's result. Hetzner names the image at once; DigitalOcean only once
    the action finished (`snapshot_id` None then: find it by name when the action succeeded)."""

    snapshot_id: str | None
    action_id: str


@dataclass(frozen=True)
class ResizeStarted:
    """A resize request's result: the provider action to poll until the server has `size`.
    `grow_disk`: whether the disk grows too (permanent: a disk never shrinks)."""

    action_id: str
    size: str
    grow_disk: bool


class CloudProvider(ABC):
    """One cloud. Every mutating call returns an action id to poll, never waits itself."""

    kind: str
    # True where server names are unique, so a retried create_server finds and adopts the
    # server an earlier attempt made (no lookup by label needed before creating).
    adopts_on_create: bool = False

    def create_failed(self, server: Server, action_id: str) -> bool:
        """Whether a server that is not running yet never will: its create action failed.
        Reads the action; adapters skip that call where the server's state already tells."""
        return self.action_status(action_id) == "error"

    @abstractmethod
    def create_server(self, spec: ServerSpec) -> Created:
        """Create a server; raise ProviderError (transient or not) on failure."""

    @abstractmethod
    def get_server(self, server_id: str) -> Server | None:
        """The server, or None when the provider does not know it (deleted or never made)."""

    @abstractmethod
    def find_servers(self, labels: dict[str, str]) -> list[Server]:
        """Servers carrying all of `labels`."""

    @abstractmethod
    def action_status(self, action_id: str) -> ActionStatus:
        """Progress of an action returned by a mutating call."""

    @abstractmethod
    def power_off(self, server_id: str) -> str:
        """Power the server off; returns the action id."""

    @abstractmethod
    def power_on(self, server_id: str) -> str:
        """Power the server on; returns the action id."""

    @abstractmethod
    def delete_server(self, server_id: str) -> None:
        """Delete the server (lifting delete protection first where the provider has it);
        deleting an unknown server is not an error (idempotent)."""

    @abstractmethod
    def list_locations(self) -> list[Location]:
        """Every location the provider offers."""

    @abstractmethod
    def list_server_types(self) -> list[ServerType]:
        """Every server size with its prices."""

    @abstractmethod
    def create_snapshot(
        self, server_id: str, *, name: str, labels: dict[str, str]
    ) -> SnapshotStarted:
        """Start a snapshot of the server. `name` is unique per snapshot; the caller looks for
        an existing one first (find_snapshots({"wopr-snapshot": name})), the adapter does not."""

    @abstractmethod
    def find_snapshots(self, labels: dict[str, str]) -> list[Snapshot]:
        """Snapshots carrying every label (all pages)."""

    @abstractmethod
    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        """The snapshot, or None when the provider does not know it."""

    @abstractmethod
    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete the snapshot; an unknown one is not an error (idempotent)."""

    @abstractmethod
    def snapshot_price_per_gb_month(self, location: str) -> Decimal:
        """What a GB of snapshot costs a month at `location`, VAT excluded."""

    @abstractmethod
    def server_resize(self, server_id: str, size: str, *, grow_disk: bool = True) -> ResizeStarted:
        """Change the server's size (it must be off: ProviderError `server_not_stopped`
        otherwise). `grow_disk` grows the disk to the new size's: permanent, so the server can
        never again move to a size with a smaller disk; without it the disk stays as it is.
        Not idempotent at the vendor: the caller reads the server (its size, and
        `resize_in_progress`) first, so a lost answer or a retry sends no second change."""

    @abstractmethod
    def resize_in_progress(self, server_id: str) -> str | None:
        """The id of a resize action still running on the server, or None."""

    def protect(self, server_id: str) -> None:  # noqa: B027  (optional: not every cloud has it)
        """Turn delete protection on (a no-op where the provider has no such thing)."""


def parse_timestamp(value: str | None) -> datetime | None:
    """A vendor's ISO 8601 time, or None when it is missing or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
