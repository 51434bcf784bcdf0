"""POST /api/v1/beacons/<id>/callback: only the Beacon's own, unexpired job token is accepted;
every refusal changes nothing."""

from __future__ import annotations

import json

import pytest

from provisioning.callbacks import job_callback_token
from provisioning.models import Beacon, Job, JobEvent, JobState
from provisioning.services import beacon_create_for_order
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting_beacon(settings, django_capture_on_commit_callbacks):
    """A Beacon whose provision job waits at `wait_callback` for the Beacon to report."""
    settings.PROVIDERS = ["fake"]
    settings.FAKE_BEACON_INSTALL_SECONDS = 3600

    def _make(name: str) -> tuple[Beacon, Job, str]:
        order = OrderFactory(beacon_name=name)
        with django_capture_on_commit_callbacks(execute=True):
            beacon, _ = beacon_create_for_order(order=order)
        job = beacon.jobs.get()
        assert (job.step, job.state) == ("wait_callback", JobState.WAITING)
        return beacon, job, job_callback_token(job)

    return _make


@pytest.fixture
def callback(api, django_capture_on_commit_callbacks):
    def _post(beacon_id, body, token: str | None = None, scheme: str = "Bearer"):
        headers = {"HTTP_AUTHORIZATION": f"{scheme} {token}"} if token is not None else {}
        with django_capture_on_commit_callbacks(execute=True):
            return api.post(
                f"/api/v1/beacons/{beacon_id}/callback",
                json.dumps(body),
                content_type="application/json",
                **headers,
            )

    return _post


def snapshot(job: Job) -> tuple:
    job.refresh_from_db()
    return (job.state, job.step, job.callback_completed_at, job.events.count())


def test_a_valid_complete_callback_moves_the_job_on(waiting_beacon, callback):
    beacon, job, token = waiting_beacon("cb1")

    response = callback(beacon.pk, {"status": "complete", "message": "all apps up"}, token)

    assert response.status_code == 202
    assert response.json() == {"accepted": True, "duplicate": False}
    job.refresh_from_db()
    assert job.state == JobState.COMPLETED
    assert job.callback_completed_at is not None
    beacon.refresh_from_db()
    assert beacon.status == "active"
    assert JobEvent.objects.filter(job=job, message="Beacon: complete: all apps up").exists()


def test_a_progress_callback_is_recorded_and_the_job_keeps_waiting(waiting_beacon, callback):
    beacon, job, token = waiting_beacon("cb2")

    module = beacon.modules[0]
    body = {"status": "installing", "module": module, "index": 1, "total": len(beacon.modules)}
    response = callback(beacon.pk, body, token)

    assert response.status_code == 202
    job.refresh_from_db()
    assert (job.step, job.state) == ("wait_callback", JobState.WAITING)
    assert job.events.order_by("-id").first().message == (
        f"Beacon: installing {module} (1/{len(beacon.modules)})"
    )


def test_a_failed_callback_fails_the_job_with_its_message(waiting_beacon, callback):
    beacon, job, token = waiting_beacon("cb3")

    response = callback(beacon.pk, {"status": "failed", "message": "disk full"}, token)

    assert response.status_code == 202
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "disk full" in job.last_error


def test_no_token_is_401_and_changes_nothing(waiting_beacon, callback):
    beacon, job, _ = waiting_beacon("cb4")
    before = snapshot(job)

    response = callback(beacon.pk, {"status": "complete"})

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"
    assert snapshot(job) == before


def test_another_scheme_is_401(waiting_beacon, callback):
    beacon, _job, token = waiting_beacon("cb5")

    assert callback(beacon.pk, {"status": "complete"}, token, scheme="Basic").status_code == 401


def _refusal(response) -> dict:
    assert response.status_code == 403, response.content
    return response.json()


def test_wrong_foreign_expired_and_unknown_tokens_are_403_alike_and_change_nothing(
    waiting_beacon, callback
):
    beacon, job, token = waiting_beacon("cb6")
    _other, other_job, other_token = waiting_beacon("cb7")
    before, other_before = snapshot(job), snapshot(other_job)

    wrong = _refusal(callback(beacon.pk, {"status": "complete"}, "0" * 64))
    foreign = _refusal(callback(beacon.pk, {"status": "complete"}, other_token))
    unknown_beacon = _refusal(
        callback("00000000-0000-4000-8000-000000000000", {"status": "complete"}, token)
    )
    invalid_body = _refusal(callback(beacon.pk, {"status": "nonsense"}, "0" * 64))

    assert wrong == foreign == unknown_beacon == invalid_body
    assert wrong["error"]["code"] == "permission_denied"
    assert snapshot(job) == before
    assert snapshot(other_job) == other_before


def test_the_token_expires_with_the_job(waiting_beacon, callback):
    beacon, job, token = waiting_beacon("cb8")
    assert callback(beacon.pk, {"status": "complete"}, token).status_code == 202
    job.refresh_from_db()
    assert job.state == JobState.COMPLETED
    before = snapshot(job)

    response = callback(beacon.pk, {"status": "failed", "message": "too late"}, token)

    assert _refusal(response)["error"]["code"] == "permission_denied"
    assert snapshot(job) == before


@pytest.mark.parametrize(
    "body",
    [{"status": "rebooting"}, {"status": "complete", "message": "x" * 1001}, {}, ["complete"]],
    ids=["unknown-status", "message-too-long", "empty", "not-an-object"],
)
def test_a_valid_token_with_a_bad_body_is_400_and_changes_nothing(waiting_beacon, callback, body):
    beacon, job, token = waiting_beacon("cb9")
    before = snapshot(job)

    response = callback(beacon.pk, body, token)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert snapshot(job) == before
