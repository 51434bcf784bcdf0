"""The project's own rows: request counters for the API throttles when there is no Redis."""

from __future__ import annotations

from django.db import models


class ThrottleWindow(models.Model):
    """How many requests one client made in one fixed window of its throttle.

    Used only without Redis (wopr.throttle): one row per client and window, counted with an
    atomic update, so every web process and replica shares the budget exactly.
    """

    key = models.CharField(max_length=200)
    window = models.BigIntegerField(help_text="The window's number: its start time // period.")
    hits = models.PositiveIntegerField(default=0)
    expires = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "window"], name="throttle_window_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.key} #{self.window}: {self.hits}"
