"""A webhook dropped on purpose is recovered by reconcile from Stripe's events list, through the
same processing as a delivery; the list requests conform to Stripe's spec (the Prism mock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from djstripe.models import Event

from billing import stripe_sync
from billing.models import Order, OrderStatus, StripeEventCursor
from billing.simulation import checkout_completed_event, encode, sign
from billing.stripe_sync import EVENT_TYPES, events_recover
from operations.reconcile import reconcile_run
from provisioning.models import Beacon, Job
from tests.factories import OrderFactory
from tests.stripetruth.stripe_wire import event_list, stripe_fixture

pytestmark = pytest.mark.django_db
EVENTS = "GET /v1/events"
SUBSCRIPTIONS = "GET /v1/subscriptions"


@pytest.fixture
def dropped(wire) -> dict[str, Any]:
    """A storefront order whose `checkout.session.completed` Stripe sent and we never got."""
    order = OrderFactory(
        status=OrderStatus.PENDING, beacon_name="dropped1", stripe_customer_id="cus_dropped"
    )
    event = checkout_completed_event(
        order_id=str(order.pk),
        session_id=order.stripe_checkout_session_id,
        beacon_name=order.beacon_name,
        email=order.email,
    )
    event["data"]["object"]["customer"] = "cus_dropped"
    return event


def session_answer(event: dict[str, Any]) -> dict[str, Any]:
    """Stripe's answer when dj-stripe fetches the event's session to sync it: Stripe's own
    example session carrying ours. The mock serves 16 paths, so the linked objects dj-stripe
    would fetch next (payment intent, subscription, customer) are left out of it."""
    session = event["data"]["object"]
    return stripe_fixture(
        "checkout.session",
        **{key: session[key] for key in ("id", "mode", "status", "payment_status", "metadata")},
        client_reference_id=session["client_reference_id"],
        payment_intent=None,
    )


def no_subscriptions(wire) -> None:
    """Stripe lists no active and no trialing subscription."""
    for _ in ("active", "trialing"):
        wire.answer(
            SUBSCRIPTIONS,
            {"object": "list", "data": [], "has_more": False, "url": "/v1/subscriptions"},
        )


def answer_recovery(wire, *events: dict[str, Any]) -> None:
    """Stripe lists `events` (newest first) and answers dj-stripe's fetch of each session."""
    wire.answer(EVENTS, event_list(*events))
    for event in reversed(events):
        session_id = event["data"]["object"]["id"]
        wire.answer(f"GET /v1/checkout/sessions/{session_id}", session_answer(event))
    no_subscriptions(wire)


def run_reconcile(capture, fix: bool = False):
    """One reconcile run, with the work it enqueues after commit (tasks run inline)."""
    with capture(execute=True):
        return reconcile_run(fix=fix)


def missed(run) -> list[tuple[str, str]]:
    return [(f["id"], f["status"]) for f in run.findings if f["kind"] == "missed_event"]


def test_a_dropped_checkout_is_recovered_by_reconcile_once(
    wire, dropped, django_capture_on_commit_callbacks
):
    answer_recovery(wire, dropped)

    run = run_reconcile(django_capture_on_commit_callbacks)

    assert wire.problems() == []
    order = Order.objects.get(stripe_checkout_session_id=dropped["data"]["object"]["id"])
    assert order.status == OrderStatus.PAID
    assert Beacon.objects.filter(order=order).count() == 1
    assert Job.objects.filter(beacon__order=order, kind="provision").count() == 1
    assert missed(run) == [(dropped["id"], "fixed")]
    assert not run.needs_human
    assert StripeEventCursor.objects.get(mode="test").last_event_id == dropped["id"]
    # The same event delivered late by the webhook is acknowledged and changes nothing.
    calls = len(wire.calls)
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client_for_webhook(), dropped)
    assert response.status_code == 200
    assert Beacon.objects.filter(order=order).count() == 1
    assert Job.objects.filter(beacon__order=order, kind="provision").count() == 1
    assert Event.objects.filter(id=dropped["id"]).count() == 1
    assert len(wire.calls) == calls  # nothing fetched from Stripe again


def client_for_webhook():
    from django.test import Client

    return Client()


def deliver(client, event: dict[str, Any]):
    payload = encode(event)
    return client.post(
        "/api/webhook/stripe",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_test_secret"),
    )


