"""The interface of DNS backends: typed records in and out, idempotent upsert and delete."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from wopr.lib.errors import DnsError

__all__ = ["DnsBackend", "DnsError", "Record", "RecordSpec"]


@dataclass(frozen=True)
class RecordSpec:
    """A record we want to exist."""

    record_type: str
    name: str
    content: str
    ttl: int = 300
    proxied: bool = False


@dataclass(frozen=True)
class Record:
    """A record as the DNS provider holds it."""

    id: str
    record_type: str
    name: str
    content: str
    ttl: int
    proxied: bool


class DnsBackend(ABC):
    """One DNS provider's zone."""

    kind: str

    @abstractmethod
    def find(self, name: str, record_type: str) -> list[Record]:
        """Records of `record_type` at exactly `name`."""

    @abstractmethod
    def upsert(self, spec: RecordSpec) -> Record:
        """Make exactly one record of this name and type hold `spec` (list, then create or
        patch), so a retry never leaves two."""

    @abstractmethod
    def delete(self, record_id: str) -> None:
        """Delete a record; an unknown id is not an error."""

    def list_records(self, suffix: str) -> list[Record]:
        """Every record whose name ends with `suffix` (for reconciliation).

        Optional: a backend without it raises NotImplementedError and reconciliation skips DNS.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot list records")
