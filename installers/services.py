"""Which installer a new Beacon downloads, and from where."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class InstallerRef:
    """The current installer release. `url` is None when the control plane serves the tarball
    itself (`GET /api/v1/beacons/<id>/installer`, with the job's bearer token)."""

    version: str
    sha256: str
    url: str | None


def current_installer() -> InstallerRef | None:
    """The release new Beacons install: WOPR_INSTALLER_URL/WOPR_INSTALLER_SHA256 when set."""
    if settings.WOPR_INSTALLER_URL and settings.WOPR_INSTALLER_SHA256:
        return InstallerRef(
            version=settings.WOPR_INSTALLER_VERSION,
            sha256=settings.WOPR_INSTALLER_SHA256.lower(),
            url=settings.WOPR_INSTALLER_URL,
        )
    return None
