"""LOG_FORMAT=json: every line the control plane and gunicorn write is one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.loopback import database_url
from tests.service import running_web

ROOT = Path(__file__).resolve().parent.parent.parent
STRIPE_KEY = "sk_test_" + "J" * 24
AUTHENTIK_TOKEN = "authentik-token-for-the-json-log-test"

# Logs a line with an extra, one quoting two secrets (in the message, an extra and a traceback).
LOGGING_CALLS = f"""
import logging
log = logging.getLogger("wopr.jsontest")
log.warning("plain %s", "line", extra={{"beacon": "ada1"}})
try:
    raise RuntimeError("vendor said {STRIPE_KEY} is wrong")
except RuntimeError:
    log.exception("call failed with {AUTHENTIK_TOKEN}", extra={{"token": "{AUTHENTIK_TOKEN}"}})
"""


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "DEBUG": "true",
            "SECRET_KEY": "json-log-test-secret-key",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # any other line fails here
    assert all(isinstance(record, dict) for record in records)
    return records


def test_with_log_format_json_every_line_is_a_json_object_with_its_fields():
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        LOGGING_CALLS,
        LOG_FORMAT="json",
        STRIPE_TEST_SECRET_KEY=STRIPE_KEY,
        AUTHENTIK_API_TOKEN=AUTHENTIK_TOKEN,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    records = json_lines(result.stdout + result.stderr)
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0)
    ours = [record for record in records if record["logger"] == "wopr.jsontest"]
    plain, failed = ours
    assert (plain["level"], plain["message"], plain["beacon"]) == ("WARNING", "plain line", "ada1")
    assert failed["level"] == "ERROR"
    assert "RuntimeError" in failed["exception"]
    assert "[redacted]" in failed["exception"]
    assert failed["message"] == "call failed with [redacted]"
    assert failed["token"] == "[redacted]"


def test_no_secret_reaches_a_json_line():
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        LOGGING_CALLS,
        LOG_FORMAT="json",
        STRIPE_TEST_SECRET_KEY=STRIPE_KEY,
        AUTHENTIK_API_TOKEN=AUTHENTIK_TOKEN,
    )

    output = result.stdout + result.stderr
    assert "wopr.jsontest" in output
    assert STRIPE_KEY not in output
    assert AUTHENTIK_TOKEN not in output


def test_text_stays_the_default():
    result = manage("shell", "--no-imports", "-c", LOGGING_CALLS)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "WARNING wopr.jsontest plain line" in result.stderr
    assert not result.stderr.lstrip().startswith("{")


def test_an_unknown_log_format_stops_the_start_naming_the_allowed_values():
    result = manage("check", LOG_FORMAT="yaml")

    assert result.returncode != 0
    assert "ImproperlyConfigured: LOG_FORMAT must be one of: text, json" in result.stderr


@pytest.mark.processes
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_gunicorn_writes_its_error_and_access_lines_as_json(tmp_path):
    env = {
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "SECRET_KEY": "json-log-test-secret-key",
        "LOG_FORMAT": "json",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "4",
    }
    with running_web(env, tmp_path) as base:
        assert httpx.get(f"{base}/api/v1/catalog?from=json-test").status_code == 200

    [log] = tmp_path.glob("web-*.log")
    records = json_lines(log.read_text())
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    loggers = {record["logger"] for record in records}
    assert {"gunicorn.error", "gunicorn.access"} <= loggers
    [access] = [
        r for r in records if r["logger"] == "gunicorn.access" and "json-test" in r.get("query", "")
    ]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/api/v1/catalog", 200)
    assert "GET /api/v1/catalog?from=json-test" in access["message"]
