"""Generated documents (PDFs) and the log of every e-mail sent."""

from __future__ import annotations

from django.db import models


class DocumentKind(models.TextChoices):
    WELCOME_CARD = "welcome_card", "Welcome card"
    CUSTOM_DOMAIN_GUIDE = "custom_domain_guide", "Custom-domain guide"


class Document(models.Model):
    """A PDF rendered for a Beacon; one per Beacon and kind, stored under DOCUMENTS_ROOT."""

    beacon = models.ForeignKey(
        "provisioning.Beacon", on_delete=models.CASCADE, related_name="documents"
    )
    kind = models.CharField(max_length=32, choices=DocumentKind.choices)
    path = models.CharField(max_length=500, help_text="Relative to DOCUMENTS_ROOT.")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["beacon", "kind"], name="document_unique_beacon_kind")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.beacon_id}"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class EmailMessage(models.Model):
    """One e-mail, keyed by the cause that sends it, so it goes out at most once per cause."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    template = models.CharField(max_length=64)
    recipient = models.EmailField()
    subject = models.CharField(max_length=255, blank=True)
    beacon = models.ForeignKey(
        "provisioning.Beacon", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    order = models.ForeignKey(
        "billing.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=8, choices=EmailStatus.choices, default=EmailStatus.PENDING
    )
    provider_message_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # The plain-text body as sent, for staff (the Beacon page). A one-time secret in an e-mail
    # (the set-your-password link) is replaced by a placeholder before it is stored.
    body_text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_at"])]  # changelist order, metrics' window

    def __str__(self) -> str:
        return f"{self.template} to {self.recipient} ({self.status})"
