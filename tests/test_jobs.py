"""The job engine: claims, leases, retries, waits, compensation and staff actions."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, connection
from django.utils import timezone
from django_q.models import Schedule

from provisioning.faults import fault_inject
from provisioning.jobs import (
    backoff_seconds,
    job_abort,
    job_advance,
    job_cancel,
    job_retry,
    jobs_dispatch_due,
    jobs_due,
)
from provisioning.models import Beacon, FakeServer, Job, JobEvent
from provisioning.services import job_start
from provisioning.tasks import jobs_sweep
from tests.factories import BeaconFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def beacon():
    return BeaconFactory(status="pending", ipv4=None, ipv6="")


def make_due(job):
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_job_runs_all_provision_steps_to_completed(beacon, run):
    job = job_start(beacon=beacon, kind="provision")

    job = run(job)

    assert job.state == "completed"
    assert set(job.checkpoint) == {
        "choose_provider",
        "account",
        "create_server",
        "wait_server_running",
        "dns",
        "wait_callback",
        "render_documents",
        "send_welcome",
        "activate",
    }
    steps_done = list(JobEvent.objects.filter(job=job).values_list("step", flat=True))
    assert steps_done.count("create_server") == 1


def test_one_unfinished_job_per_beacon_is_enforced_by_the_database(beacon):
    job_start(beacon=beacon, kind="provision")

    with pytest.raises(IntegrityError):
        Job.objects.create(beacon=beacon, kind="suspend", step="power_off", state="waiting")


def test_a_held_lease_stops_a_second_worker(beacon):
    job = job_start(beacon=beacon, kind="provision")
    Job.objects.filter(pk=job.pk).update(
        lease_token="00000000-0000-0000-0000-000000000001",
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )

    assert job_advance(job_id=job.pk) is False
    assert Job.objects.get(pk=job.pk).step == "choose_provider"


def test_an_expired_lease_is_taken_over_and_found_by_the_sweep(beacon, run):
    job = job_start(beacon=beacon, kind="provision")
    Job.objects.filter(pk=job.pk).update(
        state="running",
        lease_token="00000000-0000-0000-0000-000000000001",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert jobs_due() == [job.pk]
    assert jobs_sweep() == 1  # tasks run inline in the tests: the sweep advanced it
    job.refresh_from_db()
    assert job.step != "choose_provider"


def test_a_job_not_yet_due_is_left_alone(beacon):
    job = job_start(beacon=beacon, kind="provision")
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))

    assert job_advance(job_id=job.pk) is False
    assert jobs_due() == []


def test_a_finished_job_is_never_advanced_again(beacon, run):
    job = run(job_start(beacon=beacon, kind="provision"))
    events = JobEvent.objects.count()

    assert job_advance(job_id=job.pk) is False
    assert JobEvent.objects.count() == events


def test_waiting_sets_the_wake_up_on_the_job_row_instead_of_sleeping(beacon, run, settings):
    # The job row's next_attempt_at is the wake-up (the due-job loop hands it out then); no
    # per-job django-q2 Schedule row any more.
    settings.FAKE_SERVER_BOOT_SECONDS = 600
    job = run(job_start(beacon=beacon, kind="provision"))

    assert (job.state, job.step) == ("waiting", "wait_server_running")
    assert not Schedule.objects.filter(name__startswith="wake-job-").exists()
    assert job.next_attempt_at > timezone.now()
    assert jobs_dispatch_due() == []
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert jobs_dispatch_due() == [job.pk]  # the row's time has come: the loop hands it out


def test_repeated_waits_write_one_timeline_line(beacon, run, settings):
    settings.FAKE_SERVER_BOOT_SECONDS = 600
    job = run(job_start(beacon=beacon, kind="provision"))
    for _ in range(3):
        make_due(job)
        job = run(job)

    waiting = JobEvent.objects.filter(job=job, state="waiting")
    assert waiting.count() == 1


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 20])
def test_backoff_grows_exponentially_with_jitter_and_a_cap(settings, attempt):
    settings.JOB_BACKOFF_BASE_SECONDS = 5
    settings.JOB_BACKOFF_MAX_SECONDS = 120
    ceiling = min(120, 5 * 2 ** (attempt - 1))

    samples = [backoff_seconds(attempt) for _ in range(200)]

    assert all(ceiling / 2 <= sample <= ceiling for sample in samples)
    assert max(samples) - min(samples) > 0  # jittered


def test_transient_failures_stop_after_max_attempts_and_compensate(beacon, run, settings):
    fault_inject("provider.create", "transient", times=10)
    job = run(job_start(beacon=beacon, kind="provision"))
    max_attempts = job.max_attempts

    for _ in range(max_attempts - 1):
        make_due(job)
        job = run(job)

    assert job.state == "failed"
    assert f"gave up after {max_attempts} attempts" in job.last_error
    beacon.refresh_from_db()
    assert beacon.status == "failed"
    assert {m.to[0] for m in mail.outbox} == {"ops@localhost", beacon.order.email}


def test_cancel_compensates_and_ends_cancelled_without_customer_mail(beacon, run, settings):
    settings.FAKE_BEACON_INSTALL_SECONDS = 600
    job = run(job_start(beacon=beacon, kind="provision"))
    assert job.step == "wait_callback"
    assert FakeServer.objects.filter(deleted=False).count() == 1

    assert job_cancel(job=job, reason="cancelled by staff@example.com") is True
    make_due(job)
    job = run(job)

    assert job.state == "cancelled"
    assert not FakeServer.objects.filter(deleted=False).exists()
    assert mail.outbox == []
    assert JobEvent.objects.filter(job=job, message__contains="staff@example.com").exists()


def test_a_completed_job_cannot_be_cancelled_or_failed(beacon, run):
    job = run(job_start(beacon=beacon, kind="provision"))

    assert job_cancel(job=job) is False
    assert job_abort(job=job, reason="late failure", final_state="failed") is False
    job.refresh_from_db()
    assert job.state == "completed"


def test_retry_after_failure_starts_over_and_ends_active(beacon, run):
    fault_inject("dns.upsert", "permanent")
    job = run(job_start(beacon=beacon, kind="provision"))
    assert job.state == "failed"

    with_retry = job_retry(job=job)
    job = run(job)

    assert with_retry is True
    assert job.state == "completed"
    assert Beacon.objects.get(pk=beacon.pk).status == "active"
    assert FakeServer.objects.filter(deleted=False).count() == 1


def test_a_result_arriving_after_cancellation_is_discarded(beacon, monkeypatch):
    """A worker that finishes its step after staff cancelled must not move the job on."""
    import dataclasses

    from provisioning import jobs

    job = job_start(beacon=beacon, kind="provision")
    workflow = jobs.WORKFLOWS["provision"]
    choose = workflow.function("choose_provider")

    def slow_choose(running_job):
        job_cancel(job=Job.objects.get(pk=running_job.pk))
        return choose(running_job)

    steps = (("choose_provider", slow_choose), *workflow.steps[1:])
    monkeypatch.setitem(jobs.WORKFLOWS, "provision", dataclasses.replace(workflow, steps=steps))

    job_advance(job_id=job.pk)

    job.refresh_from_db()
    assert job.step == "compensate"
    assert job.lease_token is None  # the discarded worker let go


def test_callback_failed_fails_the_job(beacon, run, settings, django_capture_on_commit_callbacks):
    from provisioning.callbacks import job_callback_record

    settings.FAKE_BEACON_INSTALL_SECONDS = 600
    job = run(job_start(beacon=beacon, kind="provision"))
    with django_capture_on_commit_callbacks(execute=True):
        job_callback_record(job=job, status="failed", message="disk full")
    make_due(job)
    job = run(job)

    assert job.state == "failed"
    assert "disk full" in job.last_error
    assert not FakeServer.objects.filter(deleted=False).exists()


def test_callback_token_is_checked_in_constant_time_and_expires_with_the_job(beacon, run, settings):
    from provisioning.callbacks import job_callback_token, job_callback_token_valid

    settings.FAKE_BEACON_INSTALL_SECONDS = 600
    job = run(job_start(beacon=beacon, kind="provision"))
    token = job_callback_token(job)

    # Change the last hex digit to another one: always a different token (replacing it with a
    # fixed digit left it unchanged whenever it already was that digit, 1 run in 16).
    tampered = token[:-1] + format((int(token[-1], 16) + 1) % 16, "x")
    assert tampered != token
    assert job_callback_token_valid(job, token)
    assert not job_callback_token_valid(job, tampered)
    job_cancel(job=job)
    job.refresh_from_db()
    make_due(job)
    job = run(job)
    assert not job_callback_token_valid(job, token)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_racing_for_one_job_run_its_step_once(beacon):
    """Real concurrent transactions: the conditional claim lets exactly one worker in."""
    # Made directly: job_start would enqueue, and the inline task queue would run it at once.
    job = Job.objects.create(
        beacon=beacon, kind="provision", step="choose_provider", next_attempt_at=timezone.now()
    )
    barrier = threading.Barrier(2)
    results = []

    def worker():
        barrier.wait()
        try:
            results.append(job_advance(job_id=job.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False, True]
    assert JobEvent.objects.filter(job=job, step="choose_provider", state="pending").count() == 1


def test_compensation_that_keeps_failing_flags_staff_first_then_gives_up_loudly(
    beacon, run, settings
):
    settings.JOB_COMPENSATE_MAX_ATTEMPTS = 3
    settings.FAKE_BEACON_INSTALL_SECONDS = 600
    job = run(job_start(beacon=beacon, kind="provision"))
    fault_inject("provider.delete", "transient", times=50, message="cloud API down")

    job_abort(job=job, reason="the Beacon reported a failure: disk", final_state="failed")
    make_due(job)
    job = run(job)

    assert (job.step, job.state) == ("compensate", "pending")
    beacon.refresh_from_db()
    assert beacon.status == "failed"
    assert beacon.order.__class__.objects.get(pk=beacon.order_id).needs_attention
    for _ in range(2):
        make_due(job)
        job = run(job)
    assert job.state == "failed"
    assert "compensation gave up" in job.last_error
    assert FakeServer.objects.filter(deleted=False).count() == 1  # still there: a human acts
    ops = [m for m in mail.outbox if m.to == ["ops@localhost"]]
    assert len(ops) == 1
    assert "compensation gave up" in ops[0].body


def test_a_failure_after_the_beacon_is_installed_keeps_the_server(beacon, run, monkeypatch):
    from provisioning import welcome

    def broken_render(*, beacon, kind):
        from integrations.errors import ExternalError

        raise ExternalError("template missing", transient=False)

    monkeypatch.setattr(welcome, "document_render", broken_render)

    job = run(job_start(beacon=beacon, kind="provision"))

    assert (job.state, job.step) == ("failed", "render_documents")
    assert FakeServer.objects.filter(deleted=False).count() == 1
    beacon.refresh_from_db()
    assert beacon.status == "provisioning"
    order = beacon.order.__class__.objects.get(pk=beacon.order_id)
    assert order.needs_attention
    assert "template missing" in order.attention_reason
    assert [m.to for m in mail.outbox] == [["ops@localhost"]]


def test_a_welcome_email_claimed_by_a_crashed_worker_makes_the_step_wait(beacon, run, settings):
    from documents.models import EmailMessage

    settings.FAKE_BEACON_INSTALL_SECONDS = 600
    EmailMessage.objects.create(
        idempotency_key=f"welcome:{beacon.pk}",
        template="welcome",
        recipient="x@example.com",
        status="sending",
    )
    job = run(job_start(beacon=beacon, kind="provision"))
    Job.objects.filter(pk=job.pk).update(callback_completed_at=timezone.now())
    make_due(job)

    job = run(job)

    assert (job.step, job.state) == ("send_welcome", "waiting")
    assert mail.outbox == []


def test_retry_after_the_point_of_no_return_keeps_the_same_server(beacon, run, monkeypatch):
    from provisioning import welcome

    original = welcome.document_render
    calls = {"n": 0}

    def flaky_render(*, beacon, kind):
        calls["n"] += 1
        if calls["n"] == 1:
            from integrations.errors import ExternalError

            raise ExternalError("template missing", transient=False)
        return original(beacon=beacon, kind=kind)

    monkeypatch.setattr(welcome, "document_render", flaky_render)
    job = run(job_start(beacon=beacon, kind="provision"))
    server = FakeServer.objects.get()

    assert job_retry(job=job)
    job = run(job)

    assert job.state == "completed"
    assert list(FakeServer.objects.filter(deleted=False)) == [server]


def _with_step(monkeypatch, name: str, function) -> None:
    """The provision workflow with one step's function replaced."""
    import dataclasses

    from provisioning import jobs

    workflow = jobs.WORKFLOWS["provision"]
    steps = tuple((step, function if step == name else fn) for step, fn in workflow.steps)
    monkeypatch.setitem(jobs.WORKFLOWS, "provision", dataclasses.replace(workflow, steps=steps))


