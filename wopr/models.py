"""The project's own rows: request counters for the API throttles when there is no Redis."""

from __future__ import annotations

from django.conf import settings
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


class StaffIdentity(models.Model):
    """Which OpenID Connect subject (at which issuer) a staff user is.

    Staff signing in with Authentik are found by the token's `sub`, never by e-mail alone (an
    address can change hands); the issuer is part of the key so another provider's `sub` can
    never match. Users made by single sign-on have no usable local password.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_identity"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "staff identities"
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "subject"], name="staff_identity_issuer_subject_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} @ {self.issuer}"
