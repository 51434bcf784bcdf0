"""The Caddyfile publishes /metrics only to ADMIN_ALLOWED_NETWORKS, as it does the admin."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.loopback import answers, free_port, wait_until

CADDYFILE = Path(__file__).resolve().parent.parent.parent / "containers" / "Caddyfile"


class _Upstream(http.server.BaseHTTPRequestHandler):
    """Stands in for gunicorn: 200 for every path, remembering the paths that reached it."""

    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def caddy_statuses(tmp_path: Path, upstream_port: int, **extra: str) -> dict[str, int]:
    """Run Caddy with the project's Caddyfile in front of the stand-in; GET each path."""
    site = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CADDY_ADMIN": f"127.0.0.1:{free_port()}",
        "WOPR_SITE_ADDRESS": f"http://127.0.0.1:{site}",
        "WOPR_UPSTREAM_PORT": str(upstream_port),
        **extra,
    }
    config = ["--config", str(CADDYFILE), "--adapter", "caddyfile"]
    caddy = subprocess.Popen(
        ["caddy", "run", *config], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{site}"
        wait_until(lambda: answers(f"{base}/api/health"), 30, "caddy")
        return {path: httpx.get(f"{base}{path}").status_code for path in ("/metrics", "/metrics/")}
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)


def test_the_caddyfile_lets_only_the_allowed_networks_reach_the_metrics(tmp_path):
    if not shutil.which("caddy"):
        pytest.skip("caddy is not installed (.ci/run installs it: apt-get install caddy)")
    _Upstream.paths = []
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        here = caddy_statuses(tmp_path / "here", upstream.server_address[1])
        reached = list(_Upstream.paths)
        _Upstream.paths = []
        elsewhere = caddy_statuses(
            tmp_path / "office", upstream.server_address[1], ADMIN_ALLOWED_NETWORKS="192.0.2.0/24"
        )
    finally:
        upstream.shutdown()

    assert here == {"/metrics": 200, "/metrics/": 200}  # this host is allowed by default
    assert "/metrics" in reached
    assert elsewhere == {"/metrics": 404, "/metrics/": 404}
    assert not any(path.startswith("/metrics") for path in _Upstream.paths)
