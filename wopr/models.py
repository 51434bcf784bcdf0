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


class StaffAction(models.Model):
    """One thing a staff member did: who, when, to what, and what came of it (the audit trail).

    Written by `wopr.audit.staff_action_record` from every staff action (the Beacon page's
    buttons, the changelists' actions, refunds, sweeps) and from every admin add, change and
    delete (Django's LogEntry, copied as it is written). Never changed or deleted from the admin.
    The custom permissions below are the staff roles' levers (wopr.roles).
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept when the user is deleted: the trail must still say who it was.
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)  # "provisioning.beacon"
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    outcome = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "at"])]
        permissions = [
            ("retry_job", "Retry failed or waiting jobs"),
            ("resend_email", "Resend welcome e-mails and regenerate PDFs"),
            ("suspend_beacon", "Suspend, resume and power on Beacons for export"),
            ("cancel_job", "Cancel jobs (deletes what they made)"),
            ("resize_beacon", "Resize Beacons"),
            ("restore_snapshot", "Restore snapshots to new servers"),
            ("sweep_now", "Run the health, reconcile and job sweeps now"),
            ("decommission_beacon", "Decommission Beacons now"),
            ("refund_order", "Refund orders and cancel their subscriptions"),
            ("view_metrics", "Read the Prometheus metrics"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.target_repr}"


class StaffNote(models.Model):
    """A note staff leave on a Beacon or on a customer (exactly one of the two)."""

    beacon = models.ForeignKey(
        "provisioning.Beacon",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="staff_notes",
    )
    customer = models.ForeignKey(
        "billing.Customer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="staff_notes",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150, blank=True)
    body = models.TextField(max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(beacon__isnull=False, customer__isnull=True)
                | models.Q(beacon__isnull=True, customer__isnull=False),
                name="staff_note_one_target",
            ),
        ]

    def __str__(self) -> str:
        return f"Note by {self.author_name or '?'} at {self.created_at:%Y-%m-%d %H:%M}"
