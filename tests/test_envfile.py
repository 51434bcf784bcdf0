"""`make run` says "copy .env.example": a `.env` is read when present, by every manage.py
command and by gunicorn alike; the environment wins over it, and tests never read it."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

from wopr.envfile import env_file_path, env_file_read

ROOT = Path(__file__).resolve().parent.parent


def show_settings(env: dict[str, str], *names: str) -> list[str]:
    code = "from django.conf import settings; " + "; ".join(
        f"print(settings.{name})" for name in names
    )
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split()


def test_manage_py_reads_the_env_file_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "dev.env"
    env_file.write_text(
        "# a developer's settings\nWOPR_BASE_DOMAIN=from-the-file.example\nLOG_LEVEL=WARNING\n"
    )
    env = {**os.environ, "WOPR_ENV_FILE": str(env_file), "LOG_LEVEL": "ERROR"}
    env.pop("WOPR_BASE_DOMAIN", None)

    assert show_settings(env, "WOPR_BASE_DOMAIN", "LOG_LEVEL") == ["from-the-file.example", "ERROR"]


def test_gunicorn_reads_the_same_file(tmp_path, monkeypatch):
    env_file = tmp_path / "dev.env"
    env_file.write_text("WEB_THREADS=12\n")
    monkeypatch.setenv("WOPR_ENV_FILE", str(env_file))
    monkeypatch.delenv("WEB_THREADS", raising=False)

    try:
        config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.pop("WEB_THREADS", None)  # read_env wrote it; monkeypatch did not

    assert config["threads"] == 12


def test_without_the_variable_the_projects_env_is_read_but_never_under_pytest(monkeypatch):
    monkeypatch.delenv("WOPR_ENV_FILE", raising=False)
    assert env_file_path(ROOT) is None  # this very test runs under pytest

    monkeypatch.delenv("PYTEST_VERSION")
    assert env_file_path(ROOT) == ROOT / ".env"

    monkeypatch.setenv("WOPR_ENV_FILE", "")
    assert env_file_path(ROOT) is None


def test_a_missing_file_is_no_error_and_sets_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_VERSION")
    monkeypatch.delenv("WOPR_ENV_FILE", raising=False)
    before = dict(os.environ)

    assert env_file_read(tmp_path) is None
    assert dict(os.environ) == before


def test_a_process_started_by_the_tests_ignores_a_developers_env(tmp_path):
    """PYTEST_VERSION reaches the processes tests start: a `.env` beside manage.py (here a
    stand-in project directory) is not read by them."""
    (tmp_path / ".env").write_text("WOPR_TEST_ONLY_MARK=read\n")
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
        "from wopr.envfile import env_file_read; env_file_read(Path(sys.argv[2])); "
        "print(os.environ.get('WOPR_TEST_ONLY_MARK', 'unread'))"
    )
    env = {**os.environ}
    env.pop("WOPR_ENV_FILE", None)

    under_pytest = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    env.pop("PYTEST_VERSION")
    by_hand = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert under_pytest.stdout.strip() == "unread"
    assert by_hand.stdout.strip() == "read"
