"""The deployment files (containers/, podman-compose.yml) checked as far as this machine allows.

Podman is not installed here and no base image can be pulled, so the image is not built. What
is checked instead: the README names only files and units that exist; the Quadlet units parse,
use keys Quadlet knows and pass `systemd-analyze verify` once translated as Quadlet would; the
scripts pass shellcheck; the entrypoint, the health check, deploy.sh (against stand-ins for
podman, systemctl and the Quadlet generator) and the Caddyfile behave; podman-compose turns
podman-compose.yml into the containers the README describes; and the image's install steps
(install.sh, as the Containerfile runs them) are replayed in a clean virtual environment.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.test_processes import answers, database_url, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS = ROOT / "containers"
SYSTEMD = CONTAINERS / "systemd"
ENTRYPOINT = CONTAINERS / "control-plane" / "entrypoint.sh"
INSTALL = CONTAINERS / "control-plane" / "install.sh"
HEALTHCHECK = CONTAINERS / "control-plane" / "healthcheck.py"
CONTAINERFILE = CONTAINERS / "control-plane" / "Containerfile"
DEPLOY = CONTAINERS / "deploy.sh"
README = CONTAINERS / "README.md"
BIN = Path(sys.executable).parent
IMAGE = "ghcr.io/woprsystems/control-plane:latest"
ENV_FILE = "/etc/wopr/orchestrator.env"
# The seed README's volumes and where they are mounted.
VOLUMES = {
    "wopr-jobs": "/var/lib/wopr/jobs",
    "wopr-docs": "/var/lib/wopr/documents",
    "wopr-logs": "/var/log/wopr",
    "wopr-health-state": "/var/lib/wopr/provider-health",
}
# [Container] keys of Quadlet (podman's pkg/systemd/quadlet) that these units may use.
QUADLET_CONTAINER_KEYS = {
    "AutoUpdate",
    "ContainerName",
    "DropCapability",
    "Environment",
    "EnvironmentFile",
    "Exec",
    "HealthCmd",
    "HealthInterval",
    "HealthRetries",
    "HealthStartPeriod",
    "HealthTimeout",
    "Image",
    "Label",
    "LogDriver",
    "Network",
    "NoNewPrivileges",
    "PodmanArgs",
    "PublishPort",
    "ReadOnly",
    "User",
    "Volume",
}


# --- helpers -----------------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit file as {section: [(key, value), ...]}, repeated keys kept in order
    (configparser would keep only the last Volume=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: bad section header"
            current = line[1:-1]
            assert current not in sections, f"{path.name}:{number}: [{current}] twice"
            sections[current] = []
            continue
        assert current is not None, f"{path.name}:{number}: key before any section"
        assert "=" in line, f"{path.name}:{number}: not key=value: {line!r}"
        assert not line.endswith("\\"), f"{path.name}:{number}: continuation lines unsupported"
        key, value = (part.strip() for part in line.split("=", 1))
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"{path.name}:{number}: {key!r}"
        sections[current].append((key, value))
    return sections


def values(unit: dict, section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def one(unit: dict, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: {found}"
    return found[0]


def container_units() -> dict[str, dict]:
    return {path.name: parse_unit(path) for path in sorted(SYSTEMD.glob("*.container"))}


def run(command: list, env: dict | None = None, timeout: float = 120, **kwargs):
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def entrypoint_env(**extra: str) -> dict[str, str]:
    """A bare environment, as a container has: only what the test gives (plus PATH)."""
    path = f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {"PATH": path, "APP_DIR": str(ROOT), "HOME": "/tmp", **extra}


PRODUCTION = {
    "DEBUG": "false",
    "DATABASE_URL": "postgres://wopr:db-password-do-not-show@127.0.0.1:1/wopr",
    "SECRET_KEY": "secret-key-do-not-show-0123456789",
    "STRIPE_TEST_SECRET_KEY": "sk_test_do_not_show",
    "STRIPE_TEST_WEBHOOK_SECRET": "whsec_do_not_show",
    "PROVIDERS": "hetzner",
    "HETZNER_API_TOKEN": "hetzner-token-do-not-show",
    "DNS_BACKEND": "cloudflare",
    "CLOUDFLARE_API_TOKEN": "cloudflare-token-do-not-show",
    "CLOUDFLARE_ZONE_ID": "zone-do-not-show",
    "AUTHENTIK_URL": "https://auth.example.com",
    "AUTHENTIK_API_TOKEN": "authentik-token-do-not-show",
    "SMTP_HOST": "smtp.example.com",
    "SMTP_PASSWORD": "smtp-password-do-not-show",
}


def assert_no_secret(output: str) -> None:
    assert "do-not-show" not in output
    assert "do_not_show" not in output


# --- containers/README.md ----------------------------------------------------------------------


def test_readme_names_only_files_that_exist():
    text = README.read_text()
    paths = set(re.findall(r"\bcontainers/[\w./-]*\w", text))
    paths |= {"podman-compose.yml", ".env.example"} & set(re.findall(r"[\w.-]+\.\w+", text))
    assert "containers/control-plane/Containerfile" in paths
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert missing == []


def test_readme_directory_tree_matches_the_directory():
    text = README.read_text()
    tree = text.split("## Directory Structure", 1)[1].split("```", 2)[1]
    named = set(
        re.findall(r"([\w.-]+\.(?:sh|py|container|timer|md|yml)|Containerfile|Caddyfile)", tree)
    )
    on_disk = {path.name for path in CONTAINERS.rglob("*") if path.is_file()}
    on_disk.add("podman-compose.yml")
    on_disk.discard("__pycache__")
    assert named == {name for name in on_disk if not name.endswith(".pyc")}


def test_readme_unit_names_exist():
    text = README.read_text()
    units = set(re.findall(r"\bwopr-[\w-]+\.(?:container|timer|service)\b", text))
    units |= {
        f"{name}.service"
        for name in re.findall(r"systemctl \w+ (?:--now )?(wopr-[\w-]*\w)(?![\w.-])", text)
    }
    units |= {
        f"{name}.service" for name in re.findall(r"journalctl -u (wopr-[\w-]*\w)(?![\w.-])", text)
    }
    assert {"wopr-orc.service", "wopr-provider-health.timer"} <= units
    for unit in sorted(units):
        stem, kind = unit.rsplit(".", 1)
        # Quadlet generates NAME.service from NAME.container.
        source = SYSTEMD / (f"{stem}.container" if kind == "service" else unit)
        assert source.exists(), f"README names {unit}, but {source.name} does not exist"


def test_readme_volumes_and_variables_match_the_files():
    text = README.read_text()
    table = dict(re.findall(r"^\| `(wopr-[\w-]+)` \| `([^`]+)` \|", text, flags=re.M))
    assert table == VOLUMES
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", text))
    # The scripts' own knobs (tests and unusual set-ups) and Containerfile instructions.
    internal = {"APP_DIR", "PYTHON", "WOPR_BIND", "WOPR_UPSTREAM_HOST", "WOPR_UPSTREAM_PORT"}
    internal |= {"HEALTH_WAIT_SECONDS", "CADDY_ADMIN", "HEALTHCHECK", "COPY"}
    internal |= {"BASE_IMAGE"}  # the Containerfile's build argument (stack-test.sh)
    assert named - documented - internal == set()


# --- Quadlet units -----------------------------------------------------------------------------


def test_container_units_run_the_image_with_the_env_file_and_the_volumes():
    units = container_units()
    assert set(units) == {
        "wopr-orc.container",
        "wopr-worker.container",
        "wopr-provider-health.container",
    }
    roles = {}
    for name, unit in units.items():
        keys = {key for key, _ in unit["Container"]}
        assert keys <= QUADLET_CONTAINER_KEYS, f"{name}: {keys - QUADLET_CONTAINER_KEYS}"
        assert set(unit) <= {"Unit", "Container", "Service", "Install"}
        assert one(unit, "Container", "Image") == IMAGE
        assert one(unit, "Container", "EnvironmentFile") == ENV_FILE
        roles[name] = one(unit, "Container", "Exec")
        assert one(unit, "Container", "ContainerName") == name.removesuffix(".container")
        mounts = dict(volume.split(":", 1) for volume in values(unit, "Container", "Volume"))
        assert mounts.items() <= VOLUMES.items()
        service_type = values(unit, "Service", "Type")
        assert service_type in ([], ["notify"], ["oneshot"]), "Quadlet takes notify or oneshot"
    assert roles == {
        "wopr-orc.container": "web",
        "wopr-worker.container": "worker",
        "wopr-provider-health.container": "provider-health",
    }
    for name in ("wopr-orc.container", "wopr-worker.container"):
        mounts = dict(v.split(":", 1) for v in values(units[name], "Container", "Volume"))
        assert mounts == VOLUMES
        assert "multi-user.target" in one(units[name], "Install", "WantedBy").split()
        assert one(units[name], "Service", "RestartPreventExitStatus") == "78"
    assert one(units["wopr-orc.container"], "Container", "PublishPort") == "127.0.0.1:8001:8001"
    assert values(units["wopr-worker.container"], "Container", "HealthCmd") == ["none"]


def test_provider_health_runs_once_per_timer_tick_without_catch_up():
    service = container_units()["wopr-provider-health.container"]
    timer = parse_unit(SYSTEMD / "wopr-provider-health.timer")

    assert one(service, "Service", "Type") == "oneshot"
    assert "Install" not in service  # only the timer starts it
    assert one(timer, "Timer", "Unit") == "wopr-provider-health.service"
    assert one(timer, "Timer", "Persistent") == "false"
    assert one(timer, "Install", "WantedBy") == "timers.target"
    calendar = one(timer, "Timer", "OnCalendar")
    if shutil.which("systemd-analyze"):
        shown = run(["systemd-analyze", "calendar", "--iterations=3", calendar])
        assert shown.returncode == 0, shown.stderr
        assert "*-*-* *:00/15:00" in shown.stdout


def quadlet_translation(container: Path, podman: Path) -> str:
    """The service Quadlet would generate, near enough for systemd to judge the parts it reads:
    [Unit], [Service] and [Install] pass through; [Container] becomes `podman run ...`."""
    unit = parse_unit(container)
    args = [str(podman), "run", "--rm", "--replace", "--cgroups=split", "--sdnotify=conmon"]
    flags = {
        "ContainerName": "--name",
        "EnvironmentFile": "--env-file",
        "Environment": "--env",
        "PublishPort": "--publish",
        "Volume": "--volume",
        "HealthCmd": "--health-cmd",
        "Label": "--label",
    }
    exec_args: list[str] = []
    image = ""
    for key, value in unit["Container"]:
        if key in flags:
            args += [flags[key], value]
        elif key == "Image":
            image = value
        elif key == "Exec":
            exec_args = shlex.split(value)
        elif key == "NoNewPrivileges":
            args.append("--security-opt=no-new-privileges")
        elif key == "AutoUpdate":
            args += ["--label", f"io.containers.autoupdate={value}"]
    args += [image, *exec_args]
    service = dict(unit.get("Service", []))
    lines = ["[Unit]"] + [f"{k}={v}" for k, v in unit.get("Unit", [])]
    lines += ["SourcePath=" + str(container), "", "[Service]"]
    if service.get("Type") != "oneshot":
        lines += ["Type=notify", "NotifyAccess=all"]
    lines += [f"{k}={v}" for k, v in unit.get("Service", [])]
    lines += ["KillMode=mixed", "Delegate=yes", "ExecStart=" + shlex.join(args)]
    if "Install" in unit:
        lines += ["", "[Install]"] + [f"{k}={v}" for k, v in unit["Install"]]
    return "\n".join(lines) + "\n"


def test_units_pass_systemd_analyze_verify_as_quadlet_would_generate_them(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    podman = shutil.which("podman")
    if podman is None:  # systemd checks that ExecStart is executable; a stand-in suffices
        podman = tmp_path / "bin" / "podman"
        podman.parent.mkdir()
        podman.write_text("#!/bin/sh\nexit 0\n")
        podman.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for container in SYSTEMD.glob("*.container"):
        generated = units / container.with_suffix(".service").name
        generated.write_text(quadlet_translation(container, Path(podman)))
    shutil.copy(SYSTEMD / "wopr-provider-health.timer", units)
    paths = sorted(str(path) for path in units.iterdir())

    result = run(["systemd-analyze", "verify", "--man=no", *paths], cwd=units)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unknown" not in output, output  # unknown keys or sections are only warnings
    assert "ignoring" not in output, output


# --- scripts -----------------------------------------------------------------------------------


def test_shell_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (.ci/run installs it: apt-get install shellcheck)")
    scripts = [ENTRYPOINT, INSTALL, DEPLOY, ROOT / ".ci" / "run"]

    result = run(["shellcheck", "--severity=style", *map(str, scripts)])

    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_names_missing_variables_and_refuses_to_start():
    result = run(["bash", str(ENTRYPOINT), "echo", "OK"], env=entrypoint_env())

    assert result.returncode == 78
    assert "missing: DATABASE_URL" in result.stderr
    assert "missing: SECRET_KEY" in result.stderr
    assert "OK" not in result.stdout


def test_entrypoint_names_missing_production_secrets_without_showing_any_value():
    env = entrypoint_env(**PRODUCTION)
    for name in ("STRIPE_TEST_SECRET_KEY", "HETZNER_API_TOKEN", "SMTP_HOST"):
        del env[name]

    result = run(["bash", str(ENTRYPOINT), "echo", "OK"], env=env)

    assert result.returncode == 78
    output = result.stdout + result.stderr
    assert "STRIPE_TEST_SECRET_KEY is not set" in output
    assert "HETZNER_API_TOKEN is not set" in output
    assert "EMAIL_BACKEND does not deliver mail" in output
    assert "OK" not in result.stdout
    assert_no_secret(output)


@pytest.mark.parametrize("first", [[], ["/entrypoint.sh"]], ids=["command", "seed-readme-form"])
def test_entrypoint_runs_any_command_after_the_check(first):
    # The seed README's `podman run ... wopr-control-plane /entrypoint.sh echo "OK"` hands the
    # entrypoint its own path first.
    result = run(["bash", str(ENTRYPOINT), *first, "echo", "OK"], env=entrypoint_env(**PRODUCTION))

    assert result.returncode == 0, result.stderr
    assert result.stdout == "OK\n"
    assert_no_secret(result.stdout + result.stderr)


def test_entrypoint_gives_up_on_an_unreachable_database_by_the_deadline():
    env = entrypoint_env(**PRODUCTION, WAIT_FOR_DB_TIMEOUT="2")
    started = time.monotonic()

    result = run(["bash", str(ENTRYPOINT), "web"], env=env, timeout=60)

    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert "did not answer within 2 s" in result.stderr
    assert_no_secret(result.stdout + result.stderr)


@pytest.mark.processes
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_entrypoint_web_migrates_then_serves_health_on_the_port(tmp_path):
    port = free_port()
    env = entrypoint_env(
        DEBUG="true",
        DATABASE_URL=database_url(),
        SECRET_KEY="entrypoint-test-secret-key",
        STRIPE_TEST_WEBHOOK_SECRET="whsec_entrypoint_test",
        DOCUMENTS_ROOT=str(tmp_path / "documents"),
        WOPR_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
    )
    log = tmp_path / "entrypoint.log"
    process = subprocess.Popen(
        ["bash", str(ENTRYPOINT), "web"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/api/health"), 90, "gunicorn")
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log.read_text()
    assert "database is reachable" in output
    assert "No migrations to apply" in output
    assert "Booting worker" in output


# --- wait_for_db and migrate_locked -------------------------------------------------------------


@pytest.fixture
def silent_listener():
    """A port that accepts connections and never answers (a hung database host)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("listening", [True, False], ids=["hangs", "refuses"])
