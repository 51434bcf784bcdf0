"""The fake Beacon's installer reads the bootstrap the control plane sends and calls back."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fakes.beacon import beacon_installer, bootstrap_from_user_data
from provisioning.userdata import bootstrap_user_data
from tests.factories import BeaconFactory


@pytest.mark.django_db
def test_the_bootstrap_round_trips_through_the_cloud_config():
    from provisioning.models import Job

    beacon = BeaconFactory()
    job = Job.objects.create(beacon=beacon, kind="provision", step="create_server")

    bootstrap = bootstrap_from_user_data(bootstrap_user_data(beacon, job, "tok-123"))

    assert bootstrap["fqdn"] == beacon.fqdn
    assert bootstrap["callback_token"] == "tok-123"
    assert bootstrap["callback_url"].endswith(f"/api/v1/beacons/{beacon.pk}/callback")


def test_the_installer_reports_complete_with_the_bearer_token():
    received: list[tuple[str, str, dict]] = []
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers["Authorization"], body))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if body["status"] == "complete":
                done.set()

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/beacons/b1/callback"
    user_data = "#cloud-config\n  content: |\n" + json.dumps(
        {"callback_url": url, "callback_token": "tok-9", "name": "b1", "modules": ["a", "b"]}
    )
    try:
        beacon_installer(delay=0)(user_data)
        assert done.wait(5)
    finally:
        server.shutdown()

    # The protocol's stages in order, each with the job's bearer token.
    assert received == [
        ("/api/v1/beacons/b1/callback", "Bearer tok-9", body)
        for body in (
            {"status": "booted"},
            {"status": "installing", "module": "a", "index": 1, "total": 2},
            {"status": "installing", "module": "b", "index": 2, "total": 2},
            {"status": "configuring_sso"},
            {"status": "complete", "message": "fake Beacon installed"},
        )
    ]


def test_user_data_without_a_bootstrap_is_ignored():
    assert bootstrap_from_user_data("#cloud-config\nruncmd: []\n") is None
    beacon_installer(delay=0)("#cloud-config\n")  # nothing to report, nothing raised
