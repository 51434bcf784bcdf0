"""The install part of the generated cloud-init, run for real in a Debian container under Podman.

The control plane runs in this process (Django's live server, so the test sees the job as the
callbacks move it; tasks run inline, as the django-q2 worker would run them) with the
reference installer (`scripts/build_installer.py`) registered as the current release. A Beacon's
provision job waits at `wait_callback`; its user data is the one the fake cloud received. In a
container from the local Debian 12 base (`containers/base-image.sh`) the user data's packages
are installed, its `write_files` written with their modes, and its runcmd's first-boot command
run: it downloads the installer from the control plane with the job's token, checks its hash,
runs it (Debian's caddy serving the status page), and the stages it reports make the Beacon
`active`. A wrong hash ends in a `failed` callback carrying the log's tail.

The container has its own network namespace on Podman's bridge (the installer binds port 80
and Caddy's admin port 2019, which must not touch the host's); it reaches the control plane at
the bridge's gateway address. ufw cannot load netfilter rules in a container: the real package
is installed, and a recording `ufw` in /usr/local/sbin (first on root's PATH) stands in for its
effect; the test asserts the calls first-boot made (22, 80 and 443 only, then enabled).

Marked `podman`; it skips without podman only outside CI (CI=true makes it fail instead).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from django.core.cache import caches

from provisioning.callbacks import job_callback_token
from provisioning.models import Beacon, BeaconStatus, FakeServer, InstallStage, Job, JobState
from provisioning.userdata import BOOTSTRAP_PATH, FIRST_BOOT_PATH, bootstrap_user_data
from tests.factories import OrderFactory
from tests.installers.helpers import load_build_script

# serialized_rollback: the catalogue (a data migration) is back for the next test.
pytestmark = [
    pytest.mark.podman,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/wopr-debian:bookworm"
# As containers/stack-test.sh: crun fails on this kernel's cgroups; lower limits for apt.
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
FIREWALL = [
    "default deny incoming",
    "default allow outgoing",
    "allow 22/tcp",
    "allow 80/tcp",
    "allow 443/tcp",
    "--force enable",
    "status",
]
# Records what first-boot asks of ufw and answers its status as an enabled ufw does.
UFW_RECORDER = """#!/bin/sh
echo "$*" >> /seed/out/ufw.calls
[ "$1" = status ] && echo "Status: active"
exit 0
"""


def require(*tools: str) -> None:
    """Skip without the tools, except in CI (CI=true), where that is a failure."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (apt-get install -y podman runc debootstrap)"
    if os.environ.get("CI", "").strip().lower() in {"true", "1"}:
        pytest.fail(f"{reason}; .ci/run installs them before the tests")
    pytest.skip(reason)


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def base_image() -> str:
    """The local Debian 12 image (debootstrap; cached by tag, so built once per machine)."""
    require("podman", "runc", "debootstrap")
    result = subprocess.run(
        [str(ROOT / "containers" / "base-image.sh"), BASE_IMAGE],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return BASE_IMAGE


def _bindable(address: str) -> bool:
    try:
        socket.create_server((address, 0)).close()
    except OSError:
        return False
    return True


@contextmanager
def bridge_gateway(image: str) -> Iterator[str]:
    """The host's address on Podman's default bridge, held up while the caller needs it.

    netavark makes the bridge interface with the first container on it and removes it with
    the last, so when none is running a keeper container (this test's own) holds it up
    until the block ends.
    """
    result = podman("network", "inspect", "podman")
    assert result.returncode == 0, result.stderr
    gateway = json.loads(result.stdout)[0]["subnets"][0]["gateway"]
    keeper = ""
    if not _bindable(gateway):
        started = podman("run", "-d", "--rm", *LIMITS, image, "sleep", "infinity")
        assert started.returncode == 0, started.stderr
        keeper = started.stdout.strip()
        for _ in range(50):
            if _bindable(gateway):
                break
            time.sleep(0.2)
    try:
        yield gateway
    finally:
        if keeper:
            podman("rm", "-f", "-t", "0", keeper)


@pytest.fixture
def control_plane(base_image, settings, tmp_path) -> Iterator[str]:
    """The control plane live on the bridge gateway; its public URL is what Beacons call."""
    with bridge_gateway(base_image) as gateway:
        yield from _control_plane_on(gateway, settings, tmp_path)


def _control_plane_on(gateway: str, settings, tmp_path) -> Iterator[str]:
    from pytest_django.live_server_helper import LiveServer

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, gateway]
    settings.INSTALLERS_ROOT = tmp_path / "installers"
    settings.WOPR_INSTALLER_URL = ""
    settings.FAKE_BEACON_INSTALL_SECONDS = 3600  # only the container's Beacon reports
    settings.CACHES = {
        **settings.CACHES,
        "api": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "e2e"},
    }
    settings.THROTTLE_DEFAULT = "1000/min"
    caches["api"].clear()
    server = LiveServer(f"{gateway}:0")
    try:
        settings.WOPR_PUBLIC_URL = f"http://{gateway}:{server.thread.port}"
        yield settings.WOPR_PUBLIC_URL
    finally:
        server.stop()


