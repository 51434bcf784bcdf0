"""`make run` (scripts/dev-run.sh) stops completely on Ctrl-C: no gunicorn or qcluster process
of the run is left behind (before, qcluster stayed for minutes or for good, 2 runs in 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.loopback import answers, database_url, free_port, wait_until

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parent.parent
STOP_BOUND_SECONDS = 25  # the script's own bound (10 s) plus start-up slack of a busy machine


def processes_marked(mark: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment carries the mark: all
    descendants of one run, including the workers qcluster forks."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() not in (entry / "environ").read_bytes():
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue  # gone meanwhile, or not ours
        found.append((int(entry.name), command))
    return found


def start_dev_run(tmp_path: Path, mark: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "WOPR_DEV_RUN_TEST": mark,
        "BIND": f"127.0.0.1:{port}",
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "SECRET_KEY": "dev-run-test-secret-key",
        "STRIPE_TEST_WEBHOOK_SECRET": "whsec_dev_run_test",
        "DOCUMENTS_ROOT": str(tmp_path / "documents"),
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "Q_WORKERS": "1",
        "WEB_CONCURRENCY": "1",
    }
    log = (tmp_path / f"dev-run-{mark}.log").open("w")
    # Its own session, as a terminal's foreground job: Ctrl-C goes to the whole group.
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "dev-run.sh")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def test_ctrl_c_stops_gunicorn_and_qcluster_completely_every_time(tmp_path):
    for attempt in range(3):
        mark = f"dev-run-{uuid.uuid4().hex}"
        process, base = start_dev_run(tmp_path, mark)
        try:
            wait_until(
                lambda: process.poll() is not None or answers(f"{base}/api/health"),  # noqa: B023
                120,
                "make run to answer",
            )
            assert process.poll() is None, (tmp_path / f"dev-run-{mark}.log").read_text()
            wait_until(
                lambda: sum("qcluster" in cmd for _, cmd in processes_marked(mark)) >= 2,  # noqa: B023
                60,
                "qcluster and its workers",
            )

            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does

            process.wait(timeout=STOP_BOUND_SECONDS)
            wait_until(lambda: not processes_marked(mark), 5, "the run's processes to be gone")  # noqa: B023
            assert process.returncode == 130, f"attempt {attempt + 1}"
        finally:
            for pid, _ in processes_marked(mark):
                os.kill(pid, signal.SIGKILL)  # only what this test started
            if process.poll() is None:
                process.kill()
                process.wait()
            print((tmp_path / f"dev-run-{mark}.log").read_text()[-3000:])
