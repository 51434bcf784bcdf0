"""`manage.py installer_register`: register an installer release from the command line.

    manage.py installer_register dist/wopr-reference-installer-1.0.0.tar.gz \
        --version 1.0.0 --current
    manage.py installer_register --url https://example.com/i-1.1.tar.gz --sha256 HEX --version 1.1

For operators and CI, the same services as the admin: an upload's SHA-256 is computed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from installers.models import InstallerRelease
from installers.services import (
    InstallerTarballInvalid,
    installer_release_create_upload,
    installer_release_create_url,
)


class Command(BaseCommand):
    """Register a tarball (uploaded to INSTALLERS_ROOT) or a URL release, optionally current."""

    help = "Registers a Beacon installer release: a tarball, or --url with --sha256."
    # A production start is refused until an installer is configured: registering the first
    # one must not be refused by that same check.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """`--version` is the release's here, not Django's version: the later one wins."""
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tarball", nargs="?", type=Path, help="the installer .tar.gz")
        parser.add_argument("--version", dest="release_version", required=True)
        parser.add_argument("--url", default="", help="where Beacons download it (no tarball)")
        parser.add_argument("--sha256", default="", help="the URL release's SHA-256")
        parser.add_argument("--notes", default="")
        parser.add_argument("--current", action="store_true", help="make it the current release")

    def handle(self, *args: Any, **options: Any) -> None:
        tarball, url, sha256 = options["tarball"], options["url"], options["sha256"]
        if bool(tarball) == bool(url):
            raise CommandError("give either a tarball or --url (with --sha256)")
        if url and not sha256:
            raise CommandError("--url needs --sha256")
        if tarball and sha256:
            raise CommandError("--sha256 is computed for a tarball; give it only with --url")
        try:
            release = self._register(options)
        except (ValidationError, InstallerTarballInvalid, OSError) as problem:
            raise CommandError(_message(problem)) from None
        current = " (current)" if release.current else ""
        self.stdout.write(f"installer {release.version} {release.sha256}{current}")

    def _register(self, options: dict[str, Any]) -> InstallerRelease:
        common = {
            "version": options["release_version"],
            "notes": options["notes"],
            "make_current": options["current"],
        }
        if options["url"]:
            return installer_release_create_url(
                url=options["url"], sha256=options["sha256"], **common
            )
        with options["tarball"].open("rb") as handle:
            return installer_release_create_upload(tarball=handle, **common)


def _message(problem: Exception) -> str:
    if isinstance(problem, ValidationError) and hasattr(problem, "message_dict"):
        return "; ".join(
            f"{field}: {' '.join(text)}" for field, text in problem.message_dict.items()
        )
    return str(problem)
