"""An order's public status as the event stream sees it, and one watcher per process that
reads it for every open stream.

Polling per stream cost a database connection per stream per second (opened and closed each
time, so that a watching browser holds none): 50 streams made 50 connections a second and
slowed the requests that matter. The watcher is one thread per web process that, once a
second, reads every watched order over one connection, however many streams watch them, then
wakes the streams. It runs only while some stream watches, and closes its connection between
reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from billing.models import Order, OrderStatus
from billing.serializers import OrderStatusSerializer
from provisioning.models import FINISHED_JOB_STATES

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class OrderSnapshot:
    """The order's public status now, and whether it can still change."""

    body: dict[str, Any]
    final: bool

    @cached_property  # the body never changes: digest it once
    def event_id(self) -> str:
        """A digest of the status: equal ids, equal statuses (what Last-Event-ID names)."""
        encoded = json.dumps(self.body, sort_keys=True, cls=DjangoJSONEncoder).encode()
        return hashlib.sha256(encoded).hexdigest()[:20]

    def as_event(self) -> bytes:
        data = json.dumps(self.body, cls=DjangoJSONEncoder)
        return f"id: {self.event_id}\ndata: {data}\n\n".encode()


def _final(order: Order, body: dict[str, Any]) -> bool:
    """Nothing the success page waits for will happen any more: the job ended, the order
    expired or was cancelled, or it was paid but flagged for staff with no Beacon made."""
    job = body["job"]
    if job and job["state"] in FINISHED_JOB_STATES:
        return True
    if order.status in (OrderStatus.EXPIRED, OrderStatus.CANCELLED):
        return True
    return order.status == OrderStatus.PAID and order.needs_attention and body["beacon"] is None


def order_snapshot(order_id: uuid.UUID) -> OrderSnapshot | None:
    """The order's status and finality (None when there is no such order); two queries."""
    order = Order.objects.select_related("beacon").filter(pk=order_id).first()
    if order is None:
        return None
    body = dict(OrderStatusSerializer(order).data)
    return OrderSnapshot(body=body, final=_final(order, body))


class OrderWatcher:
    """Reads every watched order once a second on one thread; a round in which some order
    changed wakes the streams waiting for one."""

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._changed = threading.Condition()
        self._watchers: dict[uuid.UUID, int] = {}
        self._latest: dict[uuid.UUID, OrderSnapshot] = {}
        self._round = 0
        self._thread: threading.Thread | None = None

    def watch(self, order_id: uuid.UUID) -> int:
        """Start watching; returns the current round (to wait for the next one)."""
        with self._changed:
            self._watchers[order_id] = self._watchers.get(order_id, 0) + 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="order-watch", daemon=True)
                self._thread.start()
            return self._round

    def unwatch(self, order_id: uuid.UUID) -> None:
        with self._changed:
            left = self._watchers.get(order_id, 0) - 1
            if left > 0:
                self._watchers[order_id] = left
            else:
                self._watchers.pop(order_id, None)
                self._latest.pop(order_id, None)

    def wait(
        self, order_id: uuid.UUID, seen: int, timeout: float
    ) -> tuple[int, OrderSnapshot | None]:
        """Wait up to `timeout` for a round after `seen`: (round, the order's snapshot from it,
        None when there is no news: no new round yet, or the order could not be read)."""
        with self._changed:
            self._changed.wait_for(lambda: self._round != seen, timeout=max(0.0, timeout))
            if self._round == seen:
                return seen, None
            return self._round, self._latest.get(order_id)

    def _run(self) -> None:
        while True:
            with self._changed:
                ids = list(self._watchers)
                if not ids:
                    self._thread = None
                    return
            latest = self._read(ids)
            with self._changed:
                news = {
                    key: value
                    for key, value in latest.items()
                    if key in self._watchers
                    and getattr(self._latest.get(key), "event_id", None) != value.event_id
                }
                # Streams wake only when an order changed: idle streams cost no CPU.
                if news:
                    self._latest.update(news)
                    self._round += 1
                    self._changed.notify_all()
            time.sleep(self.poll_seconds)

    def _read(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, OrderSnapshot]:
        """The snapshot of each order that can be read (a missing order is no news: a deleted
        order's stream just runs to its deadline)."""
        latest: dict[uuid.UUID, OrderSnapshot] = {}
        try:
            for order_id in ids:
                snapshot = order_snapshot(order_id)
                if snapshot is not None:
                    latest[order_id] = snapshot
        except Exception as error:
            # The class only: a driver's message may contain the connection string.
            logger.warning("order watch: reading orders failed (%s)", type(error).__name__)
        finally:
            connection.close()
        return latest


ORDER_WATCHER = OrderWatcher()
