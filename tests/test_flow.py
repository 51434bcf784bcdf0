"""The purchase-to-Beacon flow through the real webhook view, on the fake cloud."""

from __future__ import annotations

import io
import json
import time
import uuid

import pytest
from django.core import mail
from django.urls import reverse
from pypdf import PdfReader

from billing.models import Bundle, Order, OrderStatus, Tier
from billing.simulation import checkout_completed_event, encode, sign
from dns.models import DnsRecord, FakeDnsRecord
from documents.models import Document
from documents.services import document_path
from provisioning.faults import fault_inject
from provisioning.models import Beacon, FakeServer, Job, JobEvent
from provisioning.vendors import get_provider
from tests.djstripe_route import djstripe_route  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_secret"
URL = "/api/webhook/stripe"


def post_event(client, event, *, secret=SECRET, timestamp=None):
    payload = encode(event)
    return client.post(
        URL,
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, secret, timestamp),
    )


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST an event and run the work it enqueues after commit (tasks run inline)."""

    def _deliver(event, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            response = post_event(client, event, **kwargs)
        return response

    return _deliver


def test_webhook_url_is_the_one_in_the_deployment_readme():
    assert reverse("stripe-webhook") == URL


def test_signed_checkout_becomes_an_active_beacon(deliver):
    event = checkout_completed_event(beacon_name="ada1", bundle="starter", tier="t1")

    response = deliver(event)

    assert response.status_code == 200
    beacon = Beacon.objects.get(name="ada1")
    assert beacon.status == "active"
    assert beacon.fqdn == "ada1.beacons.test"
    job = beacon.jobs.get()
    assert (job.kind, job.state) == ("provision", "completed")
    servers = list(FakeServer.objects.filter(deleted=False))
    assert len(servers) == 1
    assert servers[0].labels == {
        "wopr-beacon": str(beacon.pk),
        "wopr-job": str(job.pk),
        "managed-by": "wopr",
    }
    assert servers[0].name == "wopr-ada1"
    records = {(r.record_type, r.name): r.content for r in FakeDnsRecord.objects.all()}
    assert records == {
        ("A", "ada1.beacons.test"): beacon.ipv4,
        ("AAAA", "ada1.beacons.test"): beacon.ipv6,
        ("A", "*.ada1.beacons.test"): beacon.ipv4,
        ("AAAA", "*.ada1.beacons.test"): beacon.ipv6,
    }
    assert DnsRecord.objects.filter(beacon=beacon, status="active").count() == 4
    assert Order.objects.get().status == OrderStatus.PAID


def test_welcome_card_and_email_name_the_fqdn_and_every_app(deliver):
    deliver(checkout_completed_event(beacon_name="ada2", bundle="starter"))

    beacon = Beacon.objects.get(name="ada2")
    card = Document.objects.get(beacon=beacon, kind="welcome_card")
    text = " ".join(page.extract_text() for page in PdfReader(document_path(card)).pages)
    assert "ada2.beacons.test" in text
    for module in Bundle.objects.get(slug="starter").modules:
        assert module in text.lower()
    assert len(mail.outbox) == 1
    welcome = mail.outbox[0]
    assert welcome.to == ["buyer@example.com"]
    ((_name, content, mimetype),) = welcome.attachments
    assert mimetype == "application/pdf"
    assert "ada2.beacons.test" in PdfReader(io.BytesIO(content)).pages[0].extract_text()


def test_custom_domain_order_gets_the_guide(deliver):
    deliver(checkout_completed_event(beacon_name="ada3", custom_domain="cloud.example.org"))

    beacon = Beacon.objects.get(name="ada3")
    guide = Document.objects.get(beacon=beacon, kind="custom_domain_guide")
    text = " ".join(page.extract_text() for page in PdfReader(document_path(guide)).pages)
    assert "cloud.example.org" in text
    assert beacon.ipv4 in text


def test_webhook_does_no_provider_work_in_the_request(client):
    """Without running the on-commit work, the request leaves a pending job and no server."""
    response = post_event(client, checkout_completed_event(beacon_name="lazy1"))

    assert response.status_code == 200
    job = Job.objects.get(beacon__name="lazy1")
    assert (job.state, job.step) == ("pending", "choose_provider")
    assert not FakeServer.objects.exists()


def test_redelivered_event_creates_no_second_beacon(deliver):
    event = checkout_completed_event(beacon_name="twice1")

    for _ in range(5):
        assert deliver(event).status_code == 200

    assert Beacon.objects.count() == 1
    assert Job.objects.count() == 1
    assert FakeServer.objects.count() == 1
    assert len(mail.outbox) == 1


def test_a_second_event_for_the_same_session_creates_no_second_beacon(deliver):
    first = checkout_completed_event(beacon_name="same1")
    second = dict(first, id="evt_other", type="checkout.session.async_payment_succeeded")

    deliver(first)
    deliver(second)

    assert Beacon.objects.count() == 1
    assert FakeServer.objects.count() == 1
    assert len(mail.outbox) == 1


def storefront_order(**overrides):
    values = {
        "bundle": Bundle.objects.get(slug="creator"),
        "tier": Tier.objects.get(slug="t2"),
        "beacon_name": "store1",
        "region": "us-east",
        "email": "shop@example.com",
    }
    return Order.objects.create(**{**values, **overrides})


def test_storefront_order_is_matched_by_its_id(deliver):
    order = storefront_order()
    event = checkout_completed_event(
        order_id=str(order.pk),
        beacon_name="store1",
        bundle="creator",
        tier="t2",
        region="us-east",
        email="shop@example.com",
    )

    deliver(event)

    order.refresh_from_db()
    assert order.status == "paid"
    assert order.stripe_checkout_session_id == event["data"]["object"]["id"]
    beacon = Beacon.objects.get(order=order)
    assert (beacon.name, beacon.bundle.slug, beacon.tier.slug) == ("store1", "creator", "t2")
    # creator needs size 2, tier t2 is 2: Hetzner's cpx32 naming on the fake.
    assert beacon.server_size == "cpx32"


def test_a_session_naming_someone_elses_order_provisions_nothing(deliver):
    """A Payment Link can carry any client_reference_id: a starter session must not buy the
    enterprise Beacon of another customer's pending order."""
    victim = storefront_order(
        bundle=Bundle.objects.get(slug="enterprise"),
        beacon_name="big1",
        stripe_checkout_session_id="cs_test_victims_own",
    )
    event = checkout_completed_event(
        order_id=str(victim.pk), beacon_name="big1", bundle="starter", email="attacker@example.com"
    )

    deliver(event)
    deliver(dict(event, id="evt_redelivered_by_stripe"))

    victim.refresh_from_db()
    assert victim.status == "pending"
    assert not Beacon.objects.exists()
    stray = Order.objects.get(stripe_checkout_session_id=event["data"]["object"]["id"])
    assert stray.needs_attention
    assert "belongs to another checkout" in stray.attention_reason


