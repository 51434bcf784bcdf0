"""The container entrypoint: web and worker refuse to start (exit 78) with DEBUG off and no
installer, once the database tells; `installer-register` gives a new deployment its first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from installers.models import InstallerRelease
from tests.installers.helpers import ROOT
from tests.loopback import database_url

ENTRYPOINT = ROOT / "containers" / "control-plane" / "entrypoint.sh"
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "entrypoint-installer-test-key-0123456789",
    "STRIPE_TEST_SECRET_KEY": "sk_test_configured",
    "STRIPE_TEST_WEBHOOK_SECRET": "whsec_configured",
    "PROVIDERS": "hetzner",
    "HETZNER_API_TOKEN": "hetzner-token-value",
    "DNS_BACKEND": "cloudflare",
    "CLOUDFLARE_API_TOKEN": "cloudflare-token-value",
    "CLOUDFLARE_ZONE_ID": "cloudflare-zone-value",
    "AUTHENTIK_URL": "https://auth.example.com",
    "AUTHENTIK_API_TOKEN": "authentik-token-value",
    "SMTP_HOST": "smtp.example.com",
    "SUPPORT_EMAIL": "support@example.com",
    "WOPR_MIGRATE": "false",
    "WOPR_ENV_FILE": "",
}


def entrypoint(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": "/tmp",
        "APP_DIR": str(ROOT),
        "DATABASE_URL": database_url(),
        "INSTALLERS_ROOT": str(tmp_path / "installers"),
        **PRODUCTION,
    }
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_worker_refuses_to_start_without_an_installer(tmp_path):
    result = entrypoint(tmp_path, "worker")

    assert result.returncode == 78, result.stderr[-2000:]
    assert "installers.E001" in result.stderr
    assert "refusing to start" in result.stderr


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_installer_register_gives_the_first_installer_and_then_the_check_passes(
    tmp_path, reference_tarball
):
    tarball = tmp_path / "wopr-reference-installer-1.0.0.tar.gz"
    tarball.write_bytes(reference_tarball)

    registered = entrypoint(
        tmp_path, "installer-register", str(tarball), "--version", "1.0.0", "--current"
    )
    checked = entrypoint(tmp_path, "echo", "OK")

    assert registered.returncode == 0, registered.stderr[-2000:]
    assert InstallerRelease.objects.get(current=True).version == "1.0.0"
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert checked.stdout == "OK\n"
