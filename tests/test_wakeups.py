"""Wake-ups on time: the typed outcomes, the due-job loop's hand-out, and what chaos showed (a
wait for a vendor's shared rate budget is no failed attempt; an adopted server whose create
failed is compensated at once)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from integrations.errors import ProviderError
from provisioning import jobs, wakeups
from provisioning.fake_cloud import FakeProvider
from provisioning.faults import fault_inject
from provisioning.jobs import (
    BUDGET_WAITS_MAX,
    Again,
    Wait,
    job_advance,
    jobs_dispatch_due,
)
from provisioning.models import FakeServer, Job, JobEvent
from provisioning.services import job_start
from tests.factories import BeaconFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def beacon():
    return BeaconFactory(status="pending", ipv4=None, ipv6="")


def make_due(job):
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def waiting_job(beacon, run, settings):
    settings.FAKE_SERVER_BOOT_SECONDS = 600
    job = run(job_start(beacon=beacon, kind="provision"))
    assert (job.step, job.state) == ("wait_server_running", "waiting")
    return job


def test_a_due_job_is_handed_out_once_and_run_by_the_worker_it_was_sent_to(beacon, run, settings):
    job = waiting_job(beacon, run, settings)
    make_due(job)

    assert jobs_dispatch_due() == [job.pk]
    assert jobs_dispatch_due() == []  # reserved: the next look hands nothing out again
    job.refresh_from_db()
    reservation = job.lease_token
    assert job_advance(job_id=job.pk) is False  # a message without the reservation: no

    settings.FAKE_SERVER_BOOT_SECONDS = 0
    job = run(job, lease=reservation)

    assert job.step != "wait_server_running"
    assert job.lease_token != reservation


def test_a_reservation_whose_message_was_lost_is_handed_out_again(beacon, run, settings):
    job = waiting_job(beacon, run, settings)
    make_due(job)
    jobs_dispatch_due()
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    assert jobs_dispatch_due() == [job.pk]


def test_a_job_just_enqueued_is_left_to_its_message_unless_that_is_lost(beacon):
    job = Job.objects.create(
        beacon=beacon, kind="provision", step="choose_provider", next_attempt_at=timezone.now()
    )

    assert jobs_dispatch_due() == []  # its message is on the way (job_start sent one)
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=6))
    assert jobs_dispatch_due() == [job.pk]


def test_a_job_not_yet_due_is_not_handed_out(beacon, run, settings):
    waiting_job(beacon, run, settings)

    assert jobs_dispatch_due() == []


def test_a_wait_until_a_past_time_waits_for_the_loop_instead_of_running_again(
    beacon, run, monkeypatch
):
    calls = []

    def late(job):
        calls.append(job.step)
        return Wait(timezone.now() - timedelta(seconds=5), "nothing yet")

    workflow = jobs.WORKFLOWS["provision"]
    steps = (("choose_provider", late), *workflow.steps[1:])
    monkeypatch.setitem(jobs.WORKFLOWS, "provision", dataclasses.replace(workflow, steps=steps))

    job = run(job_start(beacon=beacon, kind="provision"))

    assert calls == ["choose_provider"]  # not run again inline: "again" is its own outcome
    assert job.state == "waiting"
    assert jobs_dispatch_due() == [job.pk]


def test_again_runs_the_step_again_at_once_keeping_what_it_remembers(beacon, run, monkeypatch):
    seen = []
    workflow = jobs.WORKFLOWS["provision"]
    real_choose = workflow.function("choose_provider")

    def choose(job):
        seen.append(job.checkpoint.get("placements_tried"))
        if len(seen) == 1:
            return Again("no capacity; next placement", remember={"placements_tried": ["a/b"]})
        return real_choose(job)

    steps = (("choose_provider", choose), *workflow.steps[1:])
    monkeypatch.setitem(jobs.WORKFLOWS, "provision", dataclasses.replace(workflow, steps=steps))
    monkeypatch.setattr(FakeProvider, "create_server", fail_create)

    job = run(job_start(beacon=beacon, kind="provision"))

    assert seen == [None, ["a/b"]]
    assert (job.step, job.attempts) == ("create_server", 1)
    assert job.checkpoint["placements_tried"] == ["a/b"]


def fail_create(self, spec):
    raise ProviderError("stop here", transient=True)


def budget_spent(monkeypatch, seconds=30.0):
    def create_server(self, spec):
        raise ProviderError(
            "hetzner API budget spent",
            transient=True,
            code="rate_limit_budget",
            retry_after=seconds,
        )

    monkeypatch.setattr(FakeProvider, "create_server", create_server)


def test_a_wait_for_the_shared_rate_budget_is_not_a_failed_attempt(beacon, run, monkeypatch):
    budget_spent(monkeypatch, seconds=30)
    before = timezone.now()

    job = run(job_start(beacon=beacon, kind="provision"))

    assert (job.step, job.state, job.attempts) == ("create_server", "waiting", 0)
    assert job.checkpoint["budget_waits"] == 1
    assert (
        before + timedelta(seconds=29)
        <= job.next_attempt_at
        <= timezone.now() + timedelta(seconds=31)
    )
    assert not JobEvent.objects.filter(job=job, level="warning").exists()


def test_the_budget_wait_ends_with_the_step_and_is_bounded(beacon, run, monkeypatch):
    budget_spent(monkeypatch)
    job = run(job_start(beacon=beacon, kind="provision"))
    Job.objects.filter(pk=job.pk).update(checkpoint={**job.checkpoint, "budget_waits": 30})
    assert BUDGET_WAITS_MAX == 30
    make_due(job)

    job = run(job)

    assert (job.state, job.attempts) == ("pending", 1)  # now it counts: never waits forever
    monkeypatch.undo()
    make_due(job)
    job = run(job)
    assert job.step != "create_server"
    assert "budget_waits" not in job.checkpoint


def test_an_adopted_server_whose_create_failed_is_compensated_at_once(beacon, run, settings):
    settings.FAKE_SERVER_BOOT_SECONDS = 0
    fault_inject("provider.create", "lost_response")
    job = run(job_start(beacon=beacon, kind="provision"))
    assert (job.step, job.attempts) == ("create_server", 1)
    FakeServer.objects.update(powered_on=False)  # the create action failed: the server is off
    make_due(job)

    job = run(job)  # adopts it (no action to poll), then reads its state

    assert job.checkpoint["create_server"]["action_id"] == ""
    assert job.state == "failed"
    assert "its create failed" in job.checkpoint["failure"]["message"]
    assert not FakeServer.objects.filter(deleted=False).exists()


def test_the_loop_survives_a_database_outage_backing_off_then_recovering(monkeypatch):
    answers = [OperationalError("server closed the connection"), OperationalError("down"), []]

    def dispatch(*, limit):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(wakeups, "jobs_dispatch_due", dispatch)
    loop = wakeups.DueJobLoop(interval=0.25)

    pauses = [loop.tick(), loop.tick(), loop.tick()]

    assert pauses == [0.5, 1.0, 0.25]
    assert loop.failures == 0


def test_the_loop_thread_stops_when_asked(monkeypatch):
    monkeypatch.setattr(wakeups, "jobs_dispatch_due", lambda *, limit: [])
    loop = wakeups.DueJobLoop(interval=0.05)
    loop.start()

    loop.stop(timeout=2)

    assert not loop.is_alive()


def test_the_loop_ends_with_the_cluster(monkeypatch):
    monkeypatch.setattr(wakeups, "jobs_dispatch_due", lambda *, limit: [])
    cluster_alive = [True]
    loop = wakeups.DueJobLoop(interval=0.05, alive=lambda: cluster_alive[0])
    loop.start()

    cluster_alive[0] = False
    loop.join(timeout=2)

    assert not loop.is_alive()


def _look_again_after(job) -> float:
    """Seconds from now to the booting server's next look."""
    return (job.next_attempt_at - timezone.now()).total_seconds()