def test_a_session_whose_metadata_disagrees_with_the_named_order_is_not_trusted(deliver):
    order = storefront_order()
    deliver(
        checkout_completed_event(
            order_id=str(order.pk),
            beacon_name="store1",
            bundle="enterprise",
            tier="t2",
            region="us-east",
        )
    )

    order.refresh_from_db()
    assert order.status == "pending"
    assert not Beacon.objects.exists()


@pytest.mark.parametrize(
    ("mutate", "expected_status"),
    [
        (lambda payload, sig: (payload, sig.replace("v1=", "v1=0")), 400),
        (lambda payload, sig: (payload + b" ", sig), 400),
    ],
    ids=["wrong-signature", "tampered-body"],
)
def test_bad_signature_is_refused_and_creates_nothing(client, mutate, expected_status):
    payload = encode(checkout_completed_event(beacon_name="evil1"))
    payload, signature = mutate(payload, sign(payload, SECRET))

    response = client.post(
        URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )

    assert response.status_code == expected_status
    assert not Order.objects.exists()
    assert not Beacon.objects.exists()


def test_signature_with_another_secret_is_refused(client):
    response = post_event(client, checkout_completed_event(), secret="whsec_someone_else")

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_debug_secret_override_header_is_ignored(client, settings):
    settings.DEBUG = True
    payload = encode(checkout_completed_event(beacon_name="evil2"))

    response = client.post(
        URL,
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_attacker"),
        HTTP_X_DJSTRIPE_WEBHOOK_SECRET="whsec_attacker",
    )

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_stale_timestamp_is_refused(client):
    response = post_event(client, checkout_completed_event(), timestamp=int(time.time()) - 3600)

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_body_that_is_not_json_is_refused(client):
    payload = b"this is not json"

    response = client.post(
        URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload, SECRET)
    )

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_missing_signature_header_is_refused(client):
    response = client.post(URL, encode(checkout_completed_event()), content_type="application/json")

    assert response.status_code == 400