def test_back_returns_to_an_earlier_step_keeping_facts_and_runs_the_later_steps_again(
    beacon, run, monkeypatch
):
    from provisioning.jobs import Back, Done

    calls = []

    def dns_once_back(job):
        calls.append(job.checkpoint.get("install"))
        if len(calls) == 1:
            return Back("create_server", "fresh server", remember={"install": {"round": 1}})
        return Done(message="dns done")

    _with_step(monkeypatch, "dns", dns_once_back)

    job = run(job_start(beacon=beacon, kind="provision"))

    assert job.state == "completed"
    assert calls == [None, {"round": 1}]  # the second run saw the remembered fact
    steps = list(JobEvent.objects.filter(job=job).values_list("step", "message"))
    assert ("dns", "fresh server") in steps
    assert [step for step, _ in steps].count("create_server") == 2


def test_back_to_a_later_step_is_a_bug_and_fails_the_job(beacon, run, monkeypatch):
    from provisioning.jobs import Back

    _with_step(monkeypatch, "dns", lambda job: Back("activate", "forward?"))

    job = run(job_start(beacon=beacon, kind="provision"))

    assert job.state == "failed"
    assert "cannot go back from dns to activate" in job.last_error


def test_a_back_arriving_after_cancellation_is_discarded(beacon, run, monkeypatch):
    from provisioning.jobs import Back

    def cancelled_meanwhile(job):
        job_cancel(job=Job.objects.get(pk=job.pk))
        return Back("create_server", "too late")

    _with_step(monkeypatch, "dns", cancelled_meanwhile)

    job = run(job_start(beacon=beacon, kind="provision"))

    assert job.state == "cancelled"
    assert not JobEvent.objects.filter(job=job, message="too late").exists()


def test_give_up_fails_without_compensation_and_tells_staff(beacon, run, monkeypatch):
    from provisioning.jobs import GiveUp

    _with_step(monkeypatch, "dns", lambda job: GiveUp("the install stalled"))

    job = run(job_start(beacon=beacon, kind="provision"))

    assert (job.state, job.step) == ("failed", "dns")
    assert not JobEvent.objects.filter(job=job, step="compensate").exists()
    assert FakeServer.objects.filter(deleted=False).count() == 1  # kept for staff
    order = beacon.order.__class__.objects.get(pk=beacon.order_id)
    assert order.needs_attention
    assert "the install stalled" in order.attention_reason
    assert [m.to for m in mail.outbox] == [["ops@localhost"]]
