"""The install progress protocol: a Beacon's reports recorded once per job, server round and
stage; the buyer's progress in the order API and its stream; the install's time limits (a fresh
server, or staff); and the fake Beacons speaking the same protocol."""

from __future__ import annotations

import itertools
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from billing.api import order_status
from billing.models import Order
from billing.order_events import order_events
from billing.order_watch import OrderSnapshot, order_snapshot
from provisioning.callbacks import job_callback_token
from provisioning.jobs import job_advance
from provisioning.models import Beacon, FakeServer, InstallStage, Job, JobEvent, JobState
from provisioning.services import beacon_create_for_order
from tests.clock import clock_fixture  # noqa: F401  (the `clock` fixture, shared)
from tests.factories import BeaconFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    return Client()


@pytest.fixture
def waiting(settings, django_capture_on_commit_callbacks):
    """A bought Beacon whose job waits at `wait_callback` (the fake Beacon is silent: its
    first report is due long after any test ends)."""
    settings.FAKE_BEACON_INSTALL_SECONDS = 10**7
    settings.INSTALL_BOOT_LIMIT_SECONDS = 10**6
    settings.INSTALL_PROGRESS_LIMIT_SECONDS = 10**6

    def _make(name: str) -> tuple[Beacon, Job, str]:
        order = OrderFactory(beacon_name=name)
        with django_capture_on_commit_callbacks(execute=True):
            beacon, _ = beacon_create_for_order(order=order)
        job = beacon.jobs.get()
        assert (job.step, job.state) == ("wait_callback", JobState.WAITING)
        assert len(beacon.modules) >= 2
        return beacon, job, job_callback_token(job)

    return _make


@pytest.fixture
def report(api, django_capture_on_commit_callbacks):
    """POST a report as the Beacon does; returns (status code, JSON body)."""

    def _post(beacon: Beacon, token: str, body: Any) -> tuple[int, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                f"/api/v1/beacons/{beacon.pk}/callback",
                json.dumps(body),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
        return response.status_code, response.json()

    return _post


def installing(beacon: Beacon, number: int) -> dict[str, Any]:
    """The `installing` report of the Beacon's module `number` (1-based)."""
    modules = beacon.modules
    return {
        "status": "installing",
        "module": modules[number - 1],
        "index": number,
        "total": len(modules),
    }


def recorded(job: Job) -> tuple[list[str], int]:
    """The job's stages (in order) and its timeline's length."""
    stages = list(InstallStage.objects.filter(job=job).values_list("stage", flat=True))
    return stages, JobEvent.objects.filter(job=job).count()


def run(job: Job, capture) -> Job:
    """Make the job due and advance it (with everything it enqueues)."""
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    with capture(execute=True):
        job_advance(job_id=job.pk)
    job.refresh_from_db()
    return job


# --- the callback protocol -----------------------------------------------------------------


@pytest.mark.parametrize("status", ["booted", "installing", "configuring_sso"])
def test_each_progress_status_is_accepted_and_recorded_once(waiting, report, status):
    beacon, job, token = waiting(f"st-{status[:4]}")
    body = installing(beacon, 1) if status == "installing" else {"status": status}
    stages_before, events_before = recorded(job)

    assert report(beacon, token, body) == (202, {"accepted": True, "duplicate": False})
    stages, events = recorded(job)
    key = f"installing:{beacon.modules[0]}" if status == "installing" else status
    assert stages == [*stages_before, key]
    assert events == events_before + 1

    assert report(beacon, token, body) == (202, {"accepted": True, "duplicate": True})
    assert recorded(job) == (stages, events)
    job.refresh_from_db()
    assert (job.step, job.state) == ("wait_callback", JobState.WAITING)


def test_complete_is_recorded_once_and_ends_the_wait(waiting, report):
    beacon, job, token = waiting("st-complete")

    assert report(beacon, token, {"status": "complete"}) == (
        202,
        {"accepted": True, "duplicate": False},
    )

    job.refresh_from_db()
    assert job.state == JobState.COMPLETED
    assert list(job.install_stages.values_list("stage", flat=True)) == ["complete"]
    beacon.refresh_from_db()
    assert beacon.status == "active"


def test_the_same_module_twice_is_a_duplicate_but_another_module_is_new(waiting, report):
    beacon, job, token = waiting("st-mods")

    assert report(beacon, token, installing(beacon, 1))[1]["duplicate"] is False
    assert report(beacon, token, installing(beacon, 1))[1]["duplicate"] is True
    assert report(beacon, token, installing(beacon, 2))[1]["duplicate"] is False

    assert job.install_stages.count() == 2
    event = JobEvent.objects.filter(job=job).order_by("-id").first()
    assert event.message == f"Beacon: installing {beacon.modules[1]} (2/{len(beacon.modules)})"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "installing", "module": "MODULE", "index": 3, "total": 2}, "index"),
        ({"status": "installing", "index": 1, "total": 2}, "module"),
        ({"status": "installing", "module": "minecraft", "index": 1, "total": 2}, "module"),
        ({"status": "installing", "module": "MODULE", "total": 2}, "index"),
        ({"status": "installing", "module": "MODULE", "index": 0, "total": 2}, "index"),
        ({"status": "rebooting"}, "status"),
        ({"status": "failed", "log_tail": "x" * 16001}, "log_tail"),
        ({"status": "booted", "message": "x" * 1001}, "message"),
    ],
    ids=[
        "index-above-total",
        "missing-module",
        "unknown-module",
        "missing-index",
        "index-zero",
        "unknown-status",
        "log-tail-too-long",
        "message-too-long",
    ],
)
def test_a_bad_report_is_400_with_its_field_and_records_nothing(waiting, report, body, field):
    beacon, job, token = waiting("st-bad")
    body = {key: (beacon.modules[0] if value == "MODULE" else value) for key, value in body.items()}
    before = recorded(job)

    status, answer = report(beacon, token, body)

    assert status == 400
    assert answer["error"]["code"] == "invalid"
    assert field in answer["error"]["fields"]
    assert recorded(job) == before
    job.refresh_from_db()
    assert job.state == JobState.WAITING