@pytest.fixture
def reference_release(control_plane) -> str:
    """The reference installer built as `make installer` builds it, current and served by us;
    returns its SHA-256."""
    from installers.services import installer_release_create_upload

    build = load_build_script()
    tarball = build.tarball_bytes(build.SOURCE, "1.0.0")
    release = installer_release_create_upload(
        version="1.0.0", tarball=io.BytesIO(tarball), make_current=True
    )
    return release.sha256


def waiting_beacon(name: str) -> tuple[Beacon, Job, str]:
    """A paid order's Beacon whose provision job waits at `wait_callback`, and the user data
    its fake server was created with (rebuilt: the token is derived, so it is the same)."""
    from provisioning.services import beacon_create_for_order

    order = OrderFactory(beacon_name=name)
    beacon, _ = beacon_create_for_order(order=order)
    job = beacon.jobs.get()
    job.refresh_from_db()
    assert (job.step, job.state) == ("wait_callback", JobState.WAITING), job.last_error
    user_data = bootstrap_user_data(beacon, job, job_callback_token(job))
    server = FakeServer.objects.get(name=f"wopr-{name}", deleted=False)
    assert server.labels["wopr-job"] == str(job.pk)
    assert server.user_data_sha256 == hashlib.sha256(user_data.encode()).hexdigest()
    return beacon, job, user_data


def bootstrap_entry(config: dict) -> dict:
    (entry,) = [entry for entry in config["write_files"] if entry["path"] == BOOTSTRAP_PATH]
    return entry


def driver_script(config: dict, check_host: str) -> str:
    """What the container runs: cloud-init's package and write_files modules, then the runcmd's
    first-boot command; afterwards what the test reads (status page, modes) goes to /seed/out."""
    lines = [
        "set -uo pipefail",
        "export DEBIAN_FRONTEND=noninteractive",
        "mkdir -p /seed/out",
        "apt-get update -qq || exit 20",
        "apt-get install -y -qq --no-install-recommends "
        + " ".join(map(shlex.quote, config["packages"]))
        + " >/seed/out/apt.log 2>&1 || { tail -n 40 /seed/out/apt.log; exit 21; }",
    ]
    for number, entry in enumerate(config["write_files"]):
        owner, group = entry["owner"].split(":")
        lines.append(
            f"install -D -m {entry['permissions']} -o {owner} -g {group} /seed/files/{number} "
            + shlex.quote(entry["path"])
        )
    assert config["runcmd"] == [[FIRST_BOOT_PATH]]
    lines += [
        "cp /seed/ufw /usr/local/sbin/ufw && chmod 755 /usr/local/sbin/ufw",
        f"{shlex.quote(FIRST_BOOT_PATH)}; status=$?",
        'echo "first-boot exit status $status"',
        "cp /var/log/wopr/install.log /seed/out/install.log",
        "stat -c '%a %U' /etc/wopr/bootstrap.json >/seed/out/bootstrap.mode",
        "test -e /opt/wopr/installer/install && touch /seed/out/installer-extracted",
        f"curl -fsS --max-time 10 -H {shlex.quote('Host: ' + check_host)} http://127.0.0.1/"
        " -o /seed/out/status.html",
        'exit "$status"',
    ]
    return "\n".join(lines) + "\n"