def test_a_booting_server_is_looked_at_again_after_half_the_time_it_has_taken(
    beacon, run, settings
):
    settings.JOB_POLL_SECONDS = 5
    job = waiting_job(beacon, run, settings)  # just created: the first pause is the shortest
    assert 0.5 < _look_again_after(job) <= 1.0

    created = dict(job.checkpoint["create_server"])
    for waited, low, high in ((4, 1.5, 2.5), (60, 4.5, 5.0)):  # half of it, then the ceiling
        created["at"] = (timezone.now() - timedelta(seconds=waited)).isoformat()
        Job.objects.filter(pk=job.pk).update(
            checkpoint={**job.checkpoint, "create_server": created}
        )
        make_due(job)
        job = run(job)
        assert job.step == "wait_server_running"
        assert low < _look_again_after(job) <= high


def test_a_callback_that_arrives_while_its_step_runs_moves_the_job_on_at_once(
    beacon, run, monkeypatch
):
    from provisioning.callbacks import job_callback_record

    workflow = jobs.WORKFLOWS["provision"]
    real_wait = workflow.function("wait_server_running")
    looks = []

    def wait_server_running(job):
        looks.append(timezone.now())
        if len(looks) == 1:  # the Beacon reports while this first look is still running
            job_callback_record(job=Job.objects.get(pk=job.pk), status="complete", message="")
            return Wait(timezone.now() + timedelta(seconds=60), "waiting for the server")
        return real_wait(job)

    steps = tuple(
        (name, wait_server_running if name == "wait_server_running" else function)
        for name, function in workflow.steps
    )
    monkeypatch.setitem(jobs.WORKFLOWS, "provision", dataclasses.replace(workflow, steps=steps))

    job = run(job_start(beacon=beacon, kind="provision"))

    assert len(looks) == 2  # looked again at once, not in 60 s
    assert job.step not in ("choose_provider", "create_server", "wait_server_running")
