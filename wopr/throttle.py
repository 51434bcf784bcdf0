"""Fixed-window request counters shared by every web process: "N per period" in O(1) work.

A client's budget is one counter per window (the period's number since the epoch). With
Redis the counter is a cache key (`add` then `incr`: Redis' INCR is atomic); without it, a
ThrottleWindow row counted by an UPDATE and read back in the same transaction, which holds
the row's lock: two processes never both read "10 of 10". Either way one request costs a
constant amount of work, whatever the rate (a rate of 100,000/min is as cheap as 10/min).

A fixed window lets a client spend its budget at the end of one window and again at the start
of the next (at most twice the rate across a boundary); that is the price of constant work.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import IntegrityError, transaction
from django.db.models import F

from wopr.models import ThrottleWindow

CACHE_ALIAS = "api"
# The clock the windows are cut from (tests pin it to a moment inside one window).
clock = time.time


@dataclass(frozen=True)
class Count:
    """This request's number in its window, and seconds until the window ends."""

    hits: int
    resets_in: float


def throttle_hit(*, key: str, period: float) -> Count:
    """Count one request for `key` in the current window of `period` seconds."""
    now = clock()
    window = int(now // period)
    resets_in = (window + 1) * period - now
    cache = caches[CACHE_ALIAS]
    if isinstance(cache, DatabaseCache):
        return Count(_row_hit(key=key, window=window, ends=now + resets_in), resets_in)
    return Count(_cache_hit(cache, key=f"throttle:{key}:{window}", ttl=resets_in), resets_in)


def _cache_hit(cache: object, *, key: str, ttl: float) -> int:
    timeout = max(1, math.ceil(ttl)) + 1
    cache.add(key, 0, timeout=timeout)  # type: ignore[attr-defined]
    try:
        return cache.incr(key)  # type: ignore[attr-defined]
    except ValueError:  # expired between add and incr: this request starts the window
        cache.add(key, 1, timeout=timeout)  # type: ignore[attr-defined]
        return 1


def _row_hit(*, key: str, window: int, ends: float) -> int:
    rows = ThrottleWindow.objects.filter(key=key, window=window)
    with transaction.atomic():
        if rows.update(hits=F("hits") + 1):
            return rows.values_list("hits", flat=True).get()
    expires = datetime.fromtimestamp(ends, tz=UTC)
    try:
        with transaction.atomic():
            ThrottleWindow.objects.create(key=key, window=window, hits=1, expires=expires)
    except IntegrityError:  # another process opened the window first: count in it
        return _row_hit(key=key, window=window, ends=ends)
    # Once per client and window: forget windows that ended a while ago (indexed, bounded).
    ThrottleWindow.objects.filter(expires__lt=expires - timedelta(hours=1)).delete()
    return 1
