"""Installer releases: versioned Beacon installer tarballs with their SHA-256; one is current."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

SHA256_PATTERN = r"^[0-9a-f]{64}$"
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"

sha256_validator = RegexValidator(SHA256_PATTERN, "A SHA-256 is 64 lower-case hex digits.")
# The version becomes part of a file name on the Beacon (installer-<version>.tar.gz).
version_validator = RegexValidator(
    VERSION_PATTERN, "Letters, digits, '.', '+', '_' and '-' only, starting with a letter or digit."
)


class InstallerRelease(models.Model):
    """One installer tarball: uploaded to the control plane (served to Beacons with their job
    token) or published elsewhere (`url`, downloaded by the Beacon from there).

    Never changed after creation but for its notes and `current`: Beacons already booting hold
    its version and SHA-256 in their bootstrap.json. An uploaded tarball lives at
    INSTALLERS_ROOT/<tarball_path>, a path named by its SHA-256, so no upload overwrites another.
    """

    version = models.CharField(max_length=64, unique=True, validators=[version_validator])
    sha256 = models.CharField(
        "SHA-256",
        max_length=64,
        validators=[sha256_validator],
        help_text="Computed by the control plane for an upload; given by staff for a URL.",
    )
    tarball_path = models.CharField(
        max_length=200, blank=True, help_text="Relative to INSTALLERS_ROOT; empty for a URL."
    )
    size_bytes = models.BigIntegerField(null=True, blank=True)
    url = models.URLField(
        "URL",
        max_length=1000,
        blank=True,
        help_text="Where Beacons download a release that is not uploaded here.",
    )
    notes = models.TextField(blank=True)
    current = models.BooleanField(
        default=False,
        help_text="The release new Beacons install (unless the environment names one).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["current"],
                condition=Q(current=True),
                name="installers_one_current_release",
            ),
            models.CheckConstraint(
                condition=(Q(tarball_path="") & ~Q(url="")) | (~Q(tarball_path="") & Q(url="")),
                name="installers_release_uploaded_or_url",
            ),
        ]

    def __str__(self) -> str:
        return f"installer {self.version}"

    @property
    def uploaded(self) -> bool:
        """Whether the control plane serves this release itself."""
        return bool(self.tarball_path)
