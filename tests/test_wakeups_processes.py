"""Acceptance: with two `manage.py qcluster` processes on PostgreSQL, a step waiting 2 s runs
again 2 to 3.5 s after it waited, and a Beacon's callback moves `wait_callback` on within 1 s;
with the ORM broker and with Redis. Nothing enqueues the job: the due-job loops find it.

Prints the measured times (performance proper is for benchmarks/)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.utils import timezone

from provisioning.callbacks import job_callback_token
from provisioning.models import Job, JobEvent
from tests.factories import BeaconFactory
from tests.loopback import database_url, process_stop, wait_until
from tests.service import running_web

pytestmark = [
    pytest.mark.processes,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parent.parent
POLL = 2.0


@pytest.fixture(params=["orm", "redis"])
def broker_env(request):
    if request.param == "orm":
        return {"REDIS_URL": ""}
    return {"REDIS_URL": request.getfixturevalue("redis_url")}


@pytest.fixture
def stack(tmp_path, broker_env):
    """Two qclusters (two workers each) and one web process for the callback."""
    env = {
        **os.environ,
        **broker_env,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "SECRET_KEY": settings.SECRET_KEY,  # the test derives the Beacon's token too
        "PROVIDERS": "fake",
        "DNS_BACKEND": "fake",
        "JOB_POLL_SECONDS": str(POLL),
        "JOB_POLL_MIN_SECONDS": str(POLL),  # every wait of the booting server is exactly 2 s
        "FAKE_SERVER_BOOT_SECONDS": "1.5",  # booted before the 2 s wait ends
        "FAKE_BEACON_INSTALL_SECONDS": "600",  # only the callback ends the wait
        "DOCUMENTS_ROOT": str(tmp_path / "documents"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "Q_WORKERS": "2",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=(logs / f"worker{index}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for index in range(2)
    ]
    try:
        with running_web(env, logs) as base:
            yield base
    finally:
        for worker in workers:
            process_stop(worker, timeout=30)
        for log in sorted(logs.glob("worker*.log")):
            print(f"--- {log.name}\n{log.read_text()[-2000:]}")
        assert [worker.returncode for worker in workers] == [0, 0]  # stopped cleanly on TERM


def _event_at(job: Job, step: str, state: str, contains: str = "") -> object:
    event = (
        JobEvent.objects.filter(job=job, step=step, state=state, message__contains=contains)
        .order_by("at")
        .first()
    )
    return event.at if event else None


def _call_back_once_waiting(base: str, job: Job) -> tuple[object, object]:
    """As the Beacon: report `complete` as soon as the job waits for it; returns when the call
    was made and when the job's next step began."""
    deadline = time.monotonic() + 30
    while not Job.objects.filter(pk=job.pk, step="wait_callback", state="waiting").exists():
        assert time.monotonic() < deadline, "timed out waiting for the callback wait"
        time.sleep(0.05)  # call back at once: the step's own 2 s poll must not explain the move
    job.refresh_from_db()
    called = timezone.now()
    response = httpx.post(
        f"{base}/api/v1/beacons/{job.beacon_id}/callback",
        json={"status": "complete", "message": "installed"},
        headers={"Authorization": f"Bearer {job_callback_token(job)}"},
        timeout=10,
    )
    assert response.status_code < 300, response.text
    moved = wait_until(
        lambda: _event_at(job, "wait_callback", "pending", "the Beacon reported"),
        30,
        "the callback to move the job",
    )
    return called, moved


def test_two_workers_wake_a_waiting_step_on_time_and_a_callback_at_once(stack):
    beacon = BeaconFactory(status="pending", ipv4=None, ipv6="")
    # Made directly (job_start would run it inline in this test process): the loops find it.
    job = Job.objects.create(
        beacon=beacon, kind="provision", step="choose_provider", next_attempt_at=timezone.now()
    )

    waited = wait_until(
        lambda: _event_at(job, "wait_server_running", "waiting"), 60, "the server wait"
    )
    ran_again = wait_until(
        lambda: _event_at(job, "wait_server_running", "pending"), 30, "the step to run again"
    )
    called, moved = _call_back_once_waiting(stack, job)
    wait_until(lambda: Job.objects.get(pk=job.pk).finished, 120, "the job to finish")

    wake = (ran_again - waited).total_seconds()
    answer = (moved - called).total_seconds()
    print(
        f"\nwake-up after a {POLL:.0f} s wait: {wake:.2f} s; callback to next step: {answer:.2f} s"
    )
    assert POLL <= wake <= POLL + 1.5
    assert answer <= 1.0
    assert Job.objects.get(pk=job.pk).state == "completed"
