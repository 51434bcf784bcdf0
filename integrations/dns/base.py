"""The interface of DNS backends: typed records in and out, idempotent upsert and delete.

A backend is one zone at one DNS provider. It never touches the ORM and never returns raw JSON;
failures are `integrations.errors.DnsError`, which says whether trying again may help.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from integrations.errors import DnsError

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

    def upsert_all(self, specs: Sequence[RecordSpec]) -> list[Record]:
        """`upsert` for each spec (one name and type per spec), in the specs' order.

        A backend that can list a name's records at once and write in batches overrides this
        to spend fewer calls; the outcome is the same."""
        return [self.upsert(spec) for spec in specs]

    def delete_names(self, names: Sequence[str], record_types: Sequence[str]) -> int:
        """Delete every record of `record_types` at each of `names`, known to us or not (a crash
        may have left one unrecorded); returns how many were deleted."""
        deleted = 0
        for name in names:
            for record_type in record_types:
                for record in self.find(name, record_type):
                    self.delete(record.id)
                    deleted += 1
        return deleted

    def list_records(self, suffix: str) -> list[Record]:
        """Every record whose name ends with `suffix` (for reconciliation).

        Optional: a backend without it raises NotImplementedError and reconciliation skips DNS.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot list records")
