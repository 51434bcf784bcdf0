"""A vendor's request budget, shared by every worker: the protocol adapters spend through.

The pipeline (`integrations.http.VendorClient`) asks `check()` before sending and tells
`record(...)` what each answer said. The database-backed budget lives app-side
(`provisioning.ratelimit.DbRateBudget`); `NoBudget` never blocks (fakes, single-adapter tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class RateBudget(Protocol):
    """A vendor's request budget shared by every worker."""

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
    """A budget that never blocks (the fakes, and unit tests of a single adapter)."""

    def check(self) -> None:
        return None

    def record(self, **kwargs: object) -> None:
        return None


@dataclass(frozen=True)
class BudgetReading:
    """What one answer said about the budget (a vendor hook reads it from the headers)."""

    remaining: int | None = None
    limit: int | None = None
    reset_at: datetime | None = None
    retry_after: float | None = None
