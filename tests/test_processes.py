"""The real thing: gunicorn and a django-q2 cluster, a simulated purchase over HTTP, and the
Beacon seen becoming active through the admin."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.loopback import answers, database_url, free_port, wait_until

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def control_plane(tmp_path):
    """gunicorn on a free port and one qcluster, on the test database; stopped afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "SECRET_KEY": "process-test-secret-key",
        "STRIPE_TEST_WEBHOOK_SECRET": "whsec_process_test",
        "DOCUMENTS_ROOT": str(tmp_path / "documents"),
        "FAKE_SERVER_BOOT_SECONDS": "0",
        # One real wait, so the scheduler's wake-up path is exercised too.
        "FAKE_BEACON_INSTALL_SECONDS": "1",
        "JOB_POLL_SECONDS": "1",
        "Q_WORKERS": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    web = subprocess.Popen(
        [
            BIN / "gunicorn",
            "wopr.wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--no-control-socket",
        ],
        cwd=ROOT,
        env=env,
        stdout=(logs / "web.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=(logs / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/api/health"), 60, "gunicorn to answer")
        yield base, env, tmp_path
    finally:
        for process in (web, worker):
            process.send_signal(signal.SIGTERM)
        for process in (web, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in sorted(logs.iterdir()):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def admin_session(base: str) -> httpx.Client:
    get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-for-tests-only")
    client = httpx.Client(base_url=base, timeout=10)
    login = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    response = client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": "staff",
            "password": "pw-for-tests-only",
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        },
        headers={"Referer": f"{base}/admin/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    return client


def test_simulated_purchase_becomes_active_beacon_in_real_processes(control_plane):
    base, env, tmp_path = control_plane

    sent = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "simulate_purchase",
            "--bundle",
            "starter",
            "--tier",
            "t1",
            "--email",
            "e2e@example.com",
            "--beacon-name",
            "e2e1",
            "--url",
            base,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "accepted the event" in sent.stdout

    admin = admin_session(base)

    def beacon_row():
        page = admin.get("/admin/provisioning/beacon/", params={"q": "e2e1"})
        assert page.status_code == 200
        statuses = re.findall(r'<td class="field-status[^"]*">([^<]+)</td>', page.text)
        return "e2e1.beacons.localhost" in page.text and statuses == ["Active"]

    wait_until(beacon_row, 90, "the admin to list e2e1 as Active")
    mails = list((tmp_path / "mail").iterdir())
    assert len(mails) == 1
    assert "e2e1.beacons.localhost" in mails[0].read_text()
