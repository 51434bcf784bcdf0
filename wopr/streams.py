"""Permits for long-lived responses (the order event stream): caps that keep them from
starving the web process.

An open stream holds one gunicorn thread for up to ORDER_EVENTS_DEADLINE_SECONDS. Three caps
bound them, checked in this order, cheapest first:

- per process (ORDER_EVENTS_MAX_PER_PROCESS, below the process's thread count): a stream never
  takes the last threads of its process, so /api/health, the admin and the Stripe webhook
  always find one (a count in memory: it is about this process's own threads);
- per client address (ORDER_EVENTS_MAX_PER_CLIENT) and in total (ORDER_EVENTS_MAX_OPEN): slots
  of the shared cache (wopr.slots), so the caps hold across every process and replica.

A stream that cannot get a permit is refused at once: 429 for the client's own cap, 503 for a
full process or service, both with Retry-After.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from django.conf import settings

from wopr.slots import Slot, slot_release, slot_take

# Slots outlive their stream's deadline by this much, so a stream that ends on time always
# releases its own slot, and a crashed process's slot is free soon after.
SLOT_GRACE_SECONDS = 10
# Streams last under a minute; a refused client may try again shortly (or poll the status).
RETRY_AFTER_SECONDS = 5


class StreamRefused(Exception):
    """No permit: `status` is 429 (this client's cap) or 503 (process or service full)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = RETRY_AFTER_SECONDS


class _ProcessStreams:
    """How many streams this process holds open now (each one holds a thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)


PROCESS_STREAMS = _ProcessStreams()


@dataclass
class StreamPermit:
    """What one open stream holds; `release` gives it all back, once."""

    slots: list[Slot] = field(default_factory=list)
    in_process: bool = False
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        for slot in self.slots:
            slot_release(slot)
        if self.in_process:
            PROCESS_STREAMS.give_back()


def _client_pool(client: str) -> str:
    # Hashed: an IPv6 address or a proxy's odd value makes no odd cache key.
    return "streams:client:" + hashlib.sha256(client.encode()).hexdigest()[:24]


def stream_permit_take(*, client: str) -> StreamPermit:
    """A permit for one more open stream from `client`, or StreamRefused (nothing held)."""
    permit = StreamPermit()
    if not PROCESS_STREAMS.take(settings.ORDER_EVENTS_MAX_PER_PROCESS):
        raise StreamRefused(503, "This server has too many open event streams; try again.")
    permit.in_process = True
    ttl = settings.ORDER_EVENTS_DEADLINE_SECONDS + SLOT_GRACE_SECONDS
    try:
        mine = slot_take(
            pool=_client_pool(client), size=settings.ORDER_EVENTS_MAX_PER_CLIENT, ttl=ttl
        )
        if mine is None:
            raise StreamRefused(429, "Too many open event streams from this address.")
        permit.slots.append(mine)
        total = slot_take(pool="streams:all", size=settings.ORDER_EVENTS_MAX_OPEN, ttl=ttl)
        if total is None:
            raise StreamRefused(503, "The service has too many open event streams; try again.")
        permit.slots.append(total)
    except BaseException:
        permit.release()
        raise
    return permit
