"""Installer releases: an upload's SHA-256 is ours, files are content addressed and never
overwritten, one release is current, and the environment wins over the admin."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from installers.models import InstallerRelease
from installers.services import (
    InstallerNotServed,
    InstallerRef,
    InstallerTarballInvalid,
    current_installer,
    installer_file_current,
    installer_release_create_upload,
    installer_release_create_url,
    installer_release_make_current,
    installer_release_path,
)
from tests.installers.helpers import make_tarball

pytestmark = pytest.mark.django_db

SHA_A = "a" * 64


def upload(version: str, data: bytes, **kwargs) -> InstallerRelease:
    return installer_release_create_upload(version=version, tarball=io.BytesIO(data), **kwargs)


def test_an_upload_is_stored_under_its_own_sha256_computed_by_us(
    reference_tarball, installers_root
):
    release = upload("1.0.0", reference_tarball)

    digest = hashlib.sha256(reference_tarball).hexdigest()
    assert release.sha256 == digest
    assert release.size_bytes == len(reference_tarball)
    assert release.tarball_path == f"{digest}.tar.gz"
    assert installer_release_path(release) == (installers_root / f"{digest}.tar.gz").resolve()
    assert installer_release_path(release).read_bytes() == reference_tarball
    assert [p.name for p in installers_root.iterdir()] == [f"{digest}.tar.gz"]  # no temp left


def test_a_second_upload_never_overwrites_a_stored_file(reference_tarball, installers_root):
    first = upload("1.0.0", reference_tarball)
    stored = installer_release_path(first)
    inode = stored.stat().st_ino

    second = upload("1.0.1", reference_tarball)
    other = upload("2.0.0", make_tarball({"install": (b"#!/bin/sh\nexit 0\n", 0o755)}))

    assert second.tarball_path == first.tarball_path
    assert stored.stat().st_ino == inode
    assert installer_release_path(other) != stored
    assert len(list(installers_root.iterdir())) == 2


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not a tarball at all", "not a gzip-compressed tar"),
        (make_tarball({"setup.sh": (b"#!/bin/sh\n", 0o755)}), "no file `install`"),
        (make_tarball({"install": (b"#!/bin/sh\n", 0o644)}), "not executable"),
        (make_tarball({"sub/install": (b"#!/bin/sh\n", 0o755)}), "no file `install`"),
    ],
)
def test_an_upload_that_a_beacon_could_not_run_is_refused_and_leaves_nothing(
    data, problem, installers_root
):
    with pytest.raises(InstallerTarballInvalid, match=problem):
        upload("1.0.0", data)

    assert not InstallerRelease.objects.exists()
    assert list(installers_root.iterdir()) == []


def test_a_url_release_needs_a_sha256_of_64_hex_digits():
    with pytest.raises(ValidationError) as refused:
        installer_release_create_url(
            version="1.0.0", url="https://example.com/i.tar.gz", sha256="abc123"
        )
    assert "sha256" in refused.value.message_dict

    release = installer_release_create_url(
        version="1.0.0", url="https://example.com/i.tar.gz", sha256=" " + "AB" * 32 + "\n"
    )
    assert release.sha256 == "ab" * 32


def test_the_database_allows_one_current_release_only():
    InstallerRelease.objects.create(version="1", url="https://e.com/1", sha256=SHA_A, current=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        InstallerRelease.objects.create(
            version="2", url="https://e.com/2", sha256=SHA_A, current=True
        )


def test_a_release_is_uploaded_or_a_url_never_both_nor_neither():
    for fields in ({}, {"url": "https://e.com/x", "tarball_path": f"{SHA_A}.tar.gz"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            InstallerRelease.objects.create(version="x", sha256=SHA_A, **fields)


def test_making_a_release_current_says_which_one_stopped_being_current(reference_tarball):
    old = upload("1.0.0", reference_tarball, make_current=True)
    new = installer_release_create_url(version="1.1.0", url="https://e.com/1.1", sha256=SHA_A)

    assert installer_release_make_current(release=new) == old
    assert installer_release_make_current(release=new) is None  # already current
    assert list(InstallerRelease.objects.filter(current=True)) == [new]
    assert current_installer() == InstallerRef("1.1.0", SHA_A, "https://e.com/1.1")


def test_an_uploaded_current_release_is_served_by_us(reference_tarball):
    release = upload("1.0.0", reference_tarball, make_current=True)

    assert current_installer() == InstallerRef("1.0.0", release.sha256, None)
    served = installer_file_current()
    assert (served.version, served.sha256) == ("1.0.0", release.sha256)
    assert served.path.read_bytes() == reference_tarball


def test_the_environment_pair_wins_over_the_admins_current_release(settings, reference_tarball):
    upload("1.0.0", reference_tarball, make_current=True)
    settings.WOPR_INSTALLER_URL = "https://releases.example.com/wopr-9.tar.gz"
    settings.WOPR_INSTALLER_SHA256 = "B" * 64
    settings.WOPR_INSTALLER_VERSION = "9.0.0"

    assert current_installer() == InstallerRef(
        "9.0.0", "b" * 64, "https://releases.example.com/wopr-9.tar.gz"
    )
    with pytest.raises(InstallerNotServed) as not_served:
        installer_file_current()
    assert not_served.value.code == "installer_not_served"


def test_half_of_the_environment_pair_does_not_override_the_admin(settings, reference_tarball):
    release = upload("1.0.0", reference_tarball, make_current=True)
    settings.WOPR_INSTALLER_URL = "https://releases.example.com/wopr-9.tar.gz"

    assert current_installer() == InstallerRef("1.0.0", release.sha256, None)


def test_no_installer_at_all_is_none():
    assert current_installer() is None
    with pytest.raises(InstallerNotServed) as not_served:
        installer_file_current()
    assert not_served.value.code == "no_installer"