def test_failed_stops_the_job_and_keeps_the_redacted_tail_of_the_log(waiting, report, settings):
    beacon, job, token = waiting("st-failed")
    settings.HETZNER_API_TOKEN = "hetzner-secret-value-123"
    log = "boring start\n" + "y" * 10000 + "\ncurl -H 'x: hetzner-secret-value-123'\nE: disk full"

    status, answer = report(
        beacon, token, {"status": "failed", "message": "apt failed", "log_tail": log}
    )

    assert (status, answer["duplicate"]) == (202, False)
    job.refresh_from_db()
    assert job.state == JobState.FAILED  # compensated: the server and records are gone
    assert "apt failed" in job.last_error
    assert not FakeServer.objects.filter(deleted=False).exists()
    event = JobEvent.objects.get(job=job, message__startswith="Beacon: failed")
    assert event.level == "error"
    assert "E: disk full" in event.message
    assert "hetzner-secret-value-123" not in event.message
    assert "[redacted]" in event.message
    assert "boring start" not in event.message  # only the log's last 4000 characters
    assert len(event.message) < 4200
    assert job.install_stages.get().stage == "failed"


def test_the_jobs_own_token_echoed_in_a_report_is_not_stored(waiting, report):
    """An installer that logs its bootstrap.json (or `curl -v`) must not leave a usable
    token in our rows."""
    beacon, job, token = waiting("st-echo")

    report(beacon, token, {"status": "booted", "message": f"token={token}"})
    report(beacon, token, {"status": "failed", "message": "x", "log_tail": f"Bearer {token}\n"})

    stored = [*JobEvent.objects.filter(job=job).values_list("message", flat=True)]
    stored += [*job.install_stages.values_list("message", flat=True)]
    assert any("[redacted]" in text for text in stored)
    assert not [text for text in stored if token in text]


def test_a_huge_module_count_is_a_400_not_a_database_error(waiting, report):
    beacon, _job, token = waiting("st-huge")
    module = beacon.modules[0]

    status, answer = report(
        beacon, token, {"status": "installing", "module": module, "index": 1, "total": 40000}
    )

    assert status == 400
    assert "total" in answer["error"]["fields"]


def test_a_complete_heard_before_a_staff_retry_still_counts_for_that_server(
    waiting, report, django_capture_on_commit_callbacks
):
    """A retry clears the flag but keeps the round (the same, installed server): the recorded
    `complete` ends the wait, instead of a stall 20 minutes later deleting a working server."""
    beacon, job, token = waiting("st-again")
    report(beacon, token, {"status": "complete"})
    Job.objects.filter(pk=job.pk).update(
        callback_completed_at=None, step="wait_callback", state=JobState.WAITING
    )

    job = run(job, django_capture_on_commit_callbacks)

    assert job.step != "wait_callback"
    assert job.state in (JobState.PENDING, JobState.RUNNING, JobState.COMPLETED)


