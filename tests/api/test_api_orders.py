"""GET /api/v1/orders/<id> and its event stream: progress without secrets, one order at a time."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import OrderStatus
from provisioning.models import BeaconStatus, Job, JobState
from provisioning.services import beacon_create_for_order
from tests.factories import BeaconFactory, OrderFactory

pytestmark = pytest.mark.django_db


def status_url(order) -> str:
    return f"/api/v1/orders/{order.pk}"


def test_a_pending_order_has_no_beacon_or_job_yet(api):
    order = OrderFactory(status=OrderStatus.PENDING, beacon_name="soon1")

    response = api.get(status_url(order))

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body == {
        "order_id": str(order.pk),
        "status": "pending",
        "beacon": None,
        "job": None,
        "install": None,
        "created_at": body["created_at"],
    }


def test_a_provisioning_order_shows_step_and_percent_but_no_address(
    api, settings, django_capture_on_commit_callbacks
):
    settings.FAKE_BEACON_INSTALL_SECONDS = 3600  # the job waits for the Beacon's callback
    order = OrderFactory(beacon_name="wait1")
    with django_capture_on_commit_callbacks(execute=True):
        beacon_create_for_order(order=order)

    body = api.get(status_url(order)).json()

    assert body["status"] == "paid"
    assert body["beacon"] == {"name": "wait1", "fqdn": None, "status": "provisioning"}
    assert body["job"] == {"step": "wait_callback", "state": "waiting", "percent": 55}


def test_an_active_order_shows_its_fqdn_and_100_percent(api, django_capture_on_commit_callbacks):
    order = OrderFactory(beacon_name="done1")
    with django_capture_on_commit_callbacks(execute=True):
        beacon_create_for_order(order=order)

    body = api.get(status_url(order)).json()

    assert body["beacon"] == {"name": "done1", "fqdn": "done1.beacons.test", "status": "active"}
    assert body["job"] == {"step": "activate", "state": "completed", "percent": 100}


def test_the_status_holds_no_personal_data_addresses_or_errors(api):
    beacon = BeaconFactory(name="priv1", order__beacon_name="priv1")
    Job.objects.create(
        beacon=beacon,
        kind="provision",
        step="compensate",
        state=JobState.FAILED,
        last_error="hetzner said: token abc123 invalid at 10.0.0.7",
        checkpoint={"failure": {"step": "dns", "message": "secret detail"}},
    )

    response = api.get(status_url(beacon.order))

    text = response.content.decode()
    for secret in (
        beacon.order.email,
        beacon.ipv4,
        beacon.ipv6,
        "abc123",
        "secret detail",
        str(beacon.pk),
        "Ada",
    ):
        assert secret not in text
    assert response.json()["job"] == {"step": "compensate", "state": "failed", "percent": 44}


def test_order_a_never_shows_order_b(api):
    a = BeaconFactory(name="alpha1", order__beacon_name="alpha1", status=BeaconStatus.ACTIVE)
    b = BeaconFactory(name="bravo1", order__beacon_name="bravo1", status=BeaconStatus.ACTIVE)

    body_a = api.get(status_url(a.order)).json()
    body_b = api.get(status_url(b.order)).json()

    assert body_a["order_id"] == str(a.order.pk)
    assert body_a["beacon"]["name"] == "alpha1"
    assert "bravo1" not in json.dumps(body_a)
    assert "alpha1" not in json.dumps(body_b)


def test_an_unknown_order_is_404_with_the_error_body(api):
    response = api.get(f"/api/v1/orders/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "fields": {}}
    }


def test_an_order_id_that_is_not_a_uuid_is_404_with_the_error_body(api):
    response = api.get("/api/v1/orders/1")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_order_status_query_count_is_pinned(api, django_assert_max_num_queries):
    beacon = BeaconFactory(name="count1", order__beacon_name="count1")
    Job.objects.create(beacon=beacon, kind="provision", step="dns", state=JobState.PENDING)

    with CaptureQueriesContext(connection) as queries:
        api.get(status_url(beacon.order))
    with django_assert_max_num_queries(2):
        api.get(status_url(beacon.order))
    assert len(queries) == 2  # the order with its Beacon, then the Beacon's latest job


# --- Server-Sent Events --------------------------------------------------------------------


def events_of(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    # A final order is answered whole (no stream is held open for it).
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode()
    return [
        json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")
    ]


def test_events_of_a_finished_order_send_its_status_once_and_end(
    api, django_capture_on_commit_callbacks
):
    order = OrderFactory(beacon_name="sse1")
    with django_capture_on_commit_callbacks(execute=True):
        beacon_create_for_order(order=order)

    events = events_of(api.get(f"{status_url(order)}/events", HTTP_ACCEPT="text/event-stream"))

    assert events == [api.get(status_url(order)).json()]
    assert events[0]["job"]["state"] == "completed"


def test_events_of_a_waiting_order_end_at_the_deadline(api, settings):
    settings.ORDER_EVENTS_DEADLINE_SECONDS = 1.5
    order = OrderFactory(status=OrderStatus.PENDING, beacon_name="sse2")

    events = events_of(api.get(f"{status_url(order)}/events"))

    assert [event["status"] for event in events] == ["pending"]


def test_events_of_an_unknown_order_are_a_json_404(api):
    response = api.get(f"/api/v1/orders/{uuid.uuid4()}/events", HTTP_ACCEPT="text/event-stream")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_events_follow_the_order_as_it_changes(settings):
    """A second connection changes the order while the stream polls (a real transaction each)."""
    import threading
    import time

    from django.test import Client

    from billing.models import Order

    settings.ORDER_EVENTS_DEADLINE_SECONDS = 6
    order = OrderFactory(status=OrderStatus.PENDING, beacon_name="sse3")

    def expire_soon():
        time.sleep(1.5)
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.EXPIRED)
        connection.close()

    changer = threading.Thread(target=expire_soon)
    changer.start()
    started = time.monotonic()
    events = events_of(Client().get(f"{status_url(order)}/events"))
    changer.join()

    assert [event["status"] for event in events] == ["pending", "expired"]
    assert time.monotonic() - started < 5  # ended with the order, not at the deadline
