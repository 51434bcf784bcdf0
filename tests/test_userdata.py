"""The cloud-init user data: valid for cloud-init itself (`cloud-init schema`, Debian's package),
under the providers' 32 KiB limit for every bundle and tier, a machine closed but for 22/80/443
with SSH by key only, and a first-boot script that does what the installer contract says. The
script runs here against a local HTTP server standing in for the control plane (its callback
and download endpoints); tests/test_install_e2e.py runs it for real in a Debian container."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from billing.catalog import catalog_data
from billing.models import Bundle, Order, Tier
from fakes.beacon import bootstrap_from_user_data
from provisioning.models import Beacon, Job, JobState
from provisioning.userdata import (
    BOOTSTRAP_PATH,
    FIRST_BOOT_PATH,
    USER_DATA_LIMIT,
    UserDataTooLarge,
    bootstrap_user_data,
)
from tests.factories import BeaconFactory, OrderFactory
from tests.installers.helpers import tool

ROOT = Path(__file__).resolve().parent.parent
FIRST_BOOT = ROOT / "provisioning" / "first_boot.sh"
OPERATOR_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKeyForTheTestsOnly0000000000000 ops@wopr"
)
CONTRACT_KEYS = {
    "beacon_id", "job_id", "name", "fqdn", "bundle", "tier", "modules", "limits", "owner",
    "control_plane_url", "callback_url", "callback_token", "installer",
}  # fmt: skip


def parsed(user_data: str) -> dict:
    assert user_data.startswith("#cloud-config\n")
    return yaml.safe_load(user_data)


def written(config: dict, path: str) -> dict:
    (entry,) = [entry for entry in config["write_files"] if entry["path"] == path]
    return entry


@pytest.fixture
def installer_served(settings):
    """An installer release the control plane serves itself (no URL of its own)."""
    from installers.services import InstallerRef

    release = InstallerRef(version="1.0.0", sha256="ab" * 32, url=None)
    settings.WOPR_OPERATOR_SSH_KEYS = [OPERATOR_KEY]
    settings.WOPR_PUBLIC_URL = "https://control.example.com/"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("provisioning.userdata.current_installer", lambda: release)
        yield release


def provision_job(beacon: Beacon) -> Job:
    return Job.objects.create(beacon=beacon, kind="provision", step="create_server")


# --- cloud-init schema and size, every bundle x tier ---------------------------------------------


@pytest.mark.django_db
def test_every_bundle_and_tier_passes_cloud_init_schema_under_32_kib(installer_served, tmp_path):
    cloud_init = tool("cloud-init")
    catalogue = catalog_data()
    combinations = [(b, t) for b in Bundle.objects.all() for t in Tier.objects.all()]
    assert len(combinations) == len(catalogue["bundles"]) * len(catalogue["tiers"])
    rendered: dict[Path, tuple[Bundle, str]] = {}
    for number, (bundle, tier) in enumerate(combinations):
        # The longest name the storefront allows: the largest user data for this offer.
        name = f"{number:02d}" + "x" * 30
        beacon = BeaconFactory(order=OrderFactory(bundle=bundle, tier=tier, beacon_name=name))
        user_data = bootstrap_user_data(beacon, provision_job(beacon), "f" * 64)
        path = tmp_path / f"{bundle.slug}-{tier.slug}.yaml"
        path.write_text(user_data)
        rendered[path] = (bundle, user_data)

    def schema(path: Path) -> subprocess.CompletedProcess:
        command = [cloud_init, "schema", "-c", str(path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:  # one cloud-init start costs ~0.3 s
        results = dict(zip(rendered, pool.map(schema, rendered), strict=True))

    for path, result in results.items():
        assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"
        assert "Valid cloud-config" in result.stdout
        bundle, user_data = rendered[path]
        assert len(user_data.encode()) < USER_DATA_LIMIT == 32 * 1024
        modules = json.loads(written(parsed(user_data), BOOTSTRAP_PATH)["content"])["modules"]
        assert modules == list(bundle.modules)


def test_cloud_init_schema_refuses_what_it_should(tmp_path):
    """The check above could fail: cloud-init rejects a wrong type and an unknown file key."""
    cloud_init = tool("cloud-init")
    bad = tmp_path / "bad.yaml"
    bad.write_text("#cloud-config\nwrite_files:\n- path: /x\n  permissions: 600\n  mode: x\n")

    result = subprocess.run([cloud_init, "schema", "-c", str(bad)], capture_output=True, text=True)

    assert result.returncode != 0
    assert "write_files.0" in result.stdout + result.stderr


# --- what the user data holds --------------------------------------------------------------------


@pytest.mark.django_db
def test_bootstrap_json_holds_the_contract_and_is_root_only(installer_served):
    order = OrderFactory(
        email="buyer@example.com", name="Order Name", customer__name="Grace Hopper"
    )
    beacon = BeaconFactory(order=order)
    job = provision_job(beacon)

    config = parsed(bootstrap_user_data(beacon, job, "tok-123"))

    entry = written(config, BOOTSTRAP_PATH)
    assert (entry["owner"], entry["permissions"]) == ("root:root", "0600")
    document = json.loads(entry["content"])
    assert set(document) == CONTRACT_KEYS
    assert document["limits"] == {
        "storage_gb": beacon.tier.storage_gb,
        "ram_gb": beacon.tier.ram_gb,
        "max_users": beacon.tier.max_users,
        "backup_days": beacon.tier.backup_days,
    }
    assert document["owner"] == {
        "email": "buyer@example.com",
        "name": "Grace Hopper",
        "authentik_user_id": "",  # no AUTHENTIK_URL in tests: no account made
    }
    assert document["control_plane_url"] == "https://control.example.com"
    assert document["callback_url"] == (
        f"https://control.example.com/api/v1/beacons/{beacon.pk}/callback"
    )
    assert (document["job_id"], document["callback_token"]) == (str(job.pk), "tok-123")
    assert document["installer"] == {
        "version": "1.0.0",
        "sha256": "ab" * 32,
        "url": f"https://control.example.com/api/v1/beacons/{beacon.pk}/installer"
        f"?sha256={'ab' * 32}",
        "bearer": True,
    }


@pytest.mark.django_db
def test_a_release_with_its_own_url_is_fetched_without_the_token(settings):
    settings.WOPR_INSTALLER_URL = "https://releases.example.net/wopr-installer-2.1.0.tar.gz"
    settings.WOPR_INSTALLER_SHA256 = "CD" * 32
    settings.WOPR_INSTALLER_VERSION = "2.1.0"
    beacon = BeaconFactory(
        order=OrderFactory(customer=None, email="b@example.com", name="Checkout Name")
    )

    document = bootstrap_from_user_data(bootstrap_user_data(beacon, provision_job(beacon), "t"))

    assert document["installer"] == {
        "version": "2.1.0",
        "sha256": "cd" * 32,
        "url": "https://releases.example.net/wopr-installer-2.1.0.tar.gz",
        "bearer": False,
    }
    assert document["owner"]["name"] == "Checkout Name"


@pytest.mark.django_db
def test_no_installer_configured_leaves_the_installer_null(monkeypatch):
    monkeypatch.setattr("provisioning.userdata.current_installer", lambda: None)
    beacon = BeaconFactory()

    document = bootstrap_from_user_data(bootstrap_user_data(beacon, provision_job(beacon), "t"))

    assert document["installer"] is None


@pytest.mark.django_db
def test_the_machine_is_closed_but_for_web_and_ssh_by_operator_keys(installer_served):
    beacon = BeaconFactory()

    config = parsed(bootstrap_user_data(beacon, provision_job(beacon), "t"))

    assert config["ssh_pwauth"] is False
    assert config["ssh_authorized_keys"] == [OPERATOR_KEY]
    sshd = written(config, "/etc/ssh/sshd_config.d/50-wopr.conf")["content"].splitlines()
    assert {"PasswordAuthentication no", "KbdInteractiveAuthentication no"} <= set(sshd)
    assert "PermitRootLogin prohibit-password" in sshd
    upgrades = written(config, "/etc/apt/apt.conf.d/20auto-upgrades")["content"]
    assert 'APT::Periodic::Unattended-Upgrade "1";' in upgrades
    assert {"ufw", "unattended-upgrades", "curl", "python3"} <= set(config["packages"])
    # first-boot switches the firewall on itself (see the run below: 22, 80 and 443 only).
    assert config["runcmd"] == [[FIRST_BOOT_PATH]]
    script = written(config, FIRST_BOOT_PATH)
    assert (script["permissions"], script["content"]) == ("0700", FIRST_BOOT.read_text())


@pytest.mark.django_db
def test_without_operator_keys_no_key_list_is_written(settings):
    settings.WOPR_OPERATOR_SSH_KEYS = []
    beacon = BeaconFactory()

    config = parsed(bootstrap_user_data(beacon, provision_job(beacon), "t"))

    assert "ssh_authorized_keys" not in config
    assert config["ssh_pwauth"] is False


@pytest.mark.django_db
def test_user_data_past_32_kib_is_a_permanent_provider_error(settings):
    settings.WOPR_OPERATOR_SSH_KEYS = [f"{OPERATOR_KEY}{n}" for n in range(400)]
    beacon = BeaconFactory()

    with pytest.raises(UserDataTooLarge) as raised:
        bootstrap_user_data(beacon, provision_job(beacon), "t")

    assert raised.value.transient is False
    assert f"providers accept {USER_DATA_LIMIT}" in str(raised.value)


@pytest.mark.django_db
def test_a_provision_job_with_too_large_user_data_fails_without_a_server(
    settings, django_capture_on_commit_callbacks
):
    from provisioning.fake_cloud import FakeServer
    from provisioning.services import beacon_create_for_order

    settings.WOPR_OPERATOR_SSH_KEYS = [f"{OPERATOR_KEY}{n}" for n in range(400)]
    order = OrderFactory(beacon_name="toolarge")

    with django_capture_on_commit_callbacks(execute=True):
        beacon, _ = beacon_create_for_order(order=order)

    job = beacon.jobs.get()
    assert job.state == JobState.FAILED
    assert "cloud-init user data is" in job.last_error
    assert "gave up after" not in job.last_error  # permanent: failed at once, not retried
    assert not FakeServer.objects.filter(deleted=False).exists()
    assert Order.objects.get(pk=order.pk).needs_attention


# --- the first-boot script -----------------------------------------------------------------------


def test_first_boot_passes_shellcheck():
    result = subprocess.run(
        [tool("shellcheck"), "--severity=style", str(FIRST_BOOT)], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr


class ControlPlane:
    """A stand-in for the control plane's callback and installer endpoints, recording requests."""

    def __init__(self, tarball: bytes | None) -> None:
        self.tarball = tarball
        self.callbacks: list[dict] = []
        self.downloads: list[dict[str, str]] = []
        self.callback_auth: set[str | None] = set()
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                plane.callbacks.append(body)
                plane.callback_auth.add(self.headers.get("Authorization"))
                self._answer(202, b'{"accepted": true}')

            def do_GET(self):
                plane.downloads.append(dict(self.headers))
                if plane.tarball is None:
                    self._answer(404, b'{"error": {"code": "no_installer"}}')
                else:
                    self._answer(200, plane.tarball)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def statuses(self) -> list[str]:
        return [body["status"] for body in self.callbacks]


