"""`manage.py serve_fakecloud` started as an operator would: it prints how to use it, serves the
three fake vendor APIs on the loopback ports it was given, and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.loopback import free_port, process_stop, wait_until

pytestmark = pytest.mark.processes


@pytest.fixture
def fakecloud(tmp_path: Path) -> Iterator[tuple[dict[str, int], Path, subprocess.Popen]]:
    """The command in its own process, its output going to a file; stopped (INT, then KILL)."""
    ports = {"hetzner": free_port(), "digitalocean": free_port(), "cloudflare": free_port()}
    log = tmp_path / "serve_fakecloud.log"
    command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "serve_fakecloud"]
    command += [f"--{name}-port={port}" for name, port in ports.items()]
    command += ["--zone-name=beacons.example", "--beacons=-1"]
    env = {**os.environ, "DEBUG": "true", "SECRET_KEY": "serve-fakecloud-test-key"}
    env.pop("PYTHONUNBUFFERED", None)  # the banner must come out through a pipe or a file too
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield ports, log, process
    finally:
        if process.poll() is None:
            process_stop(process, timeout=15, sig=signal.SIGINT)


def exported(log: Path) -> dict[str, str]:
    """The variables of the `export ...` lines the command printed."""
    text = log.read_text()
    return dict(re.findall(r"\b([A-Z_]+)=(\S+)", text.split("export", 1)[-1]))


def test_serve_fakecloud_serves_the_three_vendor_apis_and_stops_on_ctrl_c(fakecloud):
    ports, log, process = fakecloud

    wait_until(
        lambda: "Ctrl-C stops them." in log.read_text() or process.poll() is not None,
        90,
        "serve_fakecloud's banner",
    )
    assert process.poll() is None, log.read_text()  # it runs (it used to die: KeyError)
    env = exported(log)
    assert env["PROVIDERS"] == "hetzner,digitalocean"
    assert env["WOPR_BASE_DOMAIN"] == "beacons.example"
    assert env["HETZNER_API_URL"] == f"http://127.0.0.1:{ports['hetzner']}/v1"

    hetzner = httpx.get(
        f"{env['HETZNER_API_URL']}/servers",
        headers={"Authorization": f"Bearer {env['HETZNER_API_TOKEN']}"},
        timeout=10,
    )
    digitalocean = httpx.get(
        f"{env['DIGITALOCEAN_API_URL']}/v2/droplets",
        headers={"Authorization": f"Bearer {env['DIGITALOCEAN_API_TOKEN']}"},
        timeout=10,
    )
    zone = env["CLOUDFLARE_ZONE_ID"]
    cloudflare = httpx.get(
        f"{env['CLOUDFLARE_API_URL']}/zones/{zone}/dns_records",
        headers={"Authorization": f"Bearer {env['CLOUDFLARE_API_TOKEN']}"},
        timeout=10,
    )
    refused = httpx.get(f"{env['HETZNER_API_URL']}/servers", timeout=10)

    assert (hetzner.status_code, hetzner.json()["servers"]) == (200, [])
    assert (digitalocean.status_code, digitalocean.json()["droplets"]) == (200, [])
    assert (cloudflare.status_code, cloudflare.json()["result"]) == (200, [])
    assert refused.status_code == 401  # a token is needed, as at the real vendor

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{env['HETZNER_API_URL']}/servers", timeout=5)
