"""The start-up check: with DEBUG off and no installer the start is refused, naming both ways
to configure one; a database without the table yet (a first migrate) only gets a Warning."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.db import connection

from installers.checks import check_installer_configured
from installers.services import installer_release_create_upload, installer_release_create_url
from tests.installers.helpers import ROOT


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    return settings


def ids(messages) -> list[str]:
    return [message.id for message in messages]


@pytest.mark.django_db
def test_no_installer_with_debug_off_is_an_error_naming_both_ways(production):
    problems = check_installer_configured()

    assert ids(problems) == ["installers.E001"]
    assert problems[0].is_serious()
    for way in ("installer_register", "Installer releases", "WOPR_INSTALLER_URL", "SHA256"):
        assert way in problems[0].msg


@pytest.mark.django_db
def test_a_current_release_satisfies_the_check(production, reference_tarball):
    installer_release_create_upload(
        version="1.0.0", tarball=io.BytesIO(reference_tarball), make_current=True
    )

    assert check_installer_configured() == []


@pytest.mark.django_db
def test_a_current_upload_missing_from_this_hosts_disk_is_an_error(
    production, reference_tarball, installers_root
):
    release = installer_release_create_upload(
        version="1.0.0", tarball=io.BytesIO(reference_tarball), make_current=True
    )
    (installers_root / release.tarball_path).unlink()

    assert ids(check_installer_configured()) == ["installers.E004"]


@pytest.mark.django_db
def test_a_current_url_release_needs_no_file(production):
    installer_release_create_url(
        version="1.0.0", url="https://e.com/i", sha256="a" * 64, make_current=True
    )

    assert check_installer_configured() == []


def test_the_environment_pair_satisfies_the_check_without_the_database(production):
    production.WOPR_INSTALLER_URL = "https://releases.example.com/i.tar.gz"
    production.WOPR_INSTALLER_SHA256 = "a" * 64

    assert check_installer_configured() == []  # no django_db mark: no query was made


@pytest.mark.parametrize(
    ("url", "sha256", "error", "named"),
    [
        ("https://e.com/i.tar.gz", "", "installers.E002", "WOPR_INSTALLER_SHA256"),
        ("", "a" * 64, "installers.E002", "WOPR_INSTALLER_URL"),
        ("https://e.com/i.tar.gz", "not-a-hash-secret", "installers.E003", "64 hex"),
        ("ftp://e.com/i.tar.gz", "a" * 64, "installers.E003", "http(s)"),
    ],
)
def test_a_broken_environment_pair_is_an_error_that_shows_no_value(
    production, url, sha256, error, named
):
    production.WOPR_INSTALLER_URL, production.WOPR_INSTALLER_SHA256 = url, sha256

    problems = check_installer_configured()

    assert ids(problems) == [error]
    assert named in problems[0].msg
    assert "not-a-hash-secret" not in problems[0].msg


def test_an_installer_version_no_first_boot_would_accept_stops_the_start(production):
    production.WOPR_INSTALLER_URL = "https://releases.example.com/i.tar.gz"
    production.WOPR_INSTALLER_SHA256 = "a" * 64
    production.WOPR_INSTALLER_VERSION = "1.0 beta"

    problems = check_installer_configured()

    assert ids(problems) == ["installers.E003"]
    assert "WOPR_INSTALLER_VERSION" in problems[0].msg


def test_with_debug_on_nothing_is_required_and_nothing_is_queried(settings):
    settings.DEBUG = True

    assert check_installer_configured() == []  # no django_db mark: a query would fail


@pytest.mark.django_db
def test_a_missing_table_is_not_yet_known_a_warning(production, monkeypatch):
    tables = connection.introspection.table_names()
    monkeypatch.setattr(
        connection.introspection,
        "table_names",
        lambda *args, **kwargs: [t for t in tables if t != "installers_installerrelease"],
    )

    problems = check_installer_configured()

    assert ids(problems) == ["installers.W001"]
    assert not problems[0].is_serious()


def test_a_first_migrate_with_debug_off_is_not_blocked(tmp_path):
    """`migrate` runs the checks before it creates the table the check reads."""
    keep = ("PATH", "HOME", "LANG", "VIRTUAL_ENV")
    env = {name: value for name, value in os.environ.items() if name in keep}
    env.update(
        DEBUG="false",
        SECRET_KEY="migrate-test-secret-key-" + "x" * 30,
        DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        WOPR_ENV_FILE="",
        STRIPE_TEST_SECRET_KEY="sk_test_configured",
        STRIPE_TEST_WEBHOOK_SECRET="whsec_configured",
        PROVIDERS="hetzner",
        HETZNER_API_TOKEN="hetzner-token-value",
        DNS_BACKEND="cloudflare",
        CLOUDFLARE_API_TOKEN="cloudflare-token-value",
        CLOUDFLARE_ZONE_ID="cloudflare-zone-value",
        AUTHENTIK_URL="https://auth.example.com",
        AUTHENTIK_API_TOKEN="authentik-token-value",
        SMTP_HOST="smtp.example.com",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "installers"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "installers.W001" in result.stderr
    assert "Applying installers.0001_initial... OK" in result.stdout
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--tag", "wopr"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode != 0
    assert "installers.E001" in checked.stderr