def installer_tarball(install_script: str) -> bytes:
    """A tarball with an executable `install` at its root, as the contract lays it out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = install_script.encode()
        info = tarfile.TarInfo("install")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# Records what the installer was given, and says something the log tail must carry.
RECORDING_INSTALL = """#!/bin/sh
echo "installer saw $WOPR_BOOTSTRAP"
cp "$WOPR_BOOTSTRAP" "$(dirname "$WOPR_BOOTSTRAP")/seen-by-installer.json"
"""


@pytest.fixture
def control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane(installer_tarball(RECORDING_INSTALL))
    thread = threading.Thread(target=plane.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield plane
    finally:
        plane.server.shutdown()
        plane.server.server_close()


def system_shims(root: Path, *, firewall: str = "active") -> Path:
    """Stand-ins for the server's ufw (it would change this machine's firewall) and dpkg-query
    (unattended-upgrades installed); ufw records its arguments in `root`/ufw.calls."""
    shims = root / "shims"
    shims.mkdir(exist_ok=True)
    calls = root / "ufw.calls"
    (shims / "ufw").write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n[ "$1" = status ] && echo "Status: {firewall}"\nexit 0\n'
    )
    (shims / "dpkg-query").write_text("#!/bin/sh\necho 'install ok installed'\n")
    for shim in shims.iterdir():
        shim.chmod(0o755)
    return shims


def run_first_boot(
    root: Path,
    plane: ControlPlane,
    *,
    no_installer: bool = False,
    firewall: str = "active",
    **changes: object,
) -> subprocess.CompletedProcess:
    """Write bootstrap.json under `root` (standing for /) and run the script as cloud-init would."""
    tool("curl")
    installer = {
        "version": "1.0.0",
        "sha256": hashlib.sha256(plane.tarball or b"").hexdigest(),
        "url": f"{plane.url}/api/v1/beacons/b1/installer",
        "bearer": True,
        **changes,
    }
    document = {
        "callback_url": f"{plane.url}/api/v1/beacons/b1/callback",
        "callback_token": "tok-secret-1",
        "installer": None if no_installer else installer,
    }
    bootstrap = root / "etc" / "wopr" / "bootstrap.json"
    bootstrap.parent.mkdir(parents=True, exist_ok=True)
    bootstrap.write_text(json.dumps(document))
    shims = system_shims(root, firewall=firewall)
    env = {"PATH": f"{shims}:{os.environ['PATH']}", "WOPR_FIRST_BOOT_ROOT": str(root)}
    return subprocess.run(
        ["bash", str(FIRST_BOOT)], env=env, capture_output=True, text=True, timeout=120
    )


def test_first_boot_reports_booted_verifies_and_runs_the_installer_once(tmp_path, control_plane):
    result = run_first_boot(tmp_path, control_plane)

    assert result.returncode == 0, (tmp_path / "var/log/wopr/install.log").read_text()
    assert control_plane.statuses() == ["booted"]  # the installer reports the rest itself
    assert (tmp_path / "ufw.calls").read_text().splitlines() == [
        "default deny incoming",
        "default allow outgoing",
        "allow 22/tcp",
        "allow 80/tcp",
        "allow 443/tcp",
        "--force enable",
        "status",
    ]
    assert control_plane.callback_auth == {"Bearer tok-secret-1"}
    assert control_plane.downloads[0]["Authorization"] == "Bearer tok-secret-1"
    seen = json.loads((tmp_path / "etc/wopr/seen-by-installer.json").read_text())
    assert seen["callback_token"] == "tok-secret-1"
    assert (tmp_path / "var/lib/wopr/installer-1.0.0.tar.gz").read_bytes() == control_plane.tarball
    log = (tmp_path / "var/log/wopr/install.log").read_text()
    assert f"installer saw {tmp_path}/etc/wopr/bootstrap.json" in log
    assert "tok-secret-1" not in log + result.stdout + result.stderr
    assert (tmp_path / "var/lib/wopr/first-boot.done").exists()

    again = run_first_boot(tmp_path, control_plane)

    assert again.returncode == 0
    assert "nothing to do" in again.stderr
    assert control_plane.statuses() == ["booted"] and len(control_plane.downloads) == 1


def test_a_wrong_checksum_reports_failed_with_the_log_tail_and_runs_nothing(
    tmp_path, control_plane
):
    result = run_first_boot(tmp_path, control_plane, sha256="0" * 64)

    assert result.returncode == 1
    assert control_plane.statuses() == ["booted", "failed"]
    failed = control_plane.callbacks[-1]
    assert failed["message"].startswith("installer checksum mismatch: expected " + "0" * 64)
    assert "downloading installer 1.0.0" in failed["log_tail"]
    assert len(failed["log_tail"].encode()) <= 4000
    assert not (tmp_path / "opt/wopr/installer").exists()
    assert not (tmp_path / "var/lib/wopr/first-boot.done").exists()


def test_a_firewall_that_does_not_come_up_reports_failed_and_installs_nothing(
    tmp_path, control_plane
):
    result = run_first_boot(tmp_path, control_plane, firewall="inactive")

    assert result.returncode == 1
    assert control_plane.statuses() == ["booted", "failed"]
    assert control_plane.callbacks[-1]["message"] == "the firewall is not active"
    assert control_plane.downloads == []


def test_a_release_url_gets_no_token(tmp_path, control_plane):
    result = run_first_boot(tmp_path, control_plane, bearer=False, url=f"{control_plane.url}/r.tgz")

    assert result.returncode == 0, (tmp_path / "var/log/wopr/install.log").read_text()
    assert "Authorization" not in control_plane.downloads[0]


def test_a_failing_installer_reports_failed_with_its_output(tmp_path, control_plane):
    control_plane.tarball = installer_tarball("#!/bin/sh\necho 'caddy: port 80 taken'\nexit 3\n")

    result = run_first_boot(tmp_path, control_plane)

    assert result.returncode == 1
    failed = control_plane.callbacks[-1]
    assert (failed["status"], failed["message"]) == ("failed", "the installer exited with status 3")
    assert "caddy: port 80 taken" in failed["log_tail"]


def test_no_installer_configured_reports_failed(tmp_path, control_plane):
    result = run_first_boot(tmp_path, control_plane, no_installer=True)

    assert result.returncode == 1
    assert control_plane.callbacks[-1]["message"] == "no installer configured"
    assert control_plane.downloads == []


def test_a_download_error_reports_failed_naming_the_url(tmp_path, control_plane):
    control_plane.tarball = None  # the control plane answers 404

    result = run_first_boot(tmp_path, control_plane)

    assert result.returncode == 1
    failed = control_plane.callbacks[-1]
    assert failed["status"] == "failed"
    assert failed["message"].startswith(
        f"could not download the installer from {control_plane.url}/api/v1/beacons/b1/installer"
    )
    assert "404" in failed["log_tail"]  # curl's own words, from the log
    assert not (tmp_path / "var/lib/wopr/installer-1.0.0.tar.gz").exists()
