"""The test session and the vendor mock servers: it stops the ones it started and only those,
and under CI=true a contract test whose mock does not start fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import vendor_spec
from tests.loopback import free_port, listening, wait_until

# A stand-in for ../shared/mocks/mocks.sh with the same contract: `start` starts a server on
# FAKE_MOCK_PORT in its own session and records its PID in $MOCKS_DIR/<name>.pid.
FAKE_MOCKS_SH = """#!/usr/bin/env bash
set -euo pipefail
[[ "$1" == start ]] || exit 2
setsid "$FAKE_MOCK_PYTHON" -m http.server "$FAKE_MOCK_PORT" --bind 127.0.0.1 \\
  </dev/null >/dev/null 2>&1 &
echo $! >"$MOCKS_DIR/fake.pid"
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$FAKE_MOCK_PORT") 2>/dev/null && exit 0
  sleep 0.1
done
exit 1
"""

# One that starts nothing, as mocks.sh does when Prism cannot be installed.
BROKEN_MOCKS_SH = """#!/usr/bin/env bash
echo "npm ci failed: no network" >&2
exit 1
"""


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    return bool(cmdline(pid))


@pytest.fixture
def mocks_dir(tmp_path, monkeypatch):
    """An empty MOCKS_DIR and a registry of its own, so the session's real mocks are untouched."""
    directory = tmp_path / "mocks"
    directory.mkdir()
    monkeypatch.setenv("MOCKS_DIR", str(directory))
    monkeypatch.setattr(vendor_spec, "_STARTED", [], raising=False)
    return directory


def fake_mocks_sh(tmp_path: Path, monkeypatch, script: str) -> None:
    path = tmp_path / "mocks.sh"
    path.write_text(script)
    monkeypatch.setattr(vendor_spec, "MOCKS_SH", path)


@pytest.fixture
def already_running(mocks_dir):
    """A mock somebody else started before the session (e.g. .ci/run), recorded in MOCKS_DIR."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    # Its command line is what the session compares before and after starting mocks; on a
    # loaded machine it can show up a moment after Popen returns.
    wait_until(lambda: b"time.sleep" in cmdline(process.pid), 10, "the other mock to start")
    (mocks_dir / "other.pid").write_text(f"{process.pid}\n")
    yield process
    process.kill()
    process.wait()


def test_session_stops_the_mock_it_started_and_leaves_a_running_one_alone(
    tmp_path, monkeypatch, mocks_dir, already_running
):
    port = free_port()
    monkeypatch.setenv("FAKE_MOCK_PORT", str(port))
    monkeypatch.setenv("FAKE_MOCK_PYTHON", sys.executable)
    fake_mocks_sh(tmp_path, monkeypatch, FAKE_MOCKS_SH)
    url = f"http://127.0.0.1:{port}"

    assert vendor_spec.mock_server(url) == url
    started = int((mocks_dir / "fake.pid").read_text())
    try:
        assert [mock.pid for mock in vendor_spec._STARTED] == [started]
        assert vendor_spec.mock_server(url) == url  # already answering: nothing new started

        stopped = vendor_spec.mocks_stop_started()

        assert stopped == [started]
        # An exiting process loses its command line (its memory) before its sockets: wait for
        # both, or a loaded machine shows the port still open for a moment.
        wait_until(
            lambda: not alive(started) and not listening("127.0.0.1", port),
            10,
            "the started mock to exit and free its port",
        )
        assert not (mocks_dir / "fake.pid").exists()
        assert already_running.poll() is None  # the one running before is still there
        assert (mocks_dir / "other.pid").exists()
        assert vendor_spec._STARTED == []
    finally:
        if b"http.server" in cmdline(started):  # stop it even when the test failed
            os.kill(started, 9)


def test_a_pid_reused_by_another_process_is_not_stopped(mocks_dir):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        vendor_spec._STARTED.append(
            vendor_spec.StartedMock(
                pidfile=mocks_dir / "fake.pid", pid=bystander.pid, cmdline=b"node prism\0"
            )
        )

        assert vendor_spec.mocks_stop_started() == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def outcome_of_mock_server(url: str) -> BaseException:
    """What `mock_server` raised: pytest's skip or its fail (either ends the calling test)."""
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as raised:
        vendor_spec.mock_server(url)
    return raised.value


def test_a_mock_that_does_not_start_fails_the_test_under_ci(tmp_path, monkeypatch, mocks_dir):
    fake_mocks_sh(tmp_path, monkeypatch, BROKEN_MOCKS_SH)
    monkeypatch.setenv("CI", "true")

    outcome = outcome_of_mock_server(f"http://127.0.0.1:{free_port()}")

    assert isinstance(outcome, pytest.fail.Exception)
    assert "does not answer" in str(outcome)
    assert "npm ci failed" in str(outcome)
    assert "CI=true" in str(outcome)


def test_a_mock_that_does_not_start_skips_with_its_reason_outside_ci(
    tmp_path, monkeypatch, mocks_dir
):
    fake_mocks_sh(tmp_path, monkeypatch, BROKEN_MOCKS_SH)
    monkeypatch.delenv("CI", raising=False)

    outcome = outcome_of_mock_server(f"http://127.0.0.1:{free_port()}")

    assert isinstance(outcome, pytest.skip.Exception)
    assert "does not answer" in str(outcome)
    assert "npm ci failed" in str(outcome)


def test_missing_shared_directory_fails_under_ci_and_skips_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr(vendor_spec, "MOCKS_SH", tmp_path / "absent" / "mocks.sh")

    monkeypatch.setenv("CI", "true")
    outcome = outcome_of_mock_server("http://127.0.0.1:4010")
    assert isinstance(outcome, pytest.fail.Exception)
    assert "absent" in str(outcome)

    monkeypatch.setenv("CI", "false")
    outcome = outcome_of_mock_server("http://127.0.0.1:4010")
    assert isinstance(outcome, pytest.skip.Exception)
    assert "absent" in str(outcome)


def test_the_session_finish_hook_stops_what_the_session_started(mocks_dir):
    from tests import conftest

    mock = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        vendor_spec._STARTED.append(
            vendor_spec.StartedMock(
                pidfile=mocks_dir / "fake.pid", pid=mock.pid, cmdline=vendor_spec._cmdline(mock.pid)
            )
        )

        conftest.pytest_sessionfinish(session=None, exitstatus=0)

        assert mock.wait(timeout=10) == -15  # SIGTERM
    finally:
        if mock.poll() is None:
            mock.kill()
            mock.wait()