# --- the buyer's progress ------------------------------------------------------------------


def order_install(api, order: Order) -> dict[str, Any] | None:
    response = api.get(f"/api/v1/orders/{order.pk}")
    assert response.status_code == 200
    return response.json()["install"]


def test_the_order_shows_no_install_before_the_server_runs(api):
    beacon = BeaconFactory(name="pr-early", order__beacon_name="pr-early")
    Job.objects.create(beacon=beacon, kind="provision", step="dns", state=JobState.PENDING)

    assert order_install(api, beacon.order) is None


def test_the_order_shows_stage_percent_and_modules_at_each_stage(waiting, report, api):
    beacon, _job, token = waiting("pr-stages")
    modules = beacon.modules
    total = len(modules)

    def states() -> tuple[str, int, list[str]]:
        install = order_install(api, beacon.order)
        assert [row["module"] for row in install["modules"]] == modules
        return (
            install["stage"],
            install["percent"],
            [row["state"] for row in install["modules"]],
        )

    assert states() == ("waiting", 0, ["pending"] * total)
    report(beacon, token, {"status": "booted"})
    assert states() == ("booted", 10, ["pending"] * total)
    report(beacon, token, installing(beacon, 1))
    assert states() == ("installing", 10, ["installing"] + ["pending"] * (total - 1))
    report(beacon, token, installing(beacon, 2))
    assert states() == (
        "installing",
        10 + 80 // total,
        ["done", "installing"] + ["pending"] * (total - 2),
    )
    report(beacon, token, {"status": "configuring_sso"})
    assert states() == ("configuring_sso", 90, ["done", "done"] + ["pending"] * (total - 2))
    report(beacon, token, {"status": "complete"})
    install = order_install(api, beacon.order)
    assert (install["stage"], install["percent"]) == ("complete", 100)


def test_the_order_status_with_install_progress_is_three_queries(
    waiting, report, api, django_assert_num_queries
):
    beacon, _job, token = waiting("pr-count")
    report(beacon, token, {"status": "booted"})
    report(beacon, token, installing(beacon, 1))

    # The order with its Beacon, the Beacon's latest job, that job's stages of this round (the
    # view's whole work; the throttle's cache is the API's, not the order's).
    with django_assert_num_queries(3):
        assert order_status(beacon.order.pk)["install"]["stage"] == "installing"
    with django_assert_num_queries(3):
        assert order_snapshot(beacon.order.pk).body["install"]["percent"] == 10


class OneNews:
    """An order watcher that has exactly one new snapshot to give, then none."""

    def __init__(self, news: OrderSnapshot) -> None:
        self.news: OrderSnapshot | None = news

    def watch(self, order_id: object) -> int:
        return 0

    def unwatch(self, order_id: object) -> None:
        return None

    def wait(self, order_id: object, seen: int, timeout: float) -> tuple[int, Any]:
        news, self.news = self.news, None
        return seen + 1, news


def test_the_order_stream_sends_an_event_when_the_install_progresses(waiting, report):
    beacon, _job, token = waiting("pr-stream")
    first = order_snapshot(beacon.order.pk)
    report(beacon, token, {"status": "booted"})
    after = order_snapshot(beacon.order.pk)
    assert after.event_id != first.event_id  # progress alone changes the event

    stream = order_events(
        beacon.order.pk,
        first,
        last_event_id=first.event_id,  # the client holds the first status
        deadline=time.monotonic() + 30,
        watcher=OneNews(after),  # type: ignore[arg-type]
    )
    retry_line, event = itertools.islice(stream, 2)
    stream.close()

    assert retry_line.startswith(b"retry:")
    assert event.startswith(f"id: {after.event_id}\n".encode())
    data = json.loads(event.decode().split("data: ", 1)[1])
    assert (data["install"]["stage"], data["install"]["percent"]) == ("booted", 10)


# --- the install's time limits -------------------------------------------------------------


@pytest.fixture
def stalled(settings, clock, django_capture_on_commit_callbacks):
    """A bought Beacon whose fake Beacon never reports (its first report is due in months),
    waiting at `wait_callback` with the default limits (600 s to boot, 1200 s per stage)."""
    settings.FAKE_BEACON_INSTALL_SECONDS = 10**7

    def _make(name: str) -> Job:
        order = OrderFactory(beacon_name=name)
        with django_capture_on_commit_callbacks(execute=True):
            beacon, _ = beacon_create_for_order(order=order)
        job = beacon.jobs.get()
        assert (job.step, job.state) == ("wait_callback", JobState.WAITING)
        return job

    return _make


