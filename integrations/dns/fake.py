"""The fake DNS backend: a zone in a store the app hands in, with injectable faults.

The app gives it a database-backed store (`dns.backends.fake`), so every process sees one zone;
`MemoryZone` serves tests of this layer alone. Faults come from a hook the app hands in too:
`faults(point)` raises a DnsError now (a refused or failed call), returns one to raise after the
change is made (a lost answer), or returns None.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Protocol

from integrations.dns.base import DnsBackend, DnsError, Record, RecordSpec

FaultHook = Callable[[str], DnsError | None]


class ZoneStore(Protocol):
    """Where the fake zone's records live: one record per name and type."""

    def find(self, name: str, record_type: str) -> list[Record]:
        """The records of `record_type` at `name`."""

    def with_suffix(self, suffix: str) -> list[Record]:
        """Every record whose name ends with `suffix`, by name and type."""

    def put(self, spec: RecordSpec) -> Record:
        """Create or overwrite the record of the spec's name and type."""

    def remove(self, record_id: str) -> None:
        """Remove a record; an unknown id is no error."""


def no_faults(point: str) -> DnsError | None:
    return None


class MemoryZone:
    """A ZoneStore in this process's memory."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], Record] = {}
        self._ids = itertools.count(1)

    def find(self, name: str, record_type: str) -> list[Record]:
        record = self._records.get((name, record_type))
        return [record] if record else []

    def with_suffix(self, suffix: str) -> list[Record]:
        return [self._records[key] for key in sorted(self._records) if key[0].endswith(suffix)]

    def put(self, spec: RecordSpec) -> Record:
        old = self._records.get((spec.name, spec.record_type))
        record_id = old.id if old else str(next(self._ids))
        record = Record(
            record_id, spec.record_type, spec.name, spec.content, spec.ttl, spec.proxied
        )
        self._records[(spec.name, spec.record_type)] = record
        return record

    def remove(self, record_id: str) -> None:
        for key, record in list(self._records.items()):
            if record.id == record_id:
                del self._records[key]


class FakeDns(DnsBackend):
    """A zone for the embedded first run, the tests and demos."""

    kind = "fake"

    def __init__(self, *, store: ZoneStore | None = None, faults: FaultHook = no_faults) -> None:
        self.store: ZoneStore = store if store is not None else MemoryZone()
        self.faults = faults

    def find(self, name: str, record_type: str) -> list[Record]:
        return self.store.find(name, record_type)

    def list_records(self, suffix: str) -> list[Record]:
        return self.store.with_suffix(suffix)

    def upsert(self, spec: RecordSpec) -> Record:
        lost = self.faults("dns.upsert")
        record = self.store.put(spec)
        if lost is not None:
            raise lost
        return record

    def delete(self, record_id: str) -> None:
        lost = self.faults("dns.delete")
        self.store.remove(record_id)
        if lost is not None:
            raise lost