def test_wait_for_db_gives_up_at_its_deadline_without_showing_the_url(silent_listener, listening):
    port = silent_listener if listening else 1
    env = {**os.environ, "DATABASE_URL": f"postgres://wopr:pw-do-not-show@127.0.0.1:{port}/wopr"}
    started = time.monotonic()

    result = run([sys.executable, "manage.py", "wait_for_db", "--timeout", "2"], env=env, cwd=ROOT)

    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 15
    assert "did not answer within 2 s" in result.stderr
    assert_no_secret(result.stdout + result.stderr)


def test_wait_for_db_retries_until_the_database_answers(monkeypatch):
    from django.db import OperationalError, connection

    calls = []

    def flaky() -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise OperationalError("not yet")

    monkeypatch.setattr(connection, "ensure_connection", flaky)
    call_command("wait_for_db", timeout=10, interval=0.05)

    assert len(calls) == 3


@pytest.mark.django_db
def test_migrate_locked_migrates_when_nothing_holds_the_lock(capsys):
    call_command("migrate_locked", "--noinput")

    assert "No migrations to apply" in capsys.readouterr().out


def _admin_connection():
    import psycopg
    from django.db import connection

    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=True,
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_migrate_locked_waits_for_the_instance_holding_the_lock():
    from wopr.management.commands.migrate_locked import MIGRATION_LOCK_KEY

    with _admin_connection() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        started = time.monotonic()
        with pytest.raises(CommandError, match="held the migration lock"):
            call_command("migrate_locked", lock_timeout=1)
        assert time.monotonic() - started >= 1