def live_servers() -> list[str]:
    return sorted(FakeServer.objects.filter(deleted=False).values_list("name", flat=True))


def test_no_booted_report_in_time_retries_on_a_fresh_server(
    stalled, clock, django_capture_on_commit_callbacks, report, api
):
    job = stalled("tl-boot")
    first = FakeServer.objects.get(deleted=False)
    old_token = job_callback_token(job)  # in the stalled server's user data

    clock.advance(seconds=599)
    job = run(job, django_capture_on_commit_callbacks)
    assert (job.step, job.state, live_servers()) == ("wait_callback", "waiting", ["wopr-tl-boot"])

    clock.advance(seconds=2)
    job = run(job, django_capture_on_commit_callbacks)

    # The engine went back to create_server and on to a new wait, on a new server.
    assert (job.step, job.state) == ("wait_callback", "waiting")
    assert live_servers() == ["wopr-tl-boot-r1"]
    first.refresh_from_db()
    assert first.deleted
    beacon = Beacon.objects.get(pk=job.beacon_id)
    fresh = FakeServer.objects.get(deleted=False)
    assert beacon.provider_server_id == str(fresh.pk)
    assert job.checkpoint["install"] == {"round": 1, "fresh": 1}
    assert JobEvent.objects.filter(
        job=job, message__startswith="install stalled: no `booted` report within 600s"
    ).exists()
    assert mail.outbox == []  # the buyer watches the restart on the order page
    # The stalled server's token no longer works (a late report of it counts for nothing);
    # the new server's reports count afresh, and the buyer sees the round.
    token = job_callback_token(job)
    assert token != old_token
    assert report(beacon, old_token, {"status": "complete"})[0] == 403
    assert report(beacon, token, {"status": "booted"}) == (
        202,
        {"accepted": True, "duplicate": False},
    )
    assert job.install_stages.get().round == 1
    install = order_install(api, beacon.order)
    assert (install["stage"], install["round"]) == ("booted", 1)


def test_no_progress_in_time_retries_on_a_fresh_server(
    stalled, clock, django_capture_on_commit_callbacks, report
):
    job = stalled("tl-prog")
    beacon = Beacon.objects.get(pk=job.beacon_id)
    report(beacon, job_callback_token(job), {"status": "booted"})

    clock.advance(seconds=1199)
    job = run(job, django_capture_on_commit_callbacks)
    assert live_servers() == ["wopr-tl-prog"]

    clock.advance(seconds=2)
    job = run(job, django_capture_on_commit_callbacks)

    assert (job.step, job.state) == ("wait_callback", "waiting")
    assert live_servers() == ["wopr-tl-prog-r1"]
    assert JobEvent.objects.filter(
        job=job, message__startswith="install stalled: no install progress for 1200s"
    ).exists()


def assert_handed_to_staff(job: Job, server: str) -> None:
    """Failed without compensation: the server kept, the order flagged, both told."""
    assert (job.state, job.step) == ("failed", "wait_callback")
    assert live_servers() == [server]
    assert not JobEvent.objects.filter(job=job, step="compensate").exists()
    beacon = Beacon.objects.select_related("order").get(pk=job.beacon_id)
    assert beacon.status == "provisioning"
    assert beacon.order.needs_attention
    assert "install stalled" in beacon.order.attention_reason
    by_recipient = {message.to[0]: message for message in mail.outbox}
    assert set(by_recipient) == {"ops@localhost", beacon.order.email}
    customer = by_recipient[beacon.order.email]
    assert "taking longer" in customer.subject
    assert "finishing the installation" in customer.body
    assert "welcome e-mail" in customer.body
    assert "could not set up" not in customer.body


def test_staff_action_fails_the_job_keeping_the_server_and_tells_everyone(
    stalled, clock, settings, django_capture_on_commit_callbacks
):
    settings.INSTALL_TIMEOUT_ACTION = "staff"
    job = stalled("tl-staff")

    clock.advance(seconds=601)
    job = run(job, django_capture_on_commit_callbacks)

    assert_handed_to_staff(job, "wopr-tl-staff")


