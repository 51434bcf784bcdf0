"""The admin of installer releases: an upload's SHA-256 is computed, never typed; a URL needs
its hash; the list shows version, hash, current and source; "make current" asks first, naming
the release that stops being current."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from installers.models import InstallerRelease
from installers.services import installer_release_create_upload, installer_release_create_url

pytestmark = pytest.mark.django_db

ADD = reverse("admin:installers_installerrelease_add")
CHANGELIST = reverse("admin:installers_installerrelease_changelist")


def add(admin_client, **fields):
    data = {"version": "", "url": "", "sha256": "", "notes": "", **fields}
    return admin_client.post(ADD, data)


def errors_of(response) -> str:
    assert response.status_code == 200, response.status_code  # the form again, with errors
    return response.content.decode()


def test_an_uploaded_release_gets_the_sha256_we_compute(admin_client, reference_tarball):
    tarball = SimpleUploadedFile("i.tar.gz", reference_tarball, "application/gzip")

    response = add(admin_client, version="1.0.0", tarball=tarball, notes="first")

    assert response.status_code == 302, errors_of(response)
    release = InstallerRelease.objects.get()
    assert release.sha256 == hashlib.sha256(reference_tarball).hexdigest()
    assert (release.uploaded, release.notes, release.current) == (True, "first", False)


def test_staff_cannot_type_an_uploads_sha256(admin_client, reference_tarball):
    tarball = SimpleUploadedFile("i.tar.gz", reference_tarball, "application/gzip")

    page = errors_of(add(admin_client, version="1.0.0", tarball=tarball, sha256="e" * 64))

    assert "computed here" in page
    assert not InstallerRelease.objects.exists()


def test_an_upload_that_is_not_an_installer_is_refused_in_the_form(admin_client):
    tarball = SimpleUploadedFile("i.tar.gz", b"PK\x03\x04 a zip", "application/zip")

    page = errors_of(add(admin_client, version="1.0.0", tarball=tarball))

    assert "Not an installer tarball" in page
    assert not InstallerRelease.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "https://e.com/i.tar.gz"}, "needs the tarball"),
        ({"url": "https://e.com/i.tar.gz", "sha256": "xyz"}, "64 lower-case hex"),
        ({}, "either a tarball to upload or a URL"),
    ],
)
def test_a_url_release_needs_its_sha256(admin_client, fields, message):
    page = errors_of(add(admin_client, version="1.0.0", **fields))

    assert message in page
    assert not InstallerRelease.objects.exists()


def test_a_url_release_is_registered_with_the_hash_given(admin_client):
    response = add(
        admin_client, version="2.0.0", url="https://e.com/i.tar.gz", sha256="AB" * 32 + " "
    )

    assert response.status_code == 302, errors_of(response)
    release = InstallerRelease.objects.get()
    assert (release.url, release.sha256, release.uploaded) == (
        "https://e.com/i.tar.gz",
        "ab" * 32,
        False,
    )


def test_the_list_shows_version_hash_current_and_source(
    admin_client, reference_tarball, django_assert_max_num_queries
):
    up = installer_release_create_upload(
        version="1.0.0", tarball=io.BytesIO(reference_tarball), make_current=True
    )
    for n in range(5):
        installer_release_create_url(version=f"2.0.{n}", url="https://e.com/i", sha256="f" * 64)

    with django_assert_max_num_queries(12):
        page = admin_client.get(CHANGELIST).content.decode()

    assert up.sha256 in page and "2.0.4" in page
    assert "uploaded" in page and "URL" in page
    assert 'alt="True"' in page  # the current one's tick


def test_a_saved_release_is_read_only_but_its_notes(admin_client):
    release = installer_release_create_url(version="1.0.0", url="https://e.com/i", sha256="f" * 64)
    url = reverse("admin:installers_installerrelease_change", args=[release.pk])

    response = admin_client.post(
        url, {"notes": "tested on bookworm", "version": "9", "sha256": "0" * 64}
    )

    assert response.status_code == 302
    release.refresh_from_db()
    assert (release.version, release.sha256, release.notes) == (
        "1.0.0",
        "f" * 64,
        "tested on bookworm",
    )
    assert (
        admin_client.post(
            reverse("admin:installers_installerrelease_delete", args=[release.pk]), {"post": "yes"}
        ).status_code
        == 403
    )


def make_current(admin_client, release, confirm: bool = False):
    data = {"action": "make_current", "_selected_action": [release.pk]}
    if confirm:
        data["post"] = "yes"
    return admin_client.post(CHANGELIST, data, follow=confirm)


def test_make_current_asks_first_naming_the_release_that_stops_being_current(admin_client):
    old = installer_release_create_url(
        version="1.0.0", url="https://e.com/1", sha256="1" * 64, make_current=True
    )
    new = installer_release_create_url(version="1.1.0", url="https://e.com/2", sha256="2" * 64)

    page = make_current(admin_client, new).content.decode()

    assert "Make installer 1.1.0 current?" in page
    assert "Release <strong>1.0.0</strong> stops being current" in page
    old.refresh_from_db()
    assert old.current and not InstallerRelease.objects.get(pk=new.pk).current


def test_make_current_switches_once_confirmed(admin_client):
    old = installer_release_create_url(
        version="1.0.0", url="https://e.com/1", sha256="1" * 64, make_current=True
    )
    new = installer_release_create_url(version="1.1.0", url="https://e.com/2", sha256="2" * 64)

    page = make_current(admin_client, new, confirm=True).content.decode()

    assert "Release 1.1.0 is current; 1.0.0 is no longer current." in page
    assert list(InstallerRelease.objects.filter(current=True)) == [new]
    old.refresh_from_db()
    assert not old.current


def test_the_confirmation_says_when_the_environment_wins(admin_client, settings):
    settings.WOPR_INSTALLER_URL = "https://releases.example.com/pinned.tar.gz"
    settings.WOPR_INSTALLER_SHA256 = "3" * 64
    settings.WOPR_INSTALLER_VERSION = "pinned-7"
    new = installer_release_create_url(version="1.1.0", url="https://e.com/2", sha256="2" * 64)

    page = make_current(admin_client, new).content.decode()

    assert "No release is current now." in page
    assert "keep installing pinned-7 from https://releases.example.com/pinned.tar.gz" in page
