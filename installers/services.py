"""Which installer a new Beacon downloads, and from where; registering and serving releases.

Precedence: WOPR_INSTALLER_URL with WOPR_INSTALLER_SHA256 (the environment) win over the release
staff made current in the admin, so an operator can pin the installer of a deployment (or of CI)
without touching the database; with neither, no installer is configured and a start with DEBUG
off is refused (installers.checks).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction

from installers.models import InstallerRelease

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class InstallerRef:
    """The current installer release. `url` is None when the control plane serves the tarball
    itself (`GET /api/v1/beacons/<id>/installer`, with the job's bearer token)."""

    version: str
    sha256: str
    url: str | None


@dataclass(frozen=True)
class InstallerFile:
    """The tarball this control plane serves to Beacons, on its disk."""

    version: str
    sha256: str
    path: Path


class InstallerNotServed(Exception):
    """The control plane has no tarball to hand out; `code` and the message say why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InstallerTarballInvalid(ValueError):
    """An upload that is not an installer tarball (gzip tar with an executable `install`)."""


def installer_env_configured() -> bool:
    """Whether the environment names the installer (both variables set: they then win)."""
    return bool(settings.WOPR_INSTALLER_URL and settings.WOPR_INSTALLER_SHA256)


def current_installer() -> InstallerRef | None:
    """The release new Beacons install: the environment's when WOPR_INSTALLER_URL and
    WOPR_INSTALLER_SHA256 are both set, else the release current in the admin, else None."""
    if installer_env_configured():
        return InstallerRef(
            version=settings.WOPR_INSTALLER_VERSION,
            sha256=settings.WOPR_INSTALLER_SHA256.strip().lower(),
            url=settings.WOPR_INSTALLER_URL,
        )
    release = InstallerRelease.objects.filter(current=True).first()
    if release is None:
        return None
    return InstallerRef(version=release.version, sha256=release.sha256, url=release.url or None)


def installer_release_path(release: InstallerRelease) -> Path:
    """The absolute path of an uploaded release's tarball; refuses paths outside the root."""
    root = Path(settings.INSTALLERS_ROOT).resolve()
    path = (root / release.tarball_path).resolve()
    if not release.tarball_path or not path.is_relative_to(root):
        raise ValueError(f"installer release {release.pk} has no tarball under INSTALLERS_ROOT")
    return path


def installer_file_current(sha256: str = "") -> InstallerFile:
    """The tarball a Beacon downloads from us, or InstallerNotServed saying why there is none.

    With `sha256` (the download URL in bootstrap.json names it), the uploaded release with that
    hash, current or not: a Beacon that boots while staff switch releases still gets the one its
    user data promised, instead of failing the checksum."""
    if installer_env_configured():
        raise InstallerNotServed(
            "installer_not_served",
            "The installer is downloaded from its own URL (WOPR_INSTALLER_URL), not from here.",
        )
    releases = InstallerRelease.objects.all()
    if sha256:
        release = releases.filter(sha256=sha256.lower(), tarball_path__gt="").first()
        if release is None:
            raise InstallerNotServed("no_installer", "No uploaded release has that SHA-256.")
    else:
        release = releases.filter(current=True).first()
    if release is None:
        raise InstallerNotServed("no_installer", "No installer release is current.")
    if not release.uploaded:
        raise InstallerNotServed(
            "installer_not_served",
            "The current installer release is downloaded from its own URL, not from here.",
        )
    return InstallerFile(
        version=release.version, sha256=release.sha256, path=installer_release_path(release)
    )


def installer_tarball_check(path: Path) -> None:
    """Refuse a file that a Beacon could not run: a gzip tar whose root holds an executable
    regular file `install` (the contract's entry point)."""
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            members = {member.name.removeprefix("./"): member for member in archive.getmembers()}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InstallerTarballInvalid(f"not a gzip-compressed tar archive ({error})") from None
    entry = members.get("install")
    if entry is None or not entry.isfile():
        raise InstallerTarballInvalid("the archive has no file `install` at its root")
    if not entry.mode & 0o100:
        raise InstallerTarballInvalid("`install` in the archive is not executable")


def _receive(tarball: IO[bytes], root: Path) -> tuple[Path, str, int]:
    """Copy the upload durably to a temporary file under `root`, hashing as it goes."""
    root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=root, prefix=".upload-", suffix=".tmp")
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as handle:
            while chunk := tarball.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest(), size


def _store(tarball: IO[bytes]) -> tuple[str, str, int]:
    """Store an upload at <sha256>.tar.gz (relative path, hash, size). A file of that name
    already holds these very bytes: it is kept, never overwritten."""
    root = Path(settings.INSTALLERS_ROOT).resolve()
    tmp, sha256, size = _receive(tarball, root)
    try:
        installer_tarball_check(tmp)
        relative = f"{sha256}.tar.gz"
        tmp.chmod(0o640)
        # Fails if present: the name is the content's hash, so the bytes there are these.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, root / relative)
    finally:
        tmp.unlink(missing_ok=True)
    return relative, sha256, size


def installer_release_create_upload(
    *, version: str, tarball: IO[bytes], notes: str = "", make_current: bool = False
) -> InstallerRelease:
    """Register an uploaded tarball. Its SHA-256 is computed here, never typed by staff.
    A taken or malformed version is refused before a byte is stored."""
    InstallerRelease(version=version, notes=notes).full_clean(
        exclude=["sha256"], validate_constraints=False
    )
    relative, sha256, size = _store(tarball)
    release = InstallerRelease(
        version=version, sha256=sha256, tarball_path=relative, size_bytes=size, notes=notes
    )
    release.full_clean()
    release.save()
    if make_current:
        installer_release_make_current(release=release)
    return release


def installer_release_create_url(
    *, version: str, url: str, sha256: str, notes: str = "", make_current: bool = False
) -> InstallerRelease:
    """Register a release published elsewhere; staff give its SHA-256 (validated as 64 hex)."""
    release = InstallerRelease(version=version, url=url, sha256=sha256.strip().lower(), notes=notes)
    release.full_clean()
    release.save()
    if make_current:
        installer_release_make_current(release=release)
    return release


def installer_release_make_current(*, release: InstallerRelease) -> InstallerRelease | None:
    """Make `release` the one new Beacons install; returns the release that stopped being
    current (None when none was, or it was this one).

    The current row is locked first, so two staff making different releases current one after
    the other end with the later one current; where none was current both may insert at once,
    and the unique constraint lets one win: the other tries again."""
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _switch_current(release)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _switch_current(release: InstallerRelease) -> InstallerRelease | None:
    previous = InstallerRelease.objects.select_for_update().filter(current=True).first()
    if previous is not None and previous.pk == release.pk:
        return None
    InstallerRelease.objects.filter(current=True).update(current=False)
    InstallerRelease.objects.filter(pk=release.pk).update(current=True)
    release.current = True
    return previous
