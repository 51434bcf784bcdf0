"""Start-up check: a production control plane has an installer to hand new Beacons.

Without one every paid server would boot, find nothing to install and be rolled back an hour
later, so with DEBUG off the start is refused (tag `wopr`: wopr.wsgi and the container's
entrypoint run it). `migrate` runs the checks too, before this app's table exists: a missing
table (or a database not reachable yet) means "not yet known", a Warning, so the first migrate
of a fresh database is never blocked by the check that needs its result.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.db import DatabaseError, connection

from installers.models import VERSION_PATTERN, InstallerRelease

HOW_TO_CONFIGURE = (
    "register a release and make it current (admin: Installer releases, or `manage.py "
    "installer_register <tarball> --version V --current`), or set both WOPR_INSTALLER_URL and "
    "WOPR_INSTALLER_SHA256"
)


def _serious(message: str, *, error_id: str, warning_id: str) -> CheckMessage:
    """An Error when DEBUG is off (the start stops), a Warning in development."""
    if settings.DEBUG:
        return Warning(message, id=warning_id)
    return Error(message, id=error_id)


def _environment_problems() -> list[CheckMessage]:
    """Half of the environment pair, or a checksum that is not 64 hex digits."""
    url, sha256 = settings.WOPR_INSTALLER_URL, settings.WOPR_INSTALLER_SHA256
    if bool(url) != bool(sha256):
        missing = "WOPR_INSTALLER_SHA256" if url else "WOPR_INSTALLER_URL"
        message = f"{missing} is not set; the installer from the environment needs both."
        return [_serious(message, error_id="installers.E002", warning_id="installers.W002")]
    if sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256.strip()):
        message = "WOPR_INSTALLER_SHA256 is not a SHA-256 (64 hex digits); the value is not shown."
        return [_serious(message, error_id="installers.E003", warning_id="installers.W003")]
    if url and not url.startswith(("https://", "http://")):
        message = "WOPR_INSTALLER_URL is not an http(s) URL."
        return [_serious(message, error_id="installers.E003", warning_id="installers.W003")]
    if url and not re.fullmatch(VERSION_PATTERN, settings.WOPR_INSTALLER_VERSION):
        message = (
            "WOPR_INSTALLER_VERSION is not a plain version (letters, digits, '.', '+', '_', '-'); "
            "every first boot would refuse it."
        )
        return [_serious(message, error_id="installers.E003", warning_id="installers.W003")]
    return []


def _current_release() -> tuple[bool, InstallerRelease | None]:
    """(known, the current release). Not known while the table is missing (before the first
    migrate) or the database does not answer (the entrypoint checks before waiting for it)."""
    try:
        if InstallerRelease._meta.db_table not in connection.introspection.table_names():
            return False, None
        return True, InstallerRelease.objects.filter(current=True).first()
    except DatabaseError:
        return False, None


def _release_problems() -> list[CheckMessage]:
    """No installer at all, or a current upload whose file is not on this host's disk (run
    with DEBUG off only)."""
    known, release = _current_release()
    if not known:
        return [
            Warning(
                "Whether an installer release is current is not known yet (the database is "
                "not migrated or not reachable); a start with DEBUG off needs one: "
                f"{HOW_TO_CONFIGURE}.",
                id="installers.W001",
            )
        ]
    if release is None:
        return [
            Error(f"No Beacon installer is configured: {HOW_TO_CONFIGURE}.", id="installers.E001")
        ]
    if release.uploaded and not (Path(settings.INSTALLERS_ROOT) / release.tarball_path).is_file():
        message = (
            f"The current installer release {release.version}'s tarball is not under "
            "INSTALLERS_ROOT on this host (is the volume mounted?)."
        )
        return [Error(message, id="installers.E004")]
    return []


def check_installer_configured(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The environment pair is whole and well formed; else a release is current and on disk."""
    problems = _environment_problems()
    if problems or settings.WOPR_INSTALLER_URL or settings.DEBUG:
        # Development runs on the fake cloud, whose Beacons download nothing: no database
        # query and no noise on every manage.py command.
        return problems
    return _release_problems()
