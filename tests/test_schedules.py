"""The periodic schedules follow their settings: each start (`migrate`) writes them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management.sql import emit_post_migrate_signal
from django.utils import timezone
from django_q.models import Schedule

from operations.schedules import schedules_sync
from tests.loopback import database_url

pytestmark = pytest.mark.django_db


def minutes() -> dict[str, int]:
    return dict(Schedule.objects.values_list("name", "minutes"))


def start() -> None:
    """The end of `migrate`, which every start of `make run` and of the web and worker
    containers runs (the whole command, in a new process, is run on PostgreSQL below; inside
    a test's transaction SQLite cannot run it)."""
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")


def test_the_schedules_follow_their_settings_at_the_next_start(settings):
    settings.JOB_SWEEP_MINUTES = 1
    settings.PROVIDER_HEALTH_SWEEP_MINUTES = 15
    settings.RECONCILE_SWEEP_MINUTES = 60
    start()
    assert minutes() == {
        "wopr-jobs-sweep": 1,
        "wopr-provider-health": 15,
        "wopr-reconcile": 60,
        "wopr-backups-daily": 60,
    }

    settings.JOB_SWEEP_MINUTES = 5
    settings.PROVIDER_HEALTH_SWEEP_MINUTES = 30
    settings.RECONCILE_SWEEP_MINUTES = 120
    settings.BACKUPS_DAILY_MINUTES = 30
    start()

    assert minutes() == {
        "wopr-jobs-sweep": 5,
        "wopr-provider-health": 30,
        "wopr-reconcile": 120,
        "wopr-backups-daily": 30,
    }
    sweep = Schedule.objects.get(name="wopr-jobs-sweep")
    assert (sweep.func, sweep.schedule_type, sweep.repeats) == (
        "provisioning.tasks.jobs_sweep",
        Schedule.MINUTES,
        -1,
    )


def test_zero_removes_an_optional_schedule_and_a_later_start_brings_it_back(settings):
    settings.RECONCILE_SWEEP_MINUTES = 0
    start()
    assert "wopr-reconcile" not in minutes()
    assert "wopr-jobs-sweep" in minutes()

    settings.RECONCILE_SWEEP_MINUTES = 45
    start()
    assert minutes()["wopr-reconcile"] == 45


def test_a_staff_edit_lasts_until_the_next_start(settings):
    settings.JOB_SWEEP_MINUTES = 2
    start()
    Schedule.objects.filter(name="wopr-jobs-sweep").update(minutes=30, repeats=0)  # paused

    start()

    sweep = Schedule.objects.get(name="wopr-jobs-sweep")
    assert (sweep.minutes, sweep.repeats) == (2, -1)


def test_a_restart_keeps_the_next_run_and_a_shorter_interval_brings_it_forward(settings):
    settings.RECONCILE_SWEEP_MINUTES = 60
    start()
    later = timezone.now() + timedelta(minutes=50)
    Schedule.objects.filter(name="wopr-reconcile").update(next_run=later)

    assert schedules_sync()["wopr-reconcile"] == "unchanged"
    assert Schedule.objects.get(name="wopr-reconcile").next_run == later

    settings.RECONCILE_SWEEP_MINUTES = 10
    before = timezone.now()
    assert schedules_sync()["wopr-reconcile"] == "updated"
    next_run = Schedule.objects.get(name="wopr-reconcile").next_run
    assert before < next_run <= timezone.now() + timedelta(minutes=10)


def test_each_schedule_exists_once_after_many_starts():
    for _ in range(3):
        start()
    names = list(Schedule.objects.values_list("name", flat=True))
    assert sorted(names) == sorted(set(names))
    assert {"wopr-jobs-sweep", "wopr-provider-health", "wopr-reconcile"} <= set(names)


def test_a_bad_interval_stops_start_up_naming_the_setting(settings):
    settings.JOB_SWEEP_MINUTES = 0
    settings.RECONCILE_SWEEP_MINUTES = -1
    from operations.schedules import check_schedule_settings

    messages = [error.msg for error in check_schedule_settings(None)]

    assert any(m.startswith("JOB_SWEEP_MINUTES must be") for m in messages)
    assert any(m.startswith("RECONCILE_SWEEP_MINUTES must be") for m in messages)
    assert len(messages) == 2


@pytest.mark.parametrize("seconds", [0, 1.5, "fast"])
def test_a_due_loop_interval_that_breaks_the_one_second_promise_stops_start_up(settings, seconds):
    from operations.schedules import check_schedule_settings

    settings.JOB_DUE_POLL_SECONDS = seconds

    messages = [error.msg for error in check_schedule_settings(None)]

    assert messages == ["JOB_DUE_POLL_SECONDS must be between 0.05 and 1.0 seconds."]


def test_per_job_wake_rows_of_older_versions_are_removed_at_the_next_start():
    Schedule.objects.create(
        name="wake-job-1234",
        func="provisioning.tasks.job_advance",
        schedule_type=Schedule.ONCE,
        next_run=timezone.now(),
    )

    start()

    assert not Schedule.objects.filter(name__startswith="wake-job-").exists()
    assert "wopr-jobs-sweep" in minutes()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_environment_variable_sets_the_sweep_at_start_up():
    """`manage.py migrate` in a new process, as `make run` and the containers start."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "SECRET_KEY": "schedules-test-secret-key",
        "JOB_SWEEP_MINUTES": "7",
        "RECONCILE_SWEEP_MINUTES": "0",
    }
    manage = Path(django_settings.BASE_DIR) / "manage.py"
    result = subprocess.run(
        [sys.executable, str(manage), "migrate", "--noinput", "-v", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert minutes()["wopr-jobs-sweep"] == 7
    assert "wopr-reconcile" not in minutes()
