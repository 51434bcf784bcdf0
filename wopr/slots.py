"""Counted slots shared by every web process: "at most N at a time" over a shared cache.

A pool of `size` slots is the keys `<pool>:0` .. `<pool>:<size-1>` of the `api` cache (Redis
with REDIS_URL, the database cache without). Taking a slot is `cache.add` on a free key, which
both backends make atomic (Redis `SET NX`, a primary key in the database), so two processes
never hold the same slot, whatever their number. Every slot expires on its own: a process that
crashes while holding one frees it at the expiry instead of leaking it for good.

The order event streams hold a slot while open and release it when they end. Taking one reads
the whole pool, so pools stay small (a few per client, a few hundred in all); the request
throttles, whose budgets can be large, count in wopr.throttle instead.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches

CACHE_ALIAS = "api"


@dataclass(frozen=True)
class Slot:
    """One held slot: its key and the token that proves this holder took it."""

    key: str
    token: str


def _pool_keys(pool: str, size: int) -> list[str]:
    return [f"{pool}:{index}" for index in range(size)]


def _cache() -> Any:
    return caches[CACHE_ALIAS]


def slot_take(*, pool: str, size: int, ttl: float) -> Slot | None:
    """Take a free slot of the pool for at most `ttl` seconds; None when all are held.

    One read finds the free keys; the free ones are tried in random order so that concurrent
    takers rarely collide, and a collision only means trying the next free key.
    """
    keys = _pool_keys(pool, size)
    held = _cache().get_many(keys)
    free = [key for key in keys if key not in held]
    random.shuffle(free)
    token = secrets.token_hex(8)
    until = time.time() + ttl
    for key in free:
        # Redis cannot keep a key for less than a second; never round a slot down to nothing.
        if _cache().add(key, {"token": token, "until": until}, timeout=max(1, math.ceil(ttl))):
            return Slot(key=key, token=token)
    return None


def slot_release(slot: Slot) -> None:
    """Free a slot early. A slot that expired and was taken by someone else stays theirs."""
    held = _cache().get(slot.key)
    if isinstance(held, dict) and held.get("token") == slot.token:
        _cache().delete(slot.key)


def slot_wait(*, pool: str, size: int) -> float:
    """Seconds until the first held slot of the pool expires (0 when one is free now)."""
    held = _cache().get_many(_pool_keys(pool, size))
    if len(held) < size:
        return 0.0
    untils = [value["until"] for value in held.values() if isinstance(value, dict)]
    return max(0.0, min(untils, default=0.0) - time.time())
