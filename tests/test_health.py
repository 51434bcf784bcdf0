"""`GET /api/health`: status, configuration flags, 503 when the database is gone, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Task

from provisioning.models import HealthStatus, Provider, ProviderHealthCheck
from tests.loopback import free_port

BASE_DIR = Path(__file__).resolve().parent.parent
FIELDS = {
    "status",
    "timestamp",
    "providers",
    "stripe_configured",
    "database_connected",
    "email_configured",
    "dns_configured",
    "dns_backend",
    "queue",
    "worker",
    "provider_sweep",
}


def _set_provider(name: str, status: str, *, enabled: bool = True) -> None:
    Provider.objects.update_or_create(
        name=name, defaults={"kind": name, "enabled": enabled, "health_status": status}
    )


@pytest.mark.django_db
def test_health_is_healthy_on_the_embedded_defaults(client):
    response = client.get(reverse("health"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == FIELDS
    assert body["status"] == "healthy"
    assert body["database_connected"] is True
    assert body["providers"] == ["fake"]
    assert body["stripe_configured"] is False
    assert body["email_configured"] is False
    assert body["dns_configured"] is False
    assert body["dns_backend"] == "fake"
    assert body["queue"] == {"broker": "orm", "broker_status": "ok"}
    assert body["worker"] == {"alive": False, "last_seen_seconds": None}
    assert body["provider_sweep"] == {"last_at": None, "age_seconds": None}
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0


@pytest.mark.django_db
def test_health_is_degraded_when_an_enabled_provider_is_critical(client):
    _set_provider("fake", HealthStatus.CRITICAL)

    response = client.get(reverse("health"))

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["database_connected"] is True


@pytest.mark.django_db
def test_health_ignores_critical_providers_that_are_disabled_or_not_configured(client):
    _set_provider("fake", HealthStatus.DEGRADED)
    _set_provider("hetzner", HealthStatus.CRITICAL)
    _set_provider("digitalocean", HealthStatus.CRITICAL, enabled=False)

    assert client.get(reverse("health")).json()["status"] == "healthy"


@pytest.mark.django_db
def test_health_never_shows_a_secret(client, settings):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_health_do_not_show_4242"
    settings.STRIPE_TEST_WEBHOOK_SECRET = "whsec_health_do_not_show_4242"
    settings.CLOUDFLARE_API_TOKEN = "cf_health_do_not_show_4242"
    settings.CLOUDFLARE_ZONE_ID = "zone_health_do_not_show_4242"
    settings.DNS_BACKEND = "cloudflare"

    response = client.get(reverse("health"))

    body = response.content.decode()
    assert "do_not_show" not in body
    assert "4242" not in body
    assert response.json()["stripe_configured"] is True
    assert response.json()["dns_configured"] is True


@pytest.mark.django_db
def test_health_reports_the_key_of_the_active_stripe_mode(client, settings):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_x"
    settings.STRIPE_LIVE_MODE = True

    assert client.get(reverse("health")).json()["stripe_configured"] is False

    settings.STRIPE_LIVE_SECRET_KEY = "sk_live_x"
    assert client.get(reverse("health")).json()["stripe_configured"] is True


@pytest.mark.django_db
def test_health_reports_real_email_dns_and_redis(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.DNS_BACKEND = "cloudflare"
    settings.CLOUDFLARE_API_TOKEN = "token"
    settings.CLOUDFLARE_ZONE_ID = ""
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"

    body = client.get(reverse("health")).json()

    assert body["email_configured"] is True
    assert body["dns_configured"] is False  # a zone id is needed too
    assert body["dns_backend"] == "cloudflare"
    assert body["queue"]["broker"] == "redis"


@pytest.mark.django_db
def test_health_answers_head_and_refuses_other_methods(client):
    assert client.head(reverse("health")).status_code == 200
    assert client.post(reverse("health")).status_code == 405
    assert client.options(reverse("health")).status_code == 405


def _finished_task(ago: timedelta) -> None:
    stopped = timezone.now() - ago
    Task.objects.create(
        id="a" * 32,
        name="sweep",
        func="provisioning.tasks.jobs_sweep",
        started=stopped - timedelta(seconds=1),
        stopped=stopped,
        success=True,
    )


@pytest.mark.django_db
def test_health_is_degraded_without_a_worker_when_one_is_required(client, settings):
    settings.HEALTH_REQUIRE_WORKER = True

    response = client.get(reverse("health"))

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["worker"]["alive"] is False


@pytest.mark.django_db
def test_health_sees_a_worker_that_finished_a_task_recently(client, settings):
    settings.HEALTH_REQUIRE_WORKER = True
    settings.HEALTH_WORKER_STALE_SECONDS = 180
    _finished_task(timedelta(seconds=30))

    body = client.get(reverse("health")).json()

    assert body["status"] == "healthy"
    assert body["worker"]["alive"] is True
    assert "clusters" not in body["worker"]  # SPEC §7: no counts
    assert 29 <= body["worker"]["last_seen_seconds"] <= 40


@pytest.mark.django_db
def test_health_calls_a_worker_silent_for_too_long_dead(client, settings):
    settings.HEALTH_REQUIRE_WORKER = True
    settings.HEALTH_WORKER_STALE_SECONDS = 180
    _finished_task(timedelta(hours=1))

    body = client.get(reverse("health")).json()

    assert body["status"] == "degraded"
    assert body["worker"]["alive"] is False
    assert 3600 <= body["worker"]["last_seen_seconds"] <= 3610


@pytest.mark.django_db
def test_health_sees_the_clusters_reporting_through_redis(client, settings, redis_url):
    import redis
    from django_q.conf import Conf
    from django_q.signing import SignedPackage
    from django_q.status import Status

    settings.REDIS_URL = redis_url  # a Redis of this test's own: nothing shared is written
    settings.HEALTH_REQUIRE_WORKER = True
    server = redis.Redis.from_url(settings.REDIS_URL)
    for cluster_id in ("cluster-a", "cluster-b"):
        status = Status(pid=1, cluster_id=cluster_id)
        server.set(f"{Conf.Q_STAT}:{cluster_id}", SignedPackage.dumps(status, True), ex=30)

    body = client.get(reverse("health")).json()

    assert body["queue"] == {"broker": "redis", "broker_status": "ok"}
    assert body["worker"]["alive"] is True
    assert body["worker"]["last_seen_seconds"] <= 5
    assert body["status"] == "healthy"


@pytest.mark.django_db
def test_health_answers_quickly_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.HEALTH_REQUIRE_WORKER = True

    started = time.monotonic()
    response = client.get(reverse("health"))

    assert time.monotonic() - started < 5
    assert response.status_code == 200
    assert response.json()["worker"] == {"alive": False, "last_seen_seconds": None}
    assert response.json()["status"] == "degraded"


@pytest.mark.django_db
def test_health_says_degraded_when_the_task_broker_is_unreachable(client, settings):
    """Payments are still stored, but nothing is provisioned until the broker is back."""
    settings.REDIS_URL = f"redis://:broker-password-value@127.0.0.1:{free_port()}/0"
    settings.HEALTH_REQUIRE_WORKER = False  # the broker alone decides here

    started = time.monotonic()
    response = client.get(reverse("health"))

    assert time.monotonic() - started < 5
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["queue"] == {"broker": "redis", "broker_status": "unreachable"}
    assert "broker-password-value" not in response.content.decode()


@pytest.mark.django_db
def test_health_reports_the_age_of_the_last_provider_sweep(client):
    provider = Provider.objects.create(name="fake", kind="fake")
    old = ProviderHealthCheck.objects.create(provider=provider, status=HealthStatus.HEALTHY)
    new = ProviderHealthCheck.objects.create(provider=provider, status=HealthStatus.HEALTHY)
    ProviderHealthCheck.objects.filter(pk=old.pk).update(
        checked_at=timezone.now() - timedelta(hours=2)
    )
    checked = timezone.now() - timedelta(seconds=120)
    ProviderHealthCheck.objects.filter(pk=new.pk).update(checked_at=checked)

    sweep = client.get(reverse("health")).json()["provider_sweep"]

    assert 120 <= sweep["age_seconds"] <= 130
    assert sweep["last_at"].endswith("Z")
    assert abs((datetime.fromisoformat(sweep["last_at"]) - checked).total_seconds()) < 1


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (local URL)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_for(url: str, process: subprocess.Popen, log: Path) -> tuple[int, bytes]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within 30 s:\n{log.read_text()}")


@pytest.mark.processes
def test_health_is_unhealthy_with_503_when_the_database_is_unreachable():
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere",  # nothing listens on port 1
        DEBUG="true",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        STRIPE_TEST_SECRET_KEY="sk_test_health_do_not_show_4242",
    )
    command = [sys.executable, "-m", "gunicorn", "wopr.wsgi:application"]
    command += [
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        "1",
        "--chdir",
        str(BASE_DIR),
        "--no-control-socket",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "gunicorn.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=out)
        try:
            status, content = _wait_for(f"http://127.0.0.1:{port}/api/health", process, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    assert status == 503
    body = json.loads(content)
    assert body["status"] == "unhealthy"
    assert body["database_connected"] is False
    assert body["worker"] == {"alive": False, "last_seen_seconds": None}
    assert body["stripe_configured"] is True
    assert b"do_not_show" not in content
    assert b"nowhere" not in content


@pytest.mark.django_db
def test_admin_static_files_are_served_without_debug(client, settings, tmp_path):
    """gunicorn serves the admin's CSS itself (WhiteNoise) when DEBUG is off."""
    from django.core.management import call_command

    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)
    from whitenoise.middleware import WhiteNoiseMiddleware

    middleware = WhiteNoiseMiddleware(lambda request: None)
    assert any(url.endswith("admin/css/base.css") for url in middleware.files)
