"""What every benchmark needs from the machine: a PostgreSQL database of its own, gunicorn and
qcluster started the way the project starts them, and CPU time and resident memory of those
processes read from /proc. Every process and database made here is removed by its context
manager, also when a measurement fails."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Server:
    """A started process tree: the root process and the base URL it answers on (web only)."""

    process: subprocess.Popen
    base: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid


def database_url(name: str) -> str:
    """The URL of database `name` on the same server as PG_ADMIN_URL."""
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)


@contextlib.contextmanager
def database(name: str, *, template: str = "") -> Iterator[str]:
    """A fresh database (a copy of `template` when given), dropped afterwards; yields its URL."""
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield database_url(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema_fingerprint() -> str:
    """What the migrated schema depends on: the project's migrations, catalogue data and pins."""
    digest = hashlib.sha256()
    files = sorted(ROOT.glob("*/migrations/*.py")) + sorted(ROOT.glob("*/data/*.json"))
    for path in [*files, ROOT / "pyproject.toml"]:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def database_comment(name: str) -> str | None:
    """The comment on database `name`, or None when there is no such database."""
    with psycopg.connect(PG_ADMIN_URL) as connection:
        row = connection.execute(
            "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
            "WHERE datname = %s",
            [name],
        ).fetchone()
    return None if row is None else row[0]


def database_keep(name: str) -> None:
    """(Re)create database `name`, to be kept after the run; `database_keep_mark` marks it."""
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}"')


def database_keep_mark(name: str, comment: str) -> None:
    """Mark a kept database as complete for `comment` (a fingerprint: hex digits only)."""
    assert comment.isalnum(), comment
    _admin(f"COMMENT ON DATABASE \"{name}\" IS '{comment}'")


def manage(env: dict[str, str], *args: str) -> None:
    """`manage.py <args>` in the project with `env`; output kept only when it fails."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def _stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """TERM the process we started (it stops its own workers), KILL its group if it is late."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a child that outlived its parent


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # A process group of its own, so stopping it also reaches every worker it forked.
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_answering(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def gunicorn(
    app: str, env: dict[str, str], port: int, logs: Path, *, ready_path: str
) -> Iterator[Server]:
    """gunicorn with the project's gunicorn.conf.py (as `make run` and the container start it)."""
    log = logs / f"web-{port}.log"
    env = {**env, "WOPR_BIND": f"127.0.0.1:{port}"}
    command = [str(BIN / "gunicorn"), app, "-c", str(ROOT / "gunicorn.conf.py")]
    process = _spawn(command, env, log)
    try:
        _wait_answering(f"http://127.0.0.1:{port}{ready_path}", process, log, 60)
        yield Server(process, f"http://127.0.0.1:{port}")
    finally:
        _stop(process)


@contextlib.contextmanager
def qcluster(env: dict[str, str], logs: Path) -> Iterator[Server]:
    """`manage.py qcluster`, the worker role."""
    process = _spawn([sys.executable, "manage.py", "qcluster"], env, logs / "qcluster.log")
    try:
        _wait_forked(process, logs / "qcluster.log")
        yield Server(process)
    finally:
        _stop(process, timeout=30)


def _wait_forked(process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """Until the cluster has forked its processes (sentinel, pusher, monitor, workers) and
    their number held still for a second, so a measurement never times the cluster's start."""
    deadline, seen, steady = time.monotonic() + timeout, 0, 0
    while time.monotonic() < deadline and steady < 5:
        if process.poll() is not None:
            raise RuntimeError(f"qcluster exited:\n{log.read_text()[-3000:]}")
        count = len(descendants(process.pid))
        steady = steady + 1 if count == seen and count >= 4 else 0
        seen = count
        time.sleep(0.2)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc/<pid>/task/*/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                queue += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICKS


def tree_cpu(server: Server) -> float:
    return cpu_seconds(descendants(server.pid))


def rss_mb(pid: int) -> float:
    """Resident memory of one process, in MB."""
    with contextlib.suppress(OSError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6
    return 0.0


def web_worker_rss(server: Server) -> list[float]:
    """RSS of each gunicorn worker (the master's children), largest first."""
    workers = [pid for pid in descendants(server.pid) if pid != server.pid]
    return sorted((rss_mb(pid) for pid in workers), reverse=True)


def machine() -> str:
    """`N cores, X GB RAM, Python V` for the table's heading."""
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return (
        f"{os.cpu_count()} cores, {memory_kb / 1e6:.0f} GB RAM, "
        f"Python {platform.python_version()}, PostgreSQL {_pg_version()}"
    )


def _pg_version() -> str:
    with psycopg.connect(PG_ADMIN_URL) as connection:
        return str(connection.execute("SHOW server_version").fetchone()[0]).split()[0]