def test_fresh_servers_exhausted_hands_the_install_to_staff(
    stalled, clock, django_capture_on_commit_callbacks
):
    job = stalled("tl-twice")
    clock.advance(seconds=601)
    job = run(job, django_capture_on_commit_callbacks)
    assert live_servers() == ["wopr-tl-twice-r1"]

    clock.advance(seconds=601)
    job = run(job, django_capture_on_commit_callbacks)

    assert_handed_to_staff(job, "wopr-tl-twice-r1")


def test_a_staff_retry_after_a_stall_adopts_the_kept_server(
    stalled, clock, settings, django_capture_on_commit_callbacks, report
):
    from provisioning.jobs import job_retry

    settings.INSTALL_TIMEOUT_ACTION = "staff"
    job = stalled("tl-again")
    clock.advance(seconds=601)
    job = run(job, django_capture_on_commit_callbacks)
    kept = FakeServer.objects.get(deleted=False)

    with django_capture_on_commit_callbacks(execute=True):
        assert job_retry(job=job)
    job.refresh_from_db()

    assert (job.step, job.state) == ("wait_callback", "waiting")
    assert list(FakeServer.objects.filter(deleted=False)) == [kept]
    beacon = Beacon.objects.get(pk=job.beacon_id)
    assert report(beacon, job_callback_token(job), {"status": "complete"})[0] == 202
    job.refresh_from_db()
    assert job.state == "completed"


