"""`manage.py installer_register`: operators and CI register a tarball or a URL release."""

from __future__ import annotations

import hashlib

import pytest
from django.core.management import CommandError, call_command

from installers.models import InstallerRelease
from installers.services import current_installer

pytestmark = pytest.mark.django_db


def register(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("installer_register", *args, stdout=out)
    return out.getvalue()


def test_a_tarball_is_registered_with_its_computed_hash_and_made_current(
    tmp_path, reference_tarball
):
    tarball = tmp_path / "i.tar.gz"
    tarball.write_bytes(reference_tarball)
    digest = hashlib.sha256(reference_tarball).hexdigest()

    output = register(str(tarball), "--version", "1.0.0", "--current")

    assert output == f"installer 1.0.0 {digest} (current)\n"
    assert current_installer().sha256 == digest
    assert current_installer().url is None


def test_a_url_release_is_registered_not_current_by_default():
    output = register("--url", "https://e.com/i.tar.gz", "--sha256", "9" * 64, "--version", "2")

    assert output == f"installer 2 {'9' * 64}\n"
    assert InstallerRelease.objects.get().url == "https://e.com/i.tar.gz"
    assert current_installer() is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "1"], "either a tarball or --url"),
        (["--url", "https://e.com/i", "--version", "1"], "--url needs --sha256"),
        (["--url", "https://e.com/i", "--sha256", "12", "--version", "1"], "sha256: A SHA-256"),
        (["x.tar.gz", "--sha256", "9" * 64, "--version", "1"], "only with --url"),
        (["/nonexistent/i.tar.gz", "--version", "1"], "No such file"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(args, message):
    with pytest.raises(CommandError, match=message):
        register(*args)

    assert not InstallerRelease.objects.exists()


def test_a_taken_version_is_refused_before_anything_is_stored(
    tmp_path, reference_tarball, installers_root
):
    register("--url", "https://e.com/i", "--sha256", "9" * 64, "--version", "1.0.0")
    tarball = tmp_path / "i.tar.gz"
    tarball.write_bytes(reference_tarball)

    with pytest.raises(CommandError, match=r"version: .*already exists"):
        register(str(tarball), "--version", "1.0.0")

    assert InstallerRelease.objects.count() == 1
    assert not installers_root.exists() or list(installers_root.iterdir()) == []
