"""Issue 10, item 5: webhook intake near the floor. A first delivery of a checkout event is a
bounded number of SQL statements, a redelivery fewer, each enqueues at most one task, and the
look-up of events that beat their checkout goes through an index, not a scan of the history."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djstripe.models import Event, WebhookEndpoint

from billing.models import Customer, Order
from billing.simulation import checkout_completed_event, encode, sign
from billing.subscriptions import events_about
from provisioning.models import Beacon, Job

pytestmark = pytest.mark.django_db

URL = "/api/webhook/stripe"
SECRET = "whsec_test_secret"
# Counted by the tests' wrapping transaction: dj-stripe's own transaction shows as a SAVEPOINT
# and its RELEASE here (in production they are its BEGIN and COMMIT), so 13 reach the database.
FIRST_DELIVERY_STATEMENTS = 15
REDELIVERY_STATEMENTS = 6
INDEX = "wopr_event_object_id"


def post(client, payload: bytes):
    response = client.post(
        URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload, SECRET)
    )
    assert response.status_code == 200, response.content
    return response


@pytest.fixture
def warm(client, django_capture_on_commit_callbacks):
    """One earlier delivery: the process has read and synced its endpoint row."""
    with django_capture_on_commit_callbacks(execute=False):
        post(client, encode(checkout_completed_event(beacon_name="warm1")))


@pytest.mark.usefixtures("warm")
def test_a_first_delivery_is_at_most_15_statements_and_one_task(
    client, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    payload = encode(checkout_completed_event(beacon_name="count1"))

    with (
        django_assert_max_num_queries(FIRST_DELIVERY_STATEMENTS),
        django_capture_on_commit_callbacks(execute=False) as enqueued,
    ):
        post(client, payload)

    beacon = Beacon.objects.get(name="count1")
    assert Job.objects.filter(beacon=beacon).count() == 1
    assert len(enqueued) == 1  # the provision job's first step; no converge task beside it


@pytest.mark.usefixtures("warm")
def test_a_redelivery_is_at_most_6_statements_and_enqueues_nothing(
    client, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    payload = encode(checkout_completed_event(beacon_name="count2"))
    with django_capture_on_commit_callbacks(execute=False):
        post(client, payload)

    with (
        django_assert_max_num_queries(REDELIVERY_STATEMENTS),
        django_capture_on_commit_callbacks(execute=False) as enqueued,
    ):
        post(client, payload)

    assert enqueued == []
    assert Beacon.objects.filter(name="count2").count() == 1
    assert Event.objects.count() == 2  # warm1's and count2's, each stored once


def test_the_event_object_index_exists():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "djstripe_event")

    assert INDEX in constraints
    assert constraints[INDEX]["index"]


def test_events_about_finds_only_the_events_of_that_object(client):
    first = checkout_completed_event(beacon_name="about1")
    other = checkout_completed_event(beacon_name="about2")
    post(client, encode(first))
    post(client, encode(other))
    session_id = first["data"]["object"]["id"]

    assert [event.id for event in events_about(session_id)] == [first["id"]]


@pytest.mark.postgres
def test_the_event_lookup_uses_the_index_not_a_scan():
    query = events_about("sub_123").filter(type="customer.subscription.deleted")
    with connection.cursor() as cursor:
        # An empty table makes any plan cheap; forbid the scan to see whether the index fits.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()

    assert INDEX in plan
    assert "Seq Scan" not in plan


@pytest.mark.usefixtures("warm")
def test_the_endpoint_row_is_read_once_per_delivery(client):
    payload = encode(checkout_completed_event(beacon_name="once1"))

    with CaptureQueriesContext(connection) as queries:
        post(client, payload)

    reads = [q["sql"] for q in queries if 'FROM "djstripe_webhookendpoint"' in q["sql"]]
    assert len(reads) == 1


@pytest.mark.usefixtures("warm")
def test_an_endpoint_row_deleted_behind_the_process_is_made_again(client):
    WebhookEndpoint.objects.all().delete()  # e.g. by staff in dj-stripe's admin

    post(client, encode(checkout_completed_event(beacon_name="again1")))

    assert WebhookEndpoint.objects.filter(id="we_wopr_test").exists()
    assert Beacon.objects.filter(name="again1").exists()


def test_two_sessions_of_one_stripe_customer_share_one_customer(client):
    first = checkout_completed_event(beacon_name="same-cus1")
    second = checkout_completed_event(beacon_name="same-cus2", email="other@example.com")
    second["data"]["object"]["customer"] = first["data"]["object"]["customer"]

    post(client, encode(first))
    post(client, encode(second))

    customer = Customer.objects.get()
    assert customer.stripe_test_customer_id == first["data"]["object"]["customer"]
    assert customer.email == "buyer@example.com"  # the first session's; never overwritten
    assert set(Order.objects.values_list("customer", flat=True)) == {customer.pk}