@pytest.mark.postgres
@pytest.mark.processes
@pytest.mark.django_db
def test_two_instances_starting_together_migrate_once():
    """Two `migrate_locked` at once on an empty database: one migrates, the other waits and
    finds nothing to do (two plain `migrate` would race on the same tables)."""
    from django.db import connection

    fresh = f"wopr_lock_test_{os.getpid()}"
    with _admin_connection() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
        admin.execute(f'CREATE DATABASE "{fresh}"')
    url = database_url().rsplit("/", 1)[0] + f"/{fresh}"
    env = {**os.environ, "DATABASE_URL": url}
    command = [sys.executable, "manage.py", "migrate_locked", "contenttypes"]
    try:
        starts = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=120)[0] for process in starts]
        assert [process.returncode for process in starts] == [0, 0], outputs
        applied = [output for output in outputs if "Applying contenttypes.0001_initial" in output]
        assert len(applied) == 1, outputs
        assert sum("No migrations to apply" in output for output in outputs) == 1, outputs
    finally:
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
    assert connection.vendor == "postgresql"


# --- the image's health check -----------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    hosts: list[str] = []

    def do_GET(self) -> None:
        _Health.hosts.append(self.headers["Host"])
        body = json.dumps({"status": "healthy" if self.status == 200 else "unhealthy"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
def test_image_healthcheck_passes_on_200_only(status, code):
    _Health.status, _Health.hosts = status, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ["PATH"],
        "WOPR_HEALTH_PORT": str(server.server_address[1]),
        "ALLOWED_HOSTS": "orc.example.com,localhost",
    }
    try:
        result = run([sys.executable, str(HEALTHCHECK)], env=env)
    finally:
        server.shutdown()

    assert result.returncode == code
    assert f"HTTP {status}" in result.stdout
    assert _Health.hosts == ["orc.example.com"]


def test_image_healthcheck_fails_when_nothing_answers():
    env = {"PATH": os.environ["PATH"], "WOPR_HEALTH_PORT": str(free_port())}

    result = run([sys.executable, str(HEALTHCHECK)], env=env)

    assert result.returncode == 1
    assert "no answer" in result.stdout


# --- Caddyfile --------------------------------------------------------------------------------


def test_caddyfile_proxies_to_the_web_instances(tmp_path):
    if not shutil.which("caddy"):
        pytest.skip("caddy is not installed (.ci/run installs it: apt-get install caddy)")
    _Health.status, _Health.hosts = 200, []
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    site = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CADDY_ADMIN": f"127.0.0.1:{free_port()}",
        "WOPR_SITE_ADDRESS": f"http://127.0.0.1:{site}",
        "WOPR_UPSTREAM_PORT": str(upstream.server_address[1]),
    }
    config = ["--config", str(CONTAINERS / "Caddyfile"), "--adapter", "caddyfile"]
    assert run(["caddy", "validate", *config], env=env).returncode == 0
    caddy = subprocess.Popen(
        ["caddy", "run", *config], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{site}/api/health"), 30, "caddy")
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)
        upstream.shutdown()
    # The browser's Host reaches Django (ALLOWED_HOSTS), not the upstream's address.
    assert _Health.hosts[-1] == f"127.0.0.1:{site}"