def test_unknown_bundle_provisions_nothing_and_needs_attention(deliver):
    response = deliver(checkout_completed_event(bundle="no-such-bundle", beacon_name="odd1"))

    assert response.status_code == 200
    order = Order.objects.get()
    assert order.status == "paid"
    assert order.needs_attention
    assert "unknown bundle" in order.attention_reason
    assert not Beacon.objects.exists()
    assert not FakeServer.objects.exists()


def test_taken_beacon_name_needs_attention(deliver):
    deliver(checkout_completed_event(beacon_name="dup1", email="first@example.com"))

    deliver(checkout_completed_event(beacon_name="dup1", email="second@example.com"))

    assert Beacon.objects.count() == 1
    second = Order.objects.get(email="second@example.com")
    assert second.needs_attention
    assert "taken" in second.attention_reason


def test_unpaid_session_waits_for_async_payment(deliver):
    event = checkout_completed_event(beacon_name="slow1", payment_status="unpaid")

    deliver(event)
    assert not Beacon.objects.exists()

    succeeded = dict(event, id="evt_async_ok", type="checkout.session.async_payment_succeeded")
    succeeded["data"] = {"object": dict(event["data"]["object"], payment_status="paid")}
    deliver(succeeded)
    assert Beacon.objects.get().status == "active"