def test_a_second_stall_after_a_staff_retry_tells_everyone_again(
    stalled, clock, settings, django_capture_on_commit_callbacks
):
    from provisioning.jobs import job_retry

    settings.INSTALL_TIMEOUT_ACTION = "staff"
    job = stalled("tl-twice-staff")
    clock.advance(seconds=601)
    job = run(job, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2  # operators and customer
    with django_capture_on_commit_callbacks(execute=True):
        assert job_retry(job=job)
    job.refresh_from_db()

    clock.advance(seconds=1201)
    job = run(job, django_capture_on_commit_callbacks)

    assert job.state == "failed"
    assert sorted(message.to[0] for message in mail.outbox[2:]) == sorted(
        ["ops@localhost", Beacon.objects.get(pk=job.beacon_id).order.email]
    )


def test_an_unknown_timeout_action_stops_the_start(settings):
    from wopr.checks import check_install_timeout_action

    settings.INSTALL_TIMEOUT_ACTION = "retyr"
    assert [error.id for error in check_install_timeout_action()] == ["wopr.E070"]
    settings.INSTALL_TIMEOUT_ACTION = "staff"
    assert check_install_timeout_action() == []


# --- at Hetzner (the HTTP fake, held to Hetzner's spec) -------------------------------------

HETZNER = "https://api.hetzner.cloud/v1"


@pytest.fixture
def hetzner(settings):
    """Hetzner through the real adapter and the spec-checked HTTP fake, which here deletes as
    Hetzner does: the server stays listed for a while after DELETE answered."""
    import httpx

    from fakes.hetzner import FakeHetzner
    from integrations.http import transport_install, transport_remove
    from provisioning.models import Provider
    from tests.vendor_spec import spec_checked

    cloud = FakeHetzner()
    settings.PROVIDERS = ["hetzner"]
    settings.HETZNER_API_URL, settings.HETZNER_API_TOKEN = HETZNER, cloud.token
    settings.JOB_POLL_SECONDS = 0
    Provider.objects.create(name="hetzner", kind="hetzner", weight=100)
    cloud.deleting = []

    def slow_delete(request: httpx.Request, match: Any) -> httpx.Response:
        record = cloud.servers[int(match[1])]
        if record["protection"]["delete"]:
            return httpx.Response(423, json={"error": {"code": "protected", "message": "x"}})
        cloud.deleting.append(record["id"])
        return httpx.Response(200, json={"action": cloud._action("delete_server", record["id"])})

    cloud.routes = [
        (
            method,
            pattern,
            slow_delete if (method, pattern.pattern) == ("DELETE", r"/servers/(\d+)") else handler,
        )
        for method, pattern, handler in cloud.routes
    ]
    transport_install(HETZNER, spec_checked("hetzner", cloud.handle))
    yield cloud
    transport_remove(HETZNER)


def until_waiting_for_the_beacon(job: Job, capture) -> Job:
    for _ in range(20):
        if (job.step, job.state) == ("wait_callback", "waiting"):
            return job
        job = run(job, capture)
    raise AssertionError(f"job stuck at {job.step} ({job.state}): {job.last_error}")


def test_a_stall_at_hetzner_makes_a_fresh_server_without_adopting_the_one_being_deleted(
    hetzner, clock, settings, django_capture_on_commit_callbacks, report
):
    settings.FAKE_BEACON_INSTALL_SECONDS = 10**7
    order = OrderFactory(beacon_name="tl-hetz")
    with django_capture_on_commit_callbacks(execute=True):
        beacon, _ = beacon_create_for_order(order=order)
    job = until_waiting_for_the_beacon(beacon.jobs.get(), django_capture_on_commit_callbacks)
    (old,) = hetzner.servers.values()
    assert old["name"] == "wopr-tl-hetz"

    clock.advance(seconds=601)
    job = until_waiting_for_the_beacon(
        run(job, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks
    )

    assert hetzner.deleting == [old["id"]]  # asked to delete; still listed while it goes
    fresh = [s for s in hetzner.servers.values() if s["id"] != old["id"]]
    assert [s["name"] for s in fresh] == ["wopr-tl-hetz-r1"]
    assert fresh[0]["labels"]["wopr-job"] == str(job.pk)
    beacon.refresh_from_db()
    assert beacon.provider_server_id == str(fresh[0]["id"])
    assert report(beacon, job_callback_token(job), {"status": "complete"})[0] == 202
    job.refresh_from_db()
    assert job.state == "completed"


# --- the fake Beacons speak the protocol ----------------------------------------------------


def test_the_in_process_fake_beacon_reports_every_stage_once(
    settings, django_capture_on_commit_callbacks
):
    settings.FAKE_BEACON_INSTALL_SECONDS = 0
    order = OrderFactory(beacon_name="fk-all")
    with django_capture_on_commit_callbacks(execute=True):
        beacon, _ = beacon_create_for_order(order=order)
    job = beacon.jobs.get()

    assert job.state == "completed"
    rows = list(job.install_stages.values_list("stage", "index", "total"))
    total = len(beacon.modules)
    assert rows == [
        ("booted", None, None),
        *((f"installing:{m}", n, total) for n, m in enumerate(beacon.modules, start=1)),
        ("configuring_sso", None, None),
        ("complete", None, None),
    ]


def test_the_in_process_fake_beacon_spreads_its_stages_over_its_install_time(
    settings, clock, django_capture_on_commit_callbacks
):
    settings.FAKE_BEACON_INSTALL_SECONDS = 100
    order = OrderFactory(beacon_name="fk-spread")
    with django_capture_on_commit_callbacks(execute=True):
        beacon, _ = beacon_create_for_order(order=order)
    job = beacon.jobs.get()
    count = len(beacon.modules) + 3
    assert job.install_stages.count() == 0
    # The step wakes for the next stage, not a minute later.
    assert job.next_attempt_at <= timezone.now() + timedelta(seconds=100 / count + 1)

    clock.advance(seconds=100 * 2 / count + 0.5)
    job = run(job, django_capture_on_commit_callbacks)
    assert list(job.install_stages.values_list("stage", flat=True)) == [
        "booted",
        f"installing:{beacon.modules[0]}",
    ]
    job = run(job, django_capture_on_commit_callbacks)  # an early look records nothing twice
    assert job.install_stages.count() == 2

    clock.advance(seconds=100)
    job = run(job, django_capture_on_commit_callbacks)
    assert job.state == "completed"
    assert job.install_stages.count() == count


def test_the_http_fake_beacon_posts_the_same_sequence_through_the_api(
    waiting, api, monkeypatch, django_capture_on_commit_callbacks
):
    import httpx

    from fakes import beacon as fake_beacon

    beacon, job, token = waiting("fk-http")
    answers: list[tuple[int, dict]] = []

    def post(url: str, **kwargs: Any) -> httpx.Response:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                url.removeprefix("http://testserver"),
                json.dumps(kwargs["json"]),
                content_type="application/json",
                HTTP_AUTHORIZATION=kwargs["headers"]["Authorization"],
            )
        answers.append((response.status_code, response.json()))
        return httpx.Response(response.status_code)

    monkeypatch.setattr(fake_beacon.httpx, "post", post)
    bootstrap = {
        "name": beacon.name,
        "modules": beacon.modules,
        "callback_url": f"http://testserver/api/v1/beacons/{beacon.pk}/callback",
        "callback_token": token,
    }

    fake_beacon._report(bootstrap)

    assert answers == [(202, {"accepted": True, "duplicate": False})] * (len(beacon.modules) + 3)
    job.refresh_from_db()
    assert job.state == "completed"
    assert job.install_stages.count() == len(beacon.modules) + 3
