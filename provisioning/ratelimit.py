"""The shared request budget of a vendor API, kept in the database for every worker to see."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from integrations.errors import ProviderError
from provisioning.models import RateLimitBudget


class DbRateBudget:
    """Implements the adapters' `RateBudget` protocol over a RateLimitBudget row."""

    def __init__(self, key: str, error_class: type[ProviderError] = ProviderError) -> None:
        self.key = key
        self.error_class = error_class

    def check(self) -> None:
        """Raise a transient error (retry at the reset) while the budget is spent."""
        blocked = (
            RateLimitBudget.objects.filter(key=self.key, blocked_until__gt=timezone.now())
            .values_list("blocked_until", flat=True)
            .first()
        )
        if blocked is not None:
            wait = max((blocked - timezone.now()).total_seconds(), 0.0)
            raise self.error_class(
                f"{self.key} API budget spent; next request after {blocked:%H:%M:%S}",
                transient=True,
                code="rate_limit_budget",
                retry_after=wait,
            )

    def record(
        self,
        *,
        remaining: int | None,
        limit: int | None = None,
        reset_at: datetime | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Store what the vendor's answer said about the budget."""
        blocked_until = None
        if retry_after is not None:
            blocked_until = timezone.now() + timedelta(seconds=retry_after)
        elif remaining is not None and remaining <= 0 and reset_at is not None:
            blocked_until = reset_at
        values = {"remaining": remaining, "limit": limit, "blocked_until": blocked_until}
        # Written only when it changes: an answer that says what the row says writes nothing.
        changed = RateLimitBudget.objects.filter(key=self.key).exclude(**values).update(**values)
        if not changed:  # the same already, or no row yet: insert it unless it exists
            RateLimitBudget.objects.bulk_create(
                [RateLimitBudget(key=self.key, **values)], ignore_conflicts=True
            )
