"""A wall clock the tests move forward: `clock.advance(days=...)` moves
`django.utils.timezone.now`, which the job engine, the fakes and every model read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone


class Clock:
    """A wall clock the test can move forward."""

    def __init__(self, real_now: Any) -> None:
        self._real_now = real_now
        self.offset = timedelta()

    def now(self) -> datetime:
        return self._real_now() + self.offset

    def advance(self, **delta: float) -> datetime:
        self.offset += timedelta(**delta)
        return self.now()

    def stamp(self, seconds: int = 0) -> int:
        """A Stripe timestamp `seconds` after now."""
        return int(self.now().timestamp()) + seconds


@pytest.fixture(name="clock")
def clock_fixture(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock(timezone.now)
    monkeypatch.setattr(timezone, "now", moved.now)
    return moved