# --- podman-compose.yml ----------------------------------------------------------------------


def test_podman_compose_starts_the_stack_the_readme_describes(tmp_path):
    """podman-compose itself turns the file into podman commands (podman is a recorder here)."""
    podman_compose = shutil.which("podman-compose", path=f"{BIN}:{os.environ['PATH']}")
    if podman_compose is None:
        pytest.skip("podman-compose is not installed (.ci/run installs it from PyPI)")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "podman-compose.yml", project)
    (project / "containers").symlink_to(CONTAINERS)
    shutil.copy(ROOT / ".env.example", project / ".env")  # the README's `cp .env.example .env`
    calls = tmp_path / "calls.log"
    podman = tmp_path / "podman"
    podman.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {calls}\n'
        'case "$*" in\n'
        '  --version*) echo "podman version 5.4.2";;\n'
        '  *"--format json"*) echo "[]";;\n'
        "esac\n"
        "exit 0\n"
    )
    podman.chmod(podman.stat().st_mode | stat.S_IEXEC)

    result = run([podman_compose, "--podman-path", str(podman), "up", "-d"], cwd=project)

    assert result.returncode == 0, result.stdout + result.stderr
    creates = {
        line.split("--name=", 1)[1].split()[0]: line
        for line in calls.read_text().splitlines()
        if line.startswith("create --name=")
    }
    assert set(creates) == {"wopr_db_1", "wopr_redis_1", "wopr_orc_1", "wopr_orc_2"} | {
        "wopr_worker_1",
        "wopr_caddy_1",
    }
    assert (
        "build -f " + str(project / "containers/control-plane/Containerfile") in calls.read_text()
    )
    env = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    password = re.match(r"postgres://wopr:([^@]+)@db:5432/wopr$", env["DATABASE_URL"]).group(1)
    assert f"-e POSTGRES_PASSWORD={password} " in creates["wopr_db_1"]
    for name, role in [("wopr_orc_1", "web"), ("wopr_orc_2", "web"), ("wopr_worker_1", "worker")]:
        line = creates[name]
        assert line.endswith(f"localhost/wopr-control-plane:latest {role}")
        assert "-e REDIS_URL=redis://redis:6379/0" in line
        for volume, mount in VOLUMES.items():
            assert f"source=wopr_{volume},destination={mount}" in line
    assert "--network=wopr_default:alias=orc" in creates["wopr_orc_2"]
    assert "--no-healthcheck" in creates["wopr_worker_1"]
    assert "-p 80:80 -p 443:443" in creates["wopr_caddy_1"]
    assert "/containers/Caddyfile:/etc/caddy/Caddyfile" in creates["wopr_caddy_1"]
    assert "-e WOPR_UPSTREAM_HOST=orc" in creates["wopr_caddy_1"]
    # The web replicas trust exactly the stack's network, where Caddy connects from (the last
    # -e wins: compose's `environment` over the env file's value for the quadlets).
    for name in ("wopr_orc_1", "wopr_orc_2"):
        trusted = re.findall(r"-e TRUSTED_PROXIES=(\S+)", creates[name])
        assert trusted[-1] == "10.89.77.0/24"


