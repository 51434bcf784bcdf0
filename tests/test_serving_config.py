"""How the web and worker processes are served and stopped, read from the files that decide it:
one gunicorn configuration for `make run` and the container, stream bounds derived from it,
stop timeouts that let gunicorn and qcluster finish, and the proxies the deployments trust."""

from __future__ import annotations

import ipaddress
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "containers" / "systemd"
ENTRYPOINT = ROOT / "containers" / "control-plane" / "entrypoint.sh"
GUNICORN_VARIABLES = ("WOPR_BIND", "WEB_CONCURRENCY", "WEB_THREADS", "GUNICORN_TIMEOUT")


def gunicorn_config(**env: str) -> dict:
    """gunicorn.conf.py's values under `env` (and nothing else from this machine's env)."""
    saved = {name: os.environ.pop(name, None) for name in GUNICORN_VARIABLES}
    os.environ.update(env)
    try:
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        for name in env:
            os.environ.pop(name, None)
        os.environ.update({name: value for name, value in saved.items() if value is not None})


def django_settings(*names: str, **env: str) -> list[str]:
    """Settings as a fresh process computes them from `env`."""
    code = "from django.conf import settings; " + "; ".join(
        f"print(settings.{name})" for name in names
    )
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=ROOT,
        env={**os.environ, "WOPR_ENV_FILE": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split()


def unit_value(path: Path, key: str) -> str:
    [value] = re.findall(rf"^{key}=(.*)$", path.read_text(), flags=re.MULTILINE)
    return value


def stop_timeout(unit: Path) -> int:
    return int(re.search(r"--stop-timeout=(\d+)", unit_value(unit, "PodmanArgs")).group(1))


def seconds(value: str) -> int:
    return int(value.removesuffix("s"))


# --- one gunicorn configuration ---------------------------------------------------------------


def test_gunicorn_uses_threads_everywhere_with_its_knobs_from_the_environment():
    defaults = gunicorn_config()
    tuned = gunicorn_config(WEB_CONCURRENCY="3", WEB_THREADS="8", WOPR_BIND="0.0.0.0:8001")

    assert defaults["worker_class"] == "gthread"
    assert (defaults["workers"], defaults["threads"], defaults["bind"]) == (2, 32, "127.0.0.1:8001")
    assert (tuned["workers"], tuned["threads"], tuned["bind"]) == (3, 8, "0.0.0.0:8001")
    assert defaults["control_socket_disable"] is True


@pytest.mark.parametrize(
    ("path", "command"),
    [
        (ROOT / "scripts" / "dev-run.sh", ".venv/bin/gunicorn"),
        (ENTRYPOINT, "exec gunicorn"),
    ],
    ids=["make-run", "container"],
)
def test_make_run_and_the_container_start_gunicorn_from_the_config_file_alone(path, command):
    [line] = [line for line in path.read_text().splitlines() if line.strip().startswith(command)]

    assert re.search(r"-c \S*gunicorn\.conf\.py\"? wopr\.wsgi:application", line), line
    flags = re.findall(r"\s(--[a-z-]+)", line)
    assert flags == [], f"gunicorn flags outside gunicorn.conf.py: {flags}"


def test_the_container_binds_every_interface_and_ships_the_config_file():
    text = ENTRYPOINT.read_text()
    containerfile = (ROOT / "containers" / "control-plane" / "Containerfile").read_text()

    assert 'export WOPR_BIND="${WOPR_BIND:-0.0.0.0:8001}"' in text
    assert re.search(r"^COPY .*\bgunicorn\.conf\.py\b.* \./$", containerfile, flags=re.MULTILINE)


def test_streams_stay_below_the_worker_timeout_and_the_thread_count():
    """Defaults, and what the same variables gunicorn reads make of the bounds."""
    assert gunicorn_config()["timeout"] - 10 >= settings.ORDER_EVENTS_DEADLINE_SECONDS

    deadline, per_process = django_settings(
        "ORDER_EVENTS_DEADLINE_SECONDS",
        "ORDER_EVENTS_MAX_PER_PROCESS",
        ORDER_EVENTS_DEADLINE_SECONDS="120",
        GUNICORN_TIMEOUT="60",
        WEB_THREADS="8",
    )

    assert float(deadline) == 50.0
    assert int(per_process) == 6  # two of eight threads stay free for everything else


@pytest.mark.parametrize(
    ("redis_url", "backend", "prefix"),
    [
        ("", "django.core.cache.backends.db.DatabaseCache", "None"),
        ("redis://127.0.0.1:6399/0", "django.core.cache.backends.redis.RedisCache", "wopr-api"),
    ],
    ids=["database-without-redis", "redis-with-a-key-prefix"],
)
def test_the_shared_cache_is_redis_with_a_prefix_or_else_the_database(redis_url, backend, prefix):
    shown = django_settings(
        "CACHES['api']['BACKEND']", "CACHES['api'].get('KEY_PREFIX')", REDIS_URL=redis_url
    )

    assert shown == [backend, prefix]


# --- stopping within the graceful timeouts ----------------------------------------------------


def test_the_worker_container_outlasts_the_longest_task_before_it_is_killed():
    worker = SYSTEMD / "wopr-worker.container"
    compose = yaml.safe_load((ROOT / "podman-compose.yml").read_text())["services"]
    task_timeout = settings.Q_CLUSTER["timeout"]

    assert stop_timeout(worker) > task_timeout
    assert int(unit_value(worker, "TimeoutStopSec")) > stop_timeout(worker)
    assert seconds(compose["worker"]["stop_grace_period"]) == stop_timeout(worker)
    assert 'exec "$PYTHON" manage.py qcluster' in ENTRYPOINT.read_text()  # PID 1 gets SIGTERM


def test_the_web_container_outlasts_gunicorns_graceful_timeout_before_it_is_killed():
    web = SYSTEMD / "wopr-orc.container"
    compose = yaml.safe_load((ROOT / "podman-compose.yml").read_text())["services"]
    graceful = gunicorn_config()["graceful_timeout"]

    assert stop_timeout(web) > graceful
    assert int(unit_value(web, "TimeoutStopSec")) > stop_timeout(web)
    assert seconds(compose["orc"]["stop_grace_period"]) == stop_timeout(web)


# --- the proxies each deployment trusts -------------------------------------------------------


def test_compose_trusts_exactly_its_own_network_where_caddy_runs():
    compose = yaml.safe_load((ROOT / "podman-compose.yml").read_text())
    [subnet] = [entry["subnet"] for entry in compose["networks"]["default"]["ipam"]["config"]]

    assert compose["services"]["orc"]["environment"]["TRUSTED_PROXIES"] == subnet
    assert "networks" not in compose["services"]["caddy"]  # Caddy is on that default network
    default = re.fullmatch(r"\$\{WOPR_COMPOSE_SUBNET:-(.+)\}", subnet).group(1)
    assert ipaddress.ip_network(default).is_private


def test_env_example_trusts_a_host_caddy_for_the_quadlets():
    """Host Caddy reaches the published 127.0.0.1:8001; inside the container the connection
    comes from the loopback or, through podman's port forwarding, the podman gateway."""
    [line] = [
        line
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.startswith("TRUSTED_PROXIES=")
    ]
    trusted = [ipaddress.ip_network(entry) for entry in line.split("=", 1)[1].split(",")]

    for address in ("127.0.0.1", "::1", "10.88.0.1"):
        assert any(ipaddress.ip_address(address) in network for network in trusted), address