def run_in_container(image: str, user_data: str, check_host: str, seed: Path) -> tuple[int, str]:
    """Run the user data's install part in a fresh container (removed, whatever happens)."""
    config = yaml.safe_load(user_data)
    files = seed / "files"
    files.mkdir(parents=True)
    for number, entry in enumerate(config["write_files"]):
        (files / str(number)).write_text(entry["content"])
    (seed / "driver.sh").write_text(driver_script(config, check_host))
    (seed / "ufw").write_text(UFW_RECORDER)
    name = f"wopr-e2e-{uuid.uuid4().hex[:10]}"
    try:
        result = podman(
            "run", "--rm", "--name", name, *LIMITS, "-v", f"{seed}:/seed",
            image, "bash", "/seed/driver.sh",
            timeout=1200,
        )  # fmt: skip
    finally:
        podman("rm", "-f", "-t", "2", name)
    return result.returncode, result.stdout + result.stderr


def test_the_first_boot_installs_the_reference_installer_and_the_beacon_becomes_active(
    base_image, control_plane, reference_release, tmp_path
):
    beacon, job, user_data = waiting_beacon("e2e1")
    config = yaml.safe_load(user_data)
    bootstrap = json.loads(bootstrap_entry(config)["content"])
    assert bootstrap["installer"]["sha256"] == reference_release
    assert bootstrap["installer"]["url"].startswith(control_plane)
    started = time.monotonic()

    status, output = run_in_container(base_image, user_data, beacon.fqdn, tmp_path / "seed")

    print(f"e2e install took {time.monotonic() - started:.0f}s")
    out = tmp_path / "seed" / "out"
    log = (out / "install.log").read_text() if (out / "install.log").exists() else ""
    assert status == 0, output[-4000:] + log[-4000:]
    stages = list(InstallStage.objects.filter(job=job).values_list("stage", flat=True))
    modules = list(beacon.modules)
    assert stages == [
        "booted",
        *(f"installing:{module}" for module in modules),
        "configuring_sso",
        "complete",
    ]
    totals = InstallStage.objects.filter(job=job, stage__startswith="installing:")
    assert sorted((s.index, s.total) for s in totals) == [
        (n, len(modules)) for n in range(1, len(modules) + 1)
    ]
    job.refresh_from_db()
    beacon.refresh_from_db()
    assert job.state == JobState.COMPLETED, job.last_error
    assert beacon.status == BeaconStatus.ACTIVE
    assert beacon.fqdn in (out / "status.html").read_text()
    assert (out / "bootstrap.mode").read_text().split() == ["600", "root"]
    assert (out / "ufw.calls").read_text().splitlines() == FIREWALL
    assert job_callback_token(job) not in log + output


def test_a_wrong_installer_hash_fails_the_job_with_the_log_tail(
    base_image, control_plane, reference_release, tmp_path
):
    beacon, job, user_data = waiting_beacon("e2e2")
    config = yaml.safe_load(user_data)
    entry = bootstrap_entry(config)
    bootstrap = json.loads(entry["content"])
    bootstrap["installer"]["sha256"] = "0" * 64
    entry["content"] = json.dumps(bootstrap)
    tampered = "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)

    status, output = run_in_container(base_image, tampered, beacon.fqdn, tmp_path / "seed")

    assert status == 1, output[-4000:]
    assert "first-boot exit status 1" in output
    out = tmp_path / "seed" / "out"
    assert not (out / "installer-extracted").exists()  # refused before anything ran
    stages = list(InstallStage.objects.filter(job=job).values_list("stage", flat=True))
    assert stages == ["booted", "failed"]
    failed = InstallStage.objects.get(job=job, stage="failed")
    assert failed.message.startswith("installer checksum mismatch: expected " + "0" * 64)
    job.refresh_from_db()
    beacon.refresh_from_db()
    assert job.state == JobState.FAILED
    assert beacon.status == BeaconStatus.FAILED
    recorded = job.events.get(message__startswith="Beacon: failed: installer checksum").message
    assert "downloading installer 1.0.0" in recorded  # the log's tail, on the timeline