# --- deploy.sh --------------------------------------------------------------------------------


@pytest.fixture
def host(tmp_path):
    """A stand-in host: podman, systemctl and the Quadlet generator record their calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    state = tmp_path / "state"
    state.mkdir()
    (state / "version").write_text("5.4.2")
    (state / "run-status").write_text("0")
    stubs = {
        "podman": f"""#!/bin/sh
echo "podman $*" >> {calls}
case "$1" in
  version) cat {state}/version;;
  image) cat {state}/image-id 2>/dev/null || exit 1;;
  pull) echo sha256:new > {state}/image-id;;
  run) exit "$(cat {state}/run-status)";;
esac
exit 0
""",
        "systemctl": f'#!/bin/sh\necho "systemctl $*" >> {calls}\nexit 0\n',
        "quadlet": f"""#!/bin/sh
echo "quadlet $*" >> {calls}
for unit in "$QUADLET_UNIT_DIRS"/*.container; do
  echo "---$(basename "$unit" .container).service---"
done
""",
    }
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env_file = tmp_path / "orchestrator.env"
    env_file.write_text(
        "DATABASE_URL=postgres://wopr:pw-do-not-show@db/wopr\nSECRET_KEY=do-not-show\n"
    )
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "WOPR_DEPLOY_ROOT": str(tmp_path / "root"),
        "QUADLET": str(bin_dir / "quadlet"),
        "HEALTH_WAIT_SECONDS": "5",
    }

    class Host:
        root = tmp_path / "root"

        def deploy(self, *args: str):
            calls.write_text("")
            result = run(["bash", str(DEPLOY), "--env-file", str(env_file), *args], env=env)
            return result, calls.read_text().splitlines()

    Host.env_file = env_file
    Host.state = state
    return Host()


def test_deploy_installs_units_and_env_file_then_starts_the_services(host):
    result, calls = host.deploy()

    assert result.returncode == 0, result.stdout + result.stderr
    # Quadlet translates only .container (.volume, .network, .kube) files from its directory;
    # the timer is an ordinary unit and goes where systemd reads those.
    installed = host.root / "etc/containers/systemd"
    assert sorted(path.name for path in installed.iterdir()) == sorted(
        path.name for path in SYSTEMD.glob("*.container")
    )
    timers = host.root / "etc/systemd/system"
    assert sorted(path.name for path in timers.iterdir()) == ["wopr-provider-health.timer"]
    assert (timers / "wopr-provider-health.timer").read_bytes() == (
        SYSTEMD / "wopr-provider-health.timer"
    ).read_bytes()
    env_file = host.root / "etc/wopr/orchestrator.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "podman pull --quiet " + IMAGE in calls
    assert f"podman run --rm --env-file {host.env_file} {IMAGE} true" in calls
    assert "systemctl daemon-reload" in calls
    assert "systemctl restart wopr-orc.service wopr-worker.service" in calls
    assert "systemctl enable --now wopr-provider-health.timer" in calls
    assert "podman healthcheck run wopr-orc" in calls
    assert_no_secret(result.stdout + result.stderr)


def test_deploy_again_changes_nothing_and_restarts_nothing(host):
    assert host.deploy()[0].returncode == 0

    result, calls = host.deploy()

    assert result.returncode == 0, result.stderr
    assert "installed" not in result.stdout
    assert "systemctl daemon-reload" not in calls
    assert not any(call.startswith("systemctl restart") for call in calls)
    assert "systemctl start wopr-orc.service wopr-worker.service" in calls


def test_deploy_moves_a_timer_an_earlier_version_left_among_the_quadlets(host):
    stale = host.root / "etc/containers/systemd/wopr-provider-health.timer"
    stale.parent.mkdir(parents=True)
    stale.write_text("[Timer]\nOnCalendar=*:0/15\n")

    result, calls = host.deploy()

    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert (host.root / "etc/systemd/system/wopr-provider-health.timer").is_file()
    assert "systemctl daemon-reload" in calls
    assert "systemctl enable --now wopr-provider-health.timer" in calls


def test_deploy_checks_everything_before_changing_anything(host):
    host.env_file.write_text("DATABASE_URL=postgres://wopr:pw-do-not-show@db/wopr\nSECRET_KEY=\n")

    result, calls = host.deploy()

    assert result.returncode == 1
    assert "does not set: SECRET_KEY" in result.stderr
    assert_no_secret(result.stdout + result.stderr)
    assert not host.root.exists()
    assert not any(call.startswith("systemctl") for call in calls)


def test_deploy_stops_when_the_image_refuses_the_configuration(host):
    (host.state / "run-status").write_text("78")

    result, calls = host.deploy()

    assert result.returncode == 1
    assert "the image refuses this configuration" in result.stderr
    assert not host.root.exists()
    assert not any(call.startswith("systemctl") for call in calls)


def test_deploy_refuses_a_podman_without_quadlet(host):
    (host.state / "version").write_text("4.3.1")

    result, _ = host.deploy()

    assert result.returncode == 1
    assert "podman 4.3.1 is too old" in result.stderr


def test_deploy_dry_run_changes_nothing(host):
    (host.state / "image-id").write_text("sha256:old")

    result, calls = host.deploy("--dry-run")

    assert result.returncode == 0, result.stderr
    assert "would install" in result.stdout
    root = host.root
    assert f"would install {root}/etc/systemd/system/wopr-provider-health.timer" in result.stdout
    assert f"would install {root}/etc/containers/systemd/wopr-orc.container" in result.stdout
    assert "etc/containers/systemd/wopr-provider-health.timer" not in result.stdout
    assert not host.root.exists()
    assert not any(call.startswith(("systemctl", "podman pull")) for call in calls)


# --- the image: Containerfile and its install steps replayed ---------------------------------


def containerfile_instructions() -> list[tuple[str, str]]:
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def test_containerfile_builds_a_slim_non_root_image_serving_8001_with_a_healthcheck():
    instructions = containerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    by_keyword: dict[str, list[str]] = {}
    for keyword, rest in instructions:
        by_keyword.setdefault(keyword, []).append(rest)

    # The base is a build argument; the official Python slim image unless one is given.
    assert by_keyword["ARG"][0] == "BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm"
    assert keywords[0] == "ARG"
    assert by_keyword["FROM"] == ["${BASE_IMAGE}"]
    assert by_keyword["USER"] == ["wopr"]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert by_keyword["EXPOSE"] == ["8001"]
    assert "/usr/local/bin/wopr-healthcheck" in by_keyword["HEALTHCHECK"][0]
    assert by_keyword["ENTRYPOINT"] == ['["/entrypoint.sh"]']
    assert by_keyword["CMD"] == ['["web"]']
    runs = " ".join(by_keyword["RUN"])
    assert "useradd --system --uid 10001" in runs
    assert "install.sh requirements /app /opt/venv" in runs
    assert "install.sh static /app /opt/venv" in runs
    for source in (rest.split()[:-1] for rest in by_keyword["COPY"]):
        for path in source:
            assert (ROOT / path).exists(), f"COPY {path}: not in the repository"


def test_containerfile_system_packages_exist_in_debian_bookworm():
    if not shutil.which("apt-cache") or not Path("/etc/debian_version").exists():
        pytest.skip("needs apt-cache on Debian")
    if not Path("/etc/debian_version").read_text().startswith("12"):
        pytest.skip("the image is Debian 12 (bookworm); this machine is not")
    if not list(Path("/var/lib/apt/lists").glob("*_Packages*")):
        pytest.skip("apt has no package lists (apt-get update has not run)")
    runs = " ".join(rest for keyword, rest in containerfile_instructions() if keyword == "RUN")
    packages = runs.split("--no-install-recommends", 1)[1].split("&&", 1)[0].split()
    assert {"libpango-1.0-0", "libpangoft2-1.0-0", "fonts-dejavu-core"} <= set(packages)

    result = run(["apt-cache", "show", "--no-all-versions", *packages])

    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"^Package: ", result.stdout, flags=re.M)) == len(packages)


def _copy_like_the_containerfile(app: Path) -> None:
    """The COPY instructions into /app (the WORKDIR), nothing else from the work tree; the
    scripts copied elsewhere in the image are run from the repository here."""
    for keyword, rest in containerfile_instructions():
        *sources, target = rest.split()
        if keyword != "COPY" or target.startswith("/"):
            continue
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(origin, app / target, ignore=ignore, dirs_exist_ok=True)
            else:
                (app / target).mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, app / target / origin.name)


@pytest.mark.processes
def test_image_install_steps_replayed_in_a_clean_virtualenv(tmp_path):
    """install.sh as the Containerfile runs it, into a new venv from the pins alone; then the
    image's roles work from there: collectstatic, WeasyPrint with the system libraries, the
    entrypoint's configuration check."""
    app, venv = tmp_path / "app", tmp_path / "venv"
    app.mkdir()
    _copy_like_the_containerfile(app)
    base_python = Path(getattr(sys, "_base_executable", sys.executable)).parent
    env = {
        "PATH": f"{base_python}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for name in ("PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL"):
        if name in os.environ:
            env[name] = os.environ[name]

    installed = run(
        ["bash", str(INSTALL), "requirements", str(app), str(venv)], env=env, timeout=600
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    collected = run(["bash", str(INSTALL), "static", str(app), str(venv)], env=env, timeout=300)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]

    assert (app / "staticfiles" / "admin" / "css" / "base.css").exists()
    assert not (app / "var").exists(), "a development secret would be baked into the image"
    python = str(venv / "bin" / "python")
    pdf = run(
        [
            python,
            "-c",
            "import weasyprint; print(len(weasyprint.HTML(string='<p>WOPR</p>').write_pdf()))",
        ],
        env=env,
    )
    assert pdf.returncode == 0, pdf.stderr
    assert int(pdf.stdout) > 500
    checked = run(
        ["bash", str(ENTRYPOINT), "echo", "OK"],
        env={**PRODUCTION, "PATH": f"{venv / 'bin'}:{env['PATH']}", "APP_DIR": str(app)},
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "OK\n"