def test_transient_create_failure_is_retried_and_ends_active(
    deliver, django_capture_on_commit_callbacks
):
    from provisioning.jobs import job_advance

    fault_inject("provider.create", "transient", times=2)

    deliver(checkout_completed_event(beacon_name="retry1"))

    job = Job.objects.get()
    assert (job.step, job.state, job.attempts) == ("create_server", "pending", 1)
    for _ in range(2):
        Job.objects.filter(pk=job.pk).update(next_attempt_at=job.created_at)  # time has come
        with django_capture_on_commit_callbacks(execute=True):
            job_advance(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == "completed"
    assert Beacon.objects.get().status == "active"
    assert FakeServer.objects.filter(deleted=False).count() == 1
    warnings = JobEvent.objects.filter(job=job, level="warning").count()
    assert warnings == 2


def test_permanent_failure_compensates_and_tells_operators(deliver):
    fault_inject("dns.upsert", "permanent", message="zone refused the record")

    deliver(checkout_completed_event(beacon_name="fail1", email="sad@example.com"))

    beacon = Beacon.objects.get()
    job = beacon.jobs.get()
    assert beacon.status == "failed"
    assert job.state == "failed"
    assert "zone refused the record" in job.last_error
    assert not FakeServer.objects.filter(deleted=False).exists()
    assert not FakeDnsRecord.objects.exists()
    recipients = sorted(message.to[0] for message in mail.outbox)
    assert recipients == ["ops@localhost", "sad@example.com"]
    customer_mail = next(m for m in mail.outbox if m.to == ["sad@example.com"])
    assert "zone refused" not in customer_mail.body  # no internal errors for the customer
    assert Order.objects.get().needs_attention


def test_lost_create_response_is_adopted_by_label(deliver, django_capture_on_commit_callbacks):
    """The provider made the server but the answer never came back (a crash before the
    checkpoint): the retry finds the server by its job label and makes no second one."""
    from provisioning.jobs import job_advance

    fault_inject("provider.create", "lost_response")

    deliver(checkout_completed_event(beacon_name="lost1"))
    job = Job.objects.get()
    assert job.step == "create_server"
    assert FakeServer.objects.count() == 1

    Job.objects.filter(pk=job.pk).update(next_attempt_at=job.created_at)
    with django_capture_on_commit_callbacks(execute=True):
        job_advance(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == "completed"
    assert FakeServer.objects.count() == 1
    assert Beacon.objects.get().provider_server_id == str(FakeServer.objects.get().pk)


def test_crash_after_create_before_checkpoint_adopts_server(
    deliver, django_capture_on_commit_callbacks
):
    """A worker dies right after the provider made the server: the job still says
    create_server, state running, with the dead worker's lease. Once the lease expires the
    sweep re-enqueues it, and the rerun adopts the server it finds by label."""
    from datetime import timedelta

    from django.utils import timezone

    from integrations.clouds.base import ServerSpec
    from provisioning.provision import server_labels
    from provisioning.tasks import jobs_sweep

    fault_inject("provider.create", "transient")  # park the job before it creates anything
    assert deliver(checkout_completed_event(beacon_name="crash1")).status_code == 200
    job = Job.objects.get()
    beacon = Beacon.objects.get(pk=job.beacon_id)
    get_provider("fake").create_server(
        ServerSpec(
            name="wopr-crash1",
            size="cpx22",
            image="debian-12",
            location=beacon.provider_location,
            labels=server_labels(job),
            user_data="#cloud-config\n",
        )
    )
    dead_lease = uuid.uuid4()
    Job.objects.filter(pk=job.pk).update(
        state="running",
        lease_token=dead_lease,
        lease_expires_at=timezone.now() + timedelta(seconds=60),
        next_attempt_at=job.created_at,
    )
    assert jobs_sweep() == 0  # the lease still holds: nobody else may touch the job

    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_sweep() == 1

    job.refresh_from_db()
    assert job.state == "completed"
    assert FakeServer.objects.count() == 1
    assert JobEvent.objects.filter(job=job, message__contains="adopted").exists()


def test_no_personal_data_in_server_labels_or_user_data(deliver):
    deliver(checkout_completed_event(beacon_name="priv1", email="private.person@example.com"))

    server = FakeServer.objects.get()
    assert "private" not in json.dumps(server.labels)
    job = Job.objects.get()
    assert job.callback_token_hash and len(job.callback_token_hash) == 64
    # the stored hash is not the token itself
    from provisioning.callbacks import job_callback_token

    assert job_callback_token(job) != job.callback_token_hash


def test_job_ids_are_unguessable_uuids(deliver):
    deliver(checkout_completed_event(beacon_name="uuid1"))
    assert isinstance(Order.objects.get().pk, uuid.UUID)
    assert isinstance(Beacon.objects.get().pk, uuid.UUID)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_same_event_delivered_five_times_concurrently_makes_one_beacon():
    """Five real concurrent requests (as Stripe retries can overlap): one Beacon, one server,
    one e-mail. The Event's primary key and the Beacon's one-to-one Order decide the race."""
    import threading

    from django.db import connection
    from django.test import Client

    payload = encode(checkout_completed_event(beacon_name="race1"))
    signature = sign(payload, SECRET)
    barrier = threading.Barrier(5)
    statuses = []

    def deliver_once():
        barrier.wait()
        try:
            response = Client().post(
                URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_once) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 5
    assert Beacon.objects.count() == 1
    assert Beacon.objects.get().status == "active"
    assert FakeServer.objects.count() == 1
    assert len(mail.outbox) == 1


def test_bad_signature_leaves_no_trigger_row_on_our_endpoint(client):
    from djstripe.models import WebhookEventTrigger

    post_event(client, checkout_completed_event(), secret="whsec_someone_else")

    assert not WebhookEventTrigger.objects.exists()


@pytest.mark.usefixtures("djstripe_route")
def test_debug_secret_override_is_ignored_on_djstripes_own_route_too(client, settings):
    from billing.webhooks import webhook_endpoint_for_mode

    settings.DEBUG = True
    endpoint = webhook_endpoint_for_mode(livemode=False)
    payload = encode(checkout_completed_event(beacon_name="evil3"))

    response = client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_attacker"),
        HTTP_X_DJSTRIPE_WEBHOOK_SECRET="whsec_attacker",
    )

    assert response.status_code == 400
    assert not Order.objects.exists()


@pytest.mark.usefixtures("djstripe_route")
def test_an_endpoint_set_to_no_validation_still_checks_signatures(client):
    from djstripe.models import WebhookEndpoint

    from billing.webhooks import webhook_endpoint_for_mode

    endpoint = webhook_endpoint_for_mode(livemode=False)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(djstripe_validation_method="none")
    payload = encode(checkout_completed_event(beacon_name="evil4"))

    response = client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_attacker"),
    )

    assert response.status_code == 400
    assert not Order.objects.exists()
