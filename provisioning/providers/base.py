"""The interface every cloud provider adapter implements, with typed values in and out.

Adapters never touch the ORM (the fake is the one exception: its "cloud" lives in the
database so every process sees the same servers) and never return raw JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from wopr.lib.errors import ProviderError

ActionStatus = Literal["running", "success", "error"]

__all__ = [
    "ActionStatus",
    "CloudProvider",
    "Created",
    "Location",
    "ProviderError",
    "RateBudget",
    "Server",
    "ServerSpec",
    "ServerType",
]


class RateBudget(Protocol):
    """A vendor's request budget shared by every worker (see provisioning.ratelimit)."""

    def check(self) -> None:
        """Raise a transient error, without sending anything, while the budget is spent."""

    def record(
        self,
        *,
        remaining: int | None,
        limit: int | None = None,
        reset_at: datetime | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Remember what the vendor's last answer said about the budget."""


class NoBudget:
    """A budget that never blocks (the fake, and unit tests of a single adapter)."""

    def check(self) -> None:
        return None

    def record(self, **kwargs: object) -> None:
        return None


@dataclass(frozen=True)
class ServerSpec:
    """What to create. `labels` never carry personal data (no e-mail, no name)."""

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


class CloudProvider(ABC):
    """One cloud. Every mutating call returns an action id to poll, never waits itself."""

    kind: str

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

    def protect(self, server_id: str) -> None:  # noqa: B027  (optional: not every cloud has it)
        """Turn delete protection on (a no-op where the provider has no such thing)."""
