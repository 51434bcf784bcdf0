"""`manage.py simulate_purchase`: in this process, or POSTed to a running control plane."""

from __future__ import annotations

import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import Order
from provisioning.models import Beacon, FakeServer, JobEvent

pytestmark = pytest.mark.django_db


def simulate(**options) -> str:
    """Run the command with a valid purchase, overridden by `options`; its stdout."""
    arguments = {
        "bundle": "starter",
        "tier": "t1",
        "email": "buyer@example.com",
        "beacon_name": "sim1",
        "region": "eu-central",
        "timeout": 30,
        **options,
    }
    # As typed on the command line, `--name=value`: a value such as "-bad" stays a value.
    argv = [f"--{name.replace('_', '-')}={value}" for name, value in arguments.items()]
    stdout = io.StringIO()
    call_command("simulate_purchase", *argv, stdout=stdout)
    return stdout.getvalue()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """A tiny HTTP server on 127.0.0.1 that records each request and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                recorder.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": self.rfile.read(length),
                    }
                )
                body = b"recorded" if recorder.status == 200 else b"boom"
                self.send_response(recorder.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def recorder():
    with Recorder() as server:
        yield server


def test_in_process_purchase_ends_in_an_active_beacon():
    # The test transaction never commits, so nothing runs on commit: the command drives the job.
    output = simulate(beacon_name="sim1", bundle="creator", tier="t2")

    beacon = Beacon.objects.get(name="sim1")
    assert beacon.status == "active"
    assert (beacon.bundle.slug, beacon.tier.slug) == ("creator", "t2")
    assert FakeServer.objects.filter(deleted=False).count() == 1
    timeline = [line.split() for line in output.splitlines() if line.startswith("  ")]
    job = beacon.jobs.get()
    assert len(timeline) == JobEvent.objects.filter(job=job).count()
    steps = [words[1] for words in timeline]
    assert steps[0] == "choose_provider"
    assert steps[-1] == "activate"
    assert steps.index("create_server") < steps.index("dns") < steps.index("send_welcome")
    assert "Beacon sim1.beacons.test is active" in output


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"bundle": "nosuch"}, "unknown bundle 'nosuch'"),
        ({"tier": "t4"}, "unknown tier 't4'"),
        ({"beacon_name": "-bad"}, "--beacon-name must be"),
        ({"region": "mars-north"}, "unknown region 'mars-north'"),
    ],
    ids=["bundle", "tier", "beacon-name", "region"],
)
def test_invalid_purchase_is_refused_and_creates_no_order(options, expected):
    with pytest.raises(CommandError) as refused:
        simulate(**options)

    assert expected in str(refused.value)
    assert not Order.objects.exists()
    assert not Beacon.objects.exists()


def test_unknown_bundle_message_lists_the_known_ones():
    with pytest.raises(CommandError, match="unknown bundle") as refused:
        simulate(bundle="nosuch")

    assert "starter" in str(refused.value)
    assert "enterprise" in str(refused.value)


def test_unknown_region_message_lists_the_known_ones():
    with pytest.raises(CommandError) as refused:
        simulate(region="mars-north")

    assert "eu-central" in str(refused.value)
    assert "us-east" in str(refused.value)


def test_unreachable_url_is_a_command_error():
    url = f"http://127.0.0.1:{closed_port()}"

    with pytest.raises(CommandError, match="could not reach") as refused:
        simulate(url=url)

    assert f"{url}/api/webhook/stripe" in str(refused.value)
    assert not Order.objects.exists()


def test_url_receives_a_stripe_signed_checkout_event(recorder):
    output = simulate(
        url=recorder.url + "/", beacon_name="remote1", bundle="creator", tier="t2", region="us-east"
    )

    (request,) = recorder.requests
    assert (request["method"], request["path"]) == ("POST", "/api/webhook/stripe")
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert headers["content-type"] == "application/json"
    payload = request["body"].decode()
    assert stripe.WebhookSignature.verify_header(
        payload, headers["stripe-signature"], settings.STRIPE_TEST_WEBHOOK_SECRET, tolerance=300
    )
    event = json.loads(payload)
    assert event["type"] == "checkout.session.completed"
    assert event["data"]["object"]["metadata"] == {
        "wopr_bundle": "creator",
        "wopr_tier": "t2",
        "wopr_beacon_name": "remote1",
        "wopr_region": "us-east",
    }
    assert event["data"]["object"]["customer_details"]["email"] == "buyer@example.com"
    assert "accepted the event (200)" in output
    assert not Order.objects.exists()  # the remote control plane makes the order, not us


def test_signature_does_not_verify_with_another_secret(recorder):
    simulate(url=recorder.url)

    (request,) = recorder.requests
    headers = {name.lower(): value for name, value in request["headers"].items()}
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            request["body"].decode(),
            headers["stripe-signature"],
            "whsec_someone_else",
            tolerance=300,
        )


def test_url_answering_500_fails_naming_the_status():
    with Recorder(status=500) as server, pytest.raises(CommandError) as refused:
        simulate(url=server.url)

    assert "answered 500" in str(refused.value)
    assert len(server.requests) == 1


def test_without_a_webhook_secret_nothing_is_sent(settings, recorder):
    settings.STRIPE_TEST_WEBHOOK_SECRET = ""

    with pytest.raises(CommandError, match="STRIPE_TEST_WEBHOOK_SECRET"):
        simulate(url=recorder.url)

    assert recorder.requests == []


def test_a_taken_name_is_not_reported_as_a_new_active_beacon():
    simulate(beacon_name="dup1")

    with pytest.raises(CommandError):
        simulate(beacon_name="dup1")

    assert Beacon.objects.count() == 1


def test_a_reserved_name_is_refused_before_anything_is_sent():
    with pytest.raises(CommandError, match="reserved"):
        simulate(beacon_name="admin")

    assert not Order.objects.exists()
