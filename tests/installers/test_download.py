"""GET /api/v1/beacons/<id>/installer: the Beacon's own live job token downloads the current
uploaded release byte for byte; everything else is refused like the callback refuses it."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from installers.services import installer_release_create_upload, installer_release_create_url
from provisioning.models import Job, JobState
from tests.installers.helpers import make_tarball

pytestmark = pytest.mark.django_db


@pytest.fixture
def current_upload(reference_tarball):
    return installer_release_create_upload(
        version="1.0.0", tarball=io.BytesIO(reference_tarball), make_current=True
    )


def download(client, beacon_id, token: str | None, query: str = ""):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.get(f"/api/v1/beacons/{beacon_id}/installer{query}", **headers)


def test_the_release_the_user_data_named_is_served_after_staff_switch(
    client, waiting_beacon, current_upload, reference_tarball
):
    """bootstrap.json's URL names the release by hash: a switch of the current release while
    the Beacon boots does not hand it a tarball whose checksum it would refuse."""
    beacon, _job, token = waiting_beacon("dl2")
    newer = make_tarball({"install": (b"#!/bin/sh\necho newer\n", 0o755)})
    installer_release_create_upload(version="2.0.0", tarball=io.BytesIO(newer), make_current=True)

    pinned = download(client, beacon.pk, token, f"?sha256={current_upload.sha256}")
    current = download(client, beacon.pk, token)
    unknown = download(client, beacon.pk, token, "?sha256=" + "f" * 64)
    malformed = download(client, beacon.pk, token, "?sha256=../../etc")

    assert b"".join(pinned.streaming_content) == reference_tarball
    assert b"".join(current.streaming_content) == newer
    assert unknown.status_code == 404
    assert malformed.status_code == 400
    assert list(malformed.json()["error"]["fields"]) == ["sha256"]


def test_the_beacons_token_downloads_the_exact_bytes_with_their_checksum(
    client, waiting_beacon, current_upload, reference_tarball
):
    beacon, _job, token = waiting_beacon("dl1")

    response = download(client, beacon.pk, token)

    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body == reference_tarball
    assert response["Content-Type"] == "application/gzip"
    assert response["X-Checksum-Sha256"] == hashlib.sha256(body).hexdigest()
    assert response["X-Checksum-Sha256"] == current_upload.sha256
    assert response["Content-Length"] == str(len(reference_tarball))
    assert "no-store" in response["Cache-Control"]
    assert 'filename="installer-1.0.0.tar.gz"' in response["Content-Disposition"]


def test_no_token_is_401_with_a_bearer_challenge(client, waiting_beacon, current_upload):
    beacon, _job, _token = waiting_beacon("dl2")

    response = download(client, beacon.pk, None)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_wrong_foreign_finished_and_unknown_are_403_alike(client, waiting_beacon, current_upload):
    beacon, job, token = waiting_beacon("dl3")
    other, _other_job, other_token = waiting_beacon("dl4")

    wrong = download(client, beacon.pk, "x" * 64)
    foreign = download(client, beacon.pk, other_token)
    unknown = download(client, "00000000-0000-4000-8000-000000000000", token)
    Job.objects.filter(pk=job.pk).update(state=JobState.COMPLETED)
    finished = download(client, beacon.pk, token)

    answers = [wrong, foreign, unknown, finished]
    assert [answer.status_code for answer in answers] == [403, 403, 403, 403]
    assert len({json.dumps(answer.json()) for answer in answers}) == 1
    assert download(client, other.pk, other_token).status_code == 200


def test_a_url_release_is_not_served_here_404_saying_so(client, waiting_beacon):
    installer_release_create_url(
        version="2.0.0", url="https://example.com/i.tar.gz", sha256="c" * 64, make_current=True
    )
    beacon, _job, token = waiting_beacon("dl5")

    response = download(client, beacon.pk, token)

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "installer_not_served"
    assert "own URL" in error["message"]


def test_the_environment_installer_is_not_served_here_either(
    client, settings, waiting_beacon, current_upload
):
    settings.WOPR_INSTALLER_URL = "https://releases.example.com/i.tar.gz"
    settings.WOPR_INSTALLER_SHA256 = "d" * 64
    beacon, _job, token = waiting_beacon("dl6")

    response = download(client, beacon.pk, token)

    assert response.status_code == 404
    assert "WOPR_INSTALLER_URL" in response.json()["error"]["message"]


def test_no_current_release_is_404(client, waiting_beacon):
    beacon, _job, token = waiting_beacon("dl7")

    response = download(client, beacon.pk, token)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_installer"


def test_a_tarball_missing_from_this_server_is_503_not_a_crash(
    client, waiting_beacon, current_upload, installers_root
):
    beacon, _job, token = waiting_beacon("dl8")
    (installers_root / current_upload.tarball_path).unlink()

    response = download(client, beacon.pk, token)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


def test_downloads_share_the_callbacks_throttle_budget(
    client, settings, waiting_beacon, current_upload
):
    beacon, _job, token = waiting_beacon("dl9")
    settings.THROTTLE_DEFAULT = "3/min"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    callbacks = [
        client.post(
            f"/api/v1/beacons/{beacon.pk}/callback",
            json.dumps({"status": "booted"}),
            content_type="application/json",
            **auth,
        )
        for _ in range(2)
    ]
    allowed = download(client, beacon.pk, token)
    throttled = download(client, beacon.pk, token)

    assert [answer.status_code for answer in callbacks] == [202, 202]
    assert allowed.status_code == 200
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) >= 1


def test_the_endpoint_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/beacons/{beacon_id}/installer"]["get"]
    assert operation["operationId"] == "beacon_installer"
    assert "application/gzip" in operation["responses"]["200"]["content"]
    assert "X-Checksum-Sha256" in operation["responses"]["200"]["headers"]
    assert {"401", "403", "404", "429"} <= set(operation["responses"])
    assert {"beaconToken": []} in operation["security"]