def test_a_second_reconcile_recovers_nothing_and_asks_from_the_cursor(
    wire, dropped, django_capture_on_commit_callbacks
):
    answer_recovery(wire, dropped)
    run_reconcile(django_capture_on_commit_callbacks)
    wire.answer(EVENTS, event_list())
    no_subscriptions(wire)

    again = run_reconcile(django_capture_on_commit_callbacks)

    assert missed(again) == []
    first, second = wire.to("GET", "/v1/events")
    assert second.param("ending_before") == dropped["id"]
    assert second.param("created[gte]") is None
    assert first.param("ending_before") is None
    assert Beacon.objects.filter(name="dropped1").count() == 1


def test_the_events_list_request_conforms_to_stripes_spec(wire):
    """Prism's own answer: the request (types, created, limit) is what Stripe's spec allows.
    Its example event (a payment_intent.created, a type we do not handle) is passed over."""
    before = timezone.now()

    recovery = events_recover()

    [call] = wire.to("GET", "/v1/events")
    assert (call.status, call.problems) == (200, [])
    assert call.mode == "test"
    assert sorted(call.params("types[")) == EVENT_TYPES
    since = int(call.param("created[gte]"))
    thirty_days = int((before - timedelta(days=30)).timestamp())
    assert thirty_days <= since <= thirty_days + 3600 + 60
    assert call.param("limit") == "100"
    assert recovery.recovered == [] and recovery.listed == 1 and not recovery.error


def test_the_first_run_reads_all_30_days_even_past_the_newest_stored_event(wire):
    """Not from the newest event dj-stripe stored: one dropped before it would be missed."""
    before = timezone.now()
    Event.objects.create(
        id="evt_stored",
        livemode=False,
        type="invoice.paid",
        data={"object": {"id": "in_1"}},
        created=timezone.now() - timedelta(days=2),
        stripe_data={},
    )
    wire.answer(EVENTS, event_list())

    events_recover()

    [call] = wire.to("GET", "/v1/events")
    thirty_days = int((before - timedelta(days=30)).timestamp())
    assert thirty_days <= int(call.param("created[gte]")) <= thirty_days + 60


def events_since(*events: dict[str, Any]):
    """A responder for `GET /v1/events` that lists, as Stripe does, only the events created at
    or after `created[gte]`, newest first."""

    def respond(call) -> tuple[int, dict[str, Any]]:
        since = int(call.param("created[gte]") or 0)
        listed = [event for event in events if event["created"] >= since]
        return 200, event_list(*sorted(listed, key=lambda event: -event["created"]))

    return respond


def test_a_first_run_recovers_an_event_dropped_before_a_later_delivered_one(
    wire, dropped, django_capture_on_commit_callbacks
):
    """E1 dropped, E2 (a day later) delivered by the webhook: the first reconcile still lists
    E1 and processes it; the cursor ends at E2."""
    now = int(timezone.now().timestamp())
    dropped["created"] = now - 2 * 86400
    delivered = checkout_completed_event(beacon_name="delivered1", session_id="cs_test_deliv")
    delivered["created"] = now - 86400
    wire.answer("GET /v1/checkout/sessions/cs_test_deliv", session_answer(delivered))
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client_for_webhook(), delivered).status_code == 200
    assert Event.objects.filter(id=delivered["id"]).exists()
    wire.responders[EVENTS] = events_since(dropped, delivered)
    session_id = dropped["data"]["object"]["id"]
    wire.answer(f"GET /v1/checkout/sessions/{session_id}", session_answer(dropped))
    no_subscriptions(wire)

    run = run_reconcile(django_capture_on_commit_callbacks)

    assert missed(run) == [(dropped["id"], "fixed")]
    assert wire.problems() == []
    order = Order.objects.get(stripe_checkout_session_id=session_id)
    assert order.status == OrderStatus.PAID
    assert Beacon.objects.filter(name__in=["dropped1", "delivered1"]).count() == 2
    assert StripeEventCursor.objects.get(mode="test").last_event_id == delivered["id"]


def test_an_event_that_fails_holds_the_cursor_before_it_and_is_retried(
    wire, dropped, django_capture_on_commit_callbacks
):
    """The failed one is tried again next run; the ones after it are not held up."""
    later = checkout_completed_event(beacon_name="dropped2", session_id="cs_test_later")
    later["created"] = dropped["created"] + 5
    latest = checkout_completed_event(beacon_name="dropped3", session_id="cs_test_latest")
    latest["created"] = dropped["created"] + 9
    wire.answer(EVENTS, event_list(latest, later, dropped))
    for event in (dropped, latest):
        session_id = event["data"]["object"]["id"]
        wire.answer(f"GET /v1/checkout/sessions/{session_id}", session_answer(event))
    refusal = {"error": {"type": "api_error", "message": "Stripe had a problem"}}
    wire.answer("GET /v1/checkout/sessions/cs_test_later", refusal, status=400)
    no_subscriptions(wire)

    run = run_reconcile(django_capture_on_commit_callbacks)

    assert missed(run) == [(dropped["id"], "fixed"), (latest["id"], "fixed")]
    [error] = [f for f in run.findings if f["kind"] == "error"]
    assert later["id"] in error["detail"] and run.needs_human
    assert StripeEventCursor.objects.get(mode="test").last_event_id == dropped["id"]
    assert not Event.objects.filter(id=later["id"]).exists()
    assert not Order.objects.filter(beacon_name="dropped2").exists()  # rolled back whole
    wire.answer(EVENTS, event_list(latest, later))
    wire.answer("GET /v1/checkout/sessions/cs_test_later", session_answer(later))
    no_subscriptions(wire)

    again = run_reconcile(django_capture_on_commit_callbacks)

    assert missed(again) == [(later["id"], "fixed")]
    assert wire.to("GET", "/v1/events")[-1].param("ending_before") == dropped["id"]
    assert StripeEventCursor.objects.get(mode="test").last_event_id == latest["id"]
    assert Beacon.objects.filter(name__in=["dropped2", "dropped3"]).count() == 2


def test_a_run_stops_at_its_page_bound_and_the_next_goes_on(wire, dropped, monkeypatch):
    monkeypatch.setattr(stripe_sync, "MAX_EVENT_PAGES", 1)
    StripeEventCursor.objects.create(
        mode="test",
        last_event_id="evt_seen",
        last_event_created=timezone.now() - timedelta(hours=1),
    )
    wire.answer(EVENTS, event_list(dropped, has_more=True))
    wire.answer(
        f"GET /v1/checkout/sessions/{dropped['data']['object']['id']}", session_answer(dropped)
    )

    recovery = events_recover()

    assert recovery.more and [e.id for e in recovery.recovered] == [dropped["id"]]
    assert wire.to("GET", "/v1/events")[0].param("ending_before") == "evt_seen"
    assert StripeEventCursor.objects.get(mode="test").last_event_id == dropped["id"]
    wire.answer(EVENTS, event_list())
    events_recover()
    assert wire.to("GET", "/v1/events")[-1].param("ending_before") == dropped["id"]


def test_test_and_live_keep_their_own_key_cursor_and_events(wire, settings):
    test_event = checkout_completed_event(beacon_name="modet1")
    wire.answer(EVENTS, event_list())
    events_recover()
    settings.STRIPE_LIVE_MODE = True
    stray_test_event = {**test_event, "id": "evt_test_in_live_list"}
    wire.answer(EVENTS, event_list(stray_test_event))

    recovery = events_recover()

    test_call, live_call = wire.to("GET", "/v1/events")
    assert (test_call.mode, live_call.mode) == ("test", "live")
    assert recovery.mode == "live" and recovery.recovered == []
    assert not Event.objects.filter(id=stray_test_event["id"]).exists()
    cursors = dict(StripeEventCursor.objects.values_list("mode", "last_event_id"))
    assert cursors == {"test": "", "live": stray_test_event["id"]}


def test_without_a_key_for_the_mode_stripe_is_not_asked(wire, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""

    run = reconcile_run()

    assert wire.calls == []
    assert "no secret key" in run.notes


def test_a_first_run_stopped_at_its_bound_says_which_events_it_did_not_check(wire, monkeypatch):
    monkeypatch.setattr(stripe_sync, "MAX_EVENT_PAGES", 1)
    event = {**checkout_completed_event(beacon_name="bound1"), "livemode": True}
    wire.answer(EVENTS, event_list(event, has_more=True))
    no_subscriptions(wire)

    run = reconcile_run()

    [call] = wire.to("GET", "/v1/events")
    assert call.param("created[gte]") is not None and call.param("starting_after") is None
    assert "were not checked" in run.notes
    assert StripeEventCursor.objects.get(mode="test").last_event_id == event["id"]
