"""Scale-out: two gunicorn and two qcluster processes on the Redis broker, one PostgreSQL, the
real Hetzner and Cloudflare adapters talking HTTP to the stateful fakes served on loopback.

200 purchases, 40 of them delivered twice (half at the same moment to both web processes, half
redelivered later), must give exactly 200 Beacons, 200 servers, 800 DNS records and 200 welcome
e-mails, every job running each of its steps once.

The test plays the Beacons: each reads its callback URL and token from the cloud-init user data
the fake Hetzner received, as a real Beacon does, and reports `complete` once its job waits.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from billing.simulation import checkout_completed_event, encode, sign
from fakes.beacon import bootstrap_from_user_data
from fakes.cloudflare import TOKEN as CLOUDFLARE_TOKEN
from fakes.cloudflare import ZONE_ID, FakeCloudflare
from fakes.hetzner import FakeHetzner
from fakes.loopback import serve
from provisioning.models import Beacon, Job, JobEvent
from tests.loopback import answers, database_url, free_port, wait_until

pytestmark = [
    pytest.mark.processes,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PURCHASES = 200
TWICE = 40
WEBHOOK_SECRET = "whsec_scale_out"
DOMAIN = "beacons.test"
DEADLINE_SECONDS = 360
STEPS = [
    "choose_provider",
    "account",
    "create_server",
    "wait_server_running",
    "dns",
    "wait_callback",
    "render_documents",
    "send_welcome",
    "activate",
]


@pytest.fixture
def redis_db(redis_url):
    """The broker: a Redis this test starts on a free port (never the shared one on 6379)."""
    return redis_url


@pytest.fixture
def clouds():
    hetzner = FakeHetzner(rate_limit=1_000_000)
    cloudflare = FakeCloudflare(zones={ZONE_ID: DOMAIN})
    servers = [serve(hetzner), serve(cloudflare)]
    yield hetzner, cloudflare, *(server.server_address[1] for server in servers)
    for server in servers:
        server.shutdown()


def _start(command: list, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


@pytest.fixture
def cluster(tmp_path, redis_db, clouds):
    """2 gunicorn (2 workers each) and 2 qclusters (2 workers each) sharing PostgreSQL+Redis."""
    hetzner, cloudflare, hetzner_port, cloudflare_port = clouds
    ports = [free_port(), free_port()]
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_db,
        "DEBUG": "true",
        "SECRET_KEY": "scale-out-test-secret-key",
        "STRIPE_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WOPR_BASE_DOMAIN": DOMAIN,
        "WOPR_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",
        "PROVIDERS": "hetzner",
        "HETZNER_API_URL": f"http://127.0.0.1:{hetzner_port}/v1",
        "HETZNER_API_TOKEN": hetzner.token,
        "DNS_BACKEND": "cloudflare",
        "CLOUDFLARE_API_URL": f"http://127.0.0.1:{cloudflare_port}/client/v4",
        "CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN,
        "CLOUDFLARE_ZONE_ID": ZONE_ID,
        "DOCUMENTS_ROOT": str(tmp_path / "documents"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "JOB_POLL_SECONDS": "1",
        "Q_WORKERS": "2",
        # Every Beacon calls back from this one address.
        "THROTTLE_DEFAULT": "100000/min",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = []
    for index, port in enumerate(ports):
        gunicorn = [BIN / "gunicorn", "wopr.wsgi:application", "-b", f"127.0.0.1:{port}"]
        gunicorn += ["-w", "2", "--no-control-socket"]
        processes.append(_start(gunicorn, env, logs / f"web{index}.log"))
    for index in range(2):
        qcluster = [sys.executable, "manage.py", "qcluster"]
        processes.append(_start(qcluster, env, logs / f"worker{index}.log"))
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            wait_until(lambda base=base: answers(f"{base}/api/health"), 60, f"{base} to answer")
        yield bases, hetzner, cloudflare, tmp_path
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in sorted(logs.iterdir()):
            text = log.read_text()
            errors = [line for line in text.splitlines() if "ERROR" in line or "Traceback" in line]
            print(f"--- {log.name}: {len(errors)} error line(s)\n" + "\n".join(errors[:20]))
            print(text[-2000:])


def _deliver(client: httpx.Client, payload: bytes) -> int:
    """POST one signed event; a connection the server closed as idle (keep-alive) while the
    event was on its way is delivered again, as Stripe redelivers what got no answer (the
    exactly-once assertions then also cover that redelivery)."""
    for attempt in range(3):
        try:
            response = client.post(
                "/api/webhook/stripe",
                content=payload,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign(payload, WEBHOOK_SECRET),
                },
            )
        except httpx.TransportError:
            if attempt == 2:
                raise
            continue
        return response.status_code
    raise AssertionError("unreachable")


def _bootstraps(hetzner: FakeHetzner) -> dict[str, dict]:
    """bootstrap.json of every server created so far, by job id (what each Beacon reads)."""
    with hetzner.lock:
        bodies = [
            request.content
            for request in hetzner.requests
            if request.method == "POST" and request.url.path.rstrip("/").endswith("/servers")
        ]
    found = {}
    for body in bodies:
        user_data = json.loads(body)["user_data"]
        document = bootstrap_from_user_data(user_data)
        found[document["job_id"]] = document
    return found


class Beacons(threading.Thread):
    """Every new server's Beacon: once its job waits for the callback, POST `complete` to the
    callback URL with the token from its user data."""

    def __init__(self, hetzner: FakeHetzner) -> None:
        super().__init__(daemon=True)
        self.hetzner = hetzner
        self.stop = threading.Event()
        self.reported: set[str] = set()
        self.refused: list[tuple[str, int]] = []

    def run(self) -> None:
        from django.db import connection

        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(0.5):
                waiting = Job.objects.filter(
                    step="wait_callback", state="waiting", callback_completed_at__isnull=True
                ).values_list("pk", flat=True)
                bootstraps = _bootstraps(self.hetzner)
                for job_id in {str(pk) for pk in waiting} - self.reported:
                    document = bootstraps[job_id]
                    response = client.post(
                        document["callback_url"],
                        json={"status": "complete", "message": "installed"},
                        headers={"Authorization": f"Bearer {document['callback_token']}"},
                    )
                    if response.is_success:
                        self.reported.add(job_id)
                    else:
                        self.refused.append((job_id, response.status_code))
        connection.close()


def _mail_messages(mail_dir: Path) -> list[str]:
    """The messages the file backend wrote (each ends with a line of 79 dashes)."""
    messages = []
    for path in mail_dir.iterdir():
        parts = re.split(r"^-{79}$", path.read_text(), flags=re.M)
        messages += [part for part in parts if part.strip()]
    return messages


def _step_timings(done: list[tuple[object, str, object]]) -> str:
    """Median and slowest time from one step's end to the next one's, per step."""
    gaps: dict[str, list[float]] = {}
    previous: dict[object, object] = {}
    for job_id, step, at in done:
        if job_id in previous:
            gaps.setdefault(step, []).append((at - previous[job_id]).total_seconds())
        previous[job_id] = at
    return ", ".join(
        f"{step} {statistics.median(gaps[step]):.1f}/{max(gaps[step]):.1f}"
        for step in STEPS
        if step in gaps
    )


def test_two_webs_and_two_workers_provision_each_purchase_exactly_once(cluster):
    bases, hetzner, cloudflare, tmp_path = cluster
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.monotonic()
    payloads = [
        encode(
            checkout_completed_event(
                beacon_name=f"scale{number:03d}",
                email=f"buyer{number:03d}@example.com",
                session_id=f"cs_test_scale_{number:03d}",
            )
        )
        for number in range(PURCHASES)
    ]
    # Half of the doubles arrive at both web processes at once, the others come back later.
    deliveries = [(payload, number % 2) for number, payload in enumerate(payloads)]
    deliveries += [(payloads[number], (number + 1) % 2) for number in range(0, TWICE, 2)]
    late = [(payloads[number], (number + 1) % 2) for number in range(1, TWICE, 2)]

    beacons = Beacons(hetzner)
    beacons.start()
    clients = [httpx.Client(base_url=base, timeout=30) for base in bases]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda d: _deliver(clients[d[1]], d[0]), deliveries))
            statuses += list(pool.map(lambda d: _deliver(clients[d[1]], d[0]), late))
        delivered = time.monotonic()
        assert statuses == [200] * (PURCHASES + TWICE)

        health = clients[0].get("/api/health").json()
        assert health["queue"]["broker"] == "redis"
        assert health["worker"]["alive"] is True
        assert health["worker"]["last_seen_seconds"] <= 5  # both clusters report via Redis

        def all_active():
            failed = Job.objects.filter(state__in=["failed", "cancelled"])
            assert not failed.exists(), list(failed.values_list("step", "last_error")[:5])
            return Beacon.objects.filter(status="active").count() == PURCHASES

        wait_until(all_active, DEADLINE_SECONDS, f"{PURCHASES} active Beacons")
        finished = time.monotonic()
    finally:
        beacons.stop.set()
        beacons.join(timeout=10)
        for client in clients:
            client.close()
    # "<step> done" events: the job's creation and the Beacon's reports are other events.
    done = list(
        JobEvent.objects.filter(
            job__kind="provision", state__in=["pending", "completed"], level="info"
        )
        .exclude(message__startswith="Beacon:")
        .exclude(message="provision job created")
        .order_by("job_id", "at", "id")
        .values_list("job_id", "step", "at")
    )
    print(
        f"\nscale-out: {PURCHASES + TWICE} deliveries in {delivered - started:.1f} s, "
        f"all {PURCHASES} Beacons active {finished - started:.1f} s after the first; "
        f"seconds per step (median/max): {_step_timings(done)}; "
        f"{JobEvent.objects.filter(level='warning').count()} retries"
    )

    assert Beacon.objects.count() == PURCHASES
    # One provision job each (the daily-backup sweep may have started snapshot jobs beside).
    assert Job.objects.filter(kind="provision").count() == PURCHASES
    assert not Job.objects.exclude(kind__in=["provision", "snapshot"]).exists()
    assert beacons.refused == []
    # The vendors saw each server made once and four records per Beacon.
    creates = [
        request
        for request in hetzner.requests
        if request.method == "POST" and request.url.path.rstrip("/").endswith("/servers")
    ]
    assert len(creates) == PURCHASES
    assert len(hetzner.servers) == PURCHASES
    assert len({server["name"] for server in hetzner.servers.values()}) == PURCHASES
    assert len(cloudflare.records[ZONE_ID]) == 4 * PURCHASES
    # One welcome e-mail per buyer, nothing else (no failure e-mail to anyone).
    messages = _mail_messages(tmp_path / "mail")
    recipients = Counter(re.search(r"^To: (.+)$", m, flags=re.M).group(1) for m in messages)
    assert len(messages) == PURCHASES
    assert set(recipients.values()) == {1}
    assert len(list((tmp_path / "documents").rglob("*.pdf"))) == PURCHASES
    # Every job finished each step exactly once, in order (a retry would add a warning event
    # and a second "done" of its step).
    steps: dict[object, list[str]] = {}
    for job_id, step, _ in done:
        steps.setdefault(job_id, []).append(step)
    assert len(steps) == PURCHASES
    assert {tuple(job_steps) for job_steps in steps.values()} == {tuple(STEPS)}
    assert not JobEvent.objects.filter(level="error").exists()
