"""The reference installer (installer/reference/install) run with bash against a local HTTP
server that records its callbacks. WOPR_REFERENCE_DRY_RUN=1 skips apt-get and starting caddy
here only; the end-to-end container test runs those for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.installers.helpers import ROOT, tool

INSTALL = ROOT / "installer" / "reference" / "install"
TOKEN = "job-token-" + "s3cr3t" * 8


@dataclass
class Recorder:
    """Every POST (time, path, Authorization, JSON body); answers scripted per request."""

    posts: list[dict] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def bodies(self) -> list[dict]:
        return [post["body"] for post in self.posts]


@pytest.fixture
def control_plane() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            recorder.posts.append(
                {
                    "at": time.monotonic(),
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            status, headers = recorder.answers.pop(0) if recorder.answers else (202, {})
            payload = json.dumps({"accepted": status == 202, "duplicate": False}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", recorder
    server.shutdown()
    thread.join()


@pytest.fixture
def beacon_dirs(tmp_path) -> dict[str, Path]:
    return {
        "bootstrap": tmp_path / "etc" / "bootstrap.json",
        "state": tmp_path / "var-lib-wopr",
        "site": tmp_path / "www",
        "caddyfile": tmp_path / "etc" / "caddy" / "Caddyfile",
    }


def write_bootstrap(path: Path, base: str, **changes: object) -> None:
    beacon_id = "7d1c2a8e-0000-4000-8000-000000000001"
    bootstrap = {
        "beacon_id": beacon_id,
        "job_id": 41,
        "name": "ada<lab>",
        "fqdn": "ada-lab.beacons.test",
        "bundle": "starter",
        "tier": "t1",
        "modules": ["nextcloud", "vaultwarden", "jellyfin"],
        "limits": {"storage_gb": 40, "ram_gb": 4, "max_users": 5, "backup_days": 7},
        "owner": {"email": "ada@example.com", "name": "Ada"},
        "control_plane_url": base,
        "callback_url": f"{base}/api/v1/beacons/{beacon_id}/callback",
        "callback_token": TOKEN,
        "installer": {"version": "1.0.0", "sha256": "0" * 64, "url": "x", "bearer": True},
        **changes,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bootstrap))
    path.chmod(0o600)


def run_installer(dirs: dict[str, Path], **env: str) -> subprocess.CompletedProcess:
    environment = {
        "PATH": os.environ["PATH"],
        "WOPR_BOOTSTRAP": str(dirs["bootstrap"]),
        "WOPR_STATE_DIR": str(dirs["state"]),
        "WOPR_SITE_DIR": str(dirs["site"]),
        "WOPR_CADDYFILE": str(dirs["caddyfile"]),
        "WOPR_REFERENCE_DRY_RUN": "1",
        "WOPR_CALLBACK_RETRY_SECONDS": "1",
        **env,
    }
    return subprocess.run(
        ["bash", str(INSTALL)], env=environment, capture_output=True, text=True, timeout=120
    )


def test_it_reports_each_module_then_sso_then_complete(control_plane, beacon_dirs):
    base, recorder = control_plane
    write_bootstrap(beacon_dirs["bootstrap"], base)

    result = run_installer(beacon_dirs)

    assert result.returncode == 0, result.stdout + result.stderr
    assert recorder.bodies() == [
        {"status": "installing", "module": "nextcloud", "index": 1, "total": 3},
        {"status": "installing", "module": "vaultwarden", "index": 2, "total": 3},
        {"status": "installing", "module": "jellyfin", "index": 3, "total": 3},
        {"status": "configuring_sso"},
        {"status": "complete"},
    ]
    path = "/api/v1/beacons/7d1c2a8e-0000-4000-8000-000000000001/callback"
    assert {post["path"] for post in recorder.posts} == {path}
    assert {post["authorization"] for post in recorder.posts} == {f"Bearer {TOKEN}"}
    assert {post["content_type"] for post in recorder.posts} == {"application/json"}
    assert TOKEN not in result.stdout + result.stderr
    markers = sorted(p.name for p in (beacon_dirs["state"] / "modules").iterdir())
    assert markers == ["jellyfin", "nextcloud", "vaultwarden"]


def test_the_status_page_shows_the_beacon_escaped(control_plane, beacon_dirs):
    base, _recorder = control_plane
    write_bootstrap(beacon_dirs["bootstrap"], base)

    assert run_installer(beacon_dirs).returncode == 0

    page = (beacon_dirs["site"] / "index.html").read_text()
    assert "Beacon ada&lt;lab&gt;" in page and "<lab>" not in page
    assert '<span id="bundle">starter</span>' in page
    assert "<li>nextcloud</li><li>vaultwarden</li><li>jellyfin</li>" in page
    assert '<time id="installed-at">20' in page
    assert "installer 1.0.0" in page


def test_the_caddyfile_serves_http_for_the_fqdn_and_tls_only_with_wopr_acme(
    control_plane, beacon_dirs
):
    base, _recorder = control_plane
    write_bootstrap(beacon_dirs["bootstrap"], base)

    assert run_installer(beacon_dirs).returncode == 0
    plain = beacon_dirs["caddyfile"].read_text()
    assert run_installer(beacon_dirs, WOPR_ACME="1").returncode == 0
    acme = beacon_dirs["caddyfile"].read_text()

    assert "auto_https off" in plain
    assert "http://ada-lab.beacons.test, :80 {" in plain
    assert f"root * {beacon_dirs['site']}" in plain
    assert "auto_https" not in acme
    assert "\nada-lab.beacons.test {" in acme
    caddy = shutil.which("caddy")
    if caddy:  # Debian's caddy, where installed, accepts both
        for text in (plain, acme):
            beacon_dirs["caddyfile"].write_text(text)
            checked = subprocess.run(
                [caddy, "adapt", "--config", str(beacon_dirs["caddyfile"])],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert checked.returncode == 0, checked.stderr


def test_an_fqdn_that_is_not_a_host_name_fails_the_install(control_plane, beacon_dirs):
    base, recorder = control_plane
    write_bootstrap(beacon_dirs["bootstrap"], base, fqdn="x.test {\n respond evil }")

    result = run_installer(beacon_dirs)

    assert result.returncode != 0
    assert "not a host name" in result.stdout + result.stderr
    assert {"status": "complete"} not in recorder.bodies()


def test_5xx_and_no_answer_are_retried_then_the_install_goes_on(control_plane, beacon_dirs):
    base, recorder = control_plane
    write_bootstrap(beacon_dirs["bootstrap"], base)
    recorder.answers = [(503, {}), (502, {})]

    result = run_installer(beacon_dirs)

    assert result.returncode == 0, result.stdout
    first = {"status": "installing", "module": "nextcloud", "index": 1, "total": 3}
    assert recorder.bodies()[:3] == [first, first, first]
    assert recorder.bodies()[-1] == {"status": "complete"}
    assert "retrying in 1s" in result.stdout and "retrying in 2s" in result.stdout


def test_429_is_retried_after_its_retry_after(control_plane, beacon_dirs):
    base, recorder = control_plane
    write_bootstrap(beacon_dirs["bootstrap"], base)
    recorder.answers = [(429, {"Retry-After": "2"})]

    result = run_installer(beacon_dirs, WOPR_CALLBACK_RETRY_SECONDS="0")

    assert result.returncode == 0, result.stdout
    first, second = recorder.posts[:2]
    assert first["body"] == second["body"]
    assert second["at"] - first["at"] >= 1.9
    assert "waiting 2s" in result.stdout


def test_a_refused_report_fails_the_install_at_once(control_plane, beacon_dirs):
    base, recorder = control_plane
    write_bootstrap(beacon_dirs["bootstrap"], base)
    recorder.answers = [(403, {})]

    result = run_installer(beacon_dirs)

    assert result.returncode != 0
    assert len(recorder.posts) == 1
    assert "refused the installing report (HTTP 403)" in result.stdout


def test_a_control_plane_that_never_answers_fails_after_the_attempts(beacon_dirs):
    write_bootstrap(beacon_dirs["bootstrap"], "http://127.0.0.1:9")  # discard: refused

    result = run_installer(beacon_dirs, WOPR_CALLBACK_ATTEMPTS="2", WOPR_CALLBACK_RETRY_SECONDS="0")

    assert result.returncode != 0
    assert "did not get through after 2 attempts" in result.stdout


def test_no_bootstrap_file_fails(beacon_dirs):
    result = run_installer(beacon_dirs)

    assert result.returncode != 0
    assert "cannot read WOPR_BOOTSTRAP" in result.stdout


def test_the_installer_passes_shellcheck():
    shellcheck = tool("shellcheck")

    result = subprocess.run(
        [shellcheck, "--severity=style", str(INSTALL)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout
