"""Start the web process the way the container does (gunicorn with the project's
`gunicorn.conf.py`), on a free loopback port, for tests that prove things from outside."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.loopback import answers, free_port, process_stop, wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def running_web(
    env: dict[str, str], logs: Path, *, ready_path: str = "/api/health"
) -> Iterator[str]:
    """gunicorn as in the container (same config file) on a free port; yields its base URL.

    `env` is the whole environment of the process. The server is stopped (TERM, then KILL)
    when the block ends, and the tail of its log is printed for a failing test.
    """
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"web-{port}.log"
    process = subprocess.Popen(
        [
            BIN / "gunicorn",
            "wopr.wsgi:application",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is not None or answers(f"{base}{ready_path}"),
            60,
            "gunicorn to answer",
        )
        assert process.poll() is None, log.read_text()[-3000:]
        yield base
    finally:
        process_stop(process, timeout=20)
        print(f"--- {log.name}\n{log.read_text()[-3000:]}")
