"""Helpers for the tests that start real processes and servers on this machine's loopback."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx
import pytest
from django.db import connection

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(host: str, port: int) -> bool:
    """Whether something accepts connections there."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def redis_answers() -> bool:
    return listening("127.0.0.1", 6379)


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis of the test's own on a free loopback port, without persistence, stopped on exit;
    yields its URL. Tests never flush (or write unprefixed keys to) a Redis they did not start:
    the one on 6379 is shared."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wopr-test-redis-") as directory:
        command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        command += ["--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: listening("127.0.0.1", port), 15, f"redis-server on port {port}")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process_stop(process, timeout=10)


def process_stop(process: subprocess.Popen, *, timeout: float, sig: int = signal.SIGTERM) -> None:
    """Ask a process the test started to stop (`sig`), wait up to `timeout`, then kill it."""
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def database_url() -> str:
    """The test database, as a URL the child processes can use."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_until(predicate: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
