"""The staff admin: every page opens, timelines show, actions call the job engine, changelists
stay at a fixed number of queries, and no secret reaches a page."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupSnapshot
from billing.models import (
    Bundle,
    Customer,
    Order,
    OrderRemedy,
    OrderStatus,
    PaymentFailure,
    StripeEventCursor,
    Tier,
)
from dns.models import DnsRecord, FakeDnsRecord
from documents.models import Document, DocumentKind, EmailMessage
from installers.models import InstallerRelease
from provisioning.models import (
    Beacon,
    BeaconStatus,
    FakeFault,
    FakeServer,
    FakeSnapshot,
    InstallStage,
    Job,
    JobEvent,
    JobState,
    Provider,
    ProviderHealthCheck,
    RateLimitBudget,
    ReconcileRun,
)

pytestmark = pytest.mark.django_db

OUR_APPS = {"billing", "provisioning", "dns", "documents", "installers", "backups"}
_numbers = itertools.count(1)


# --- small builders ---------------------------------------------------------------------------


def make_provider() -> Provider:
    provider, _ = Provider.objects.get_or_create(name="fake", defaults={"kind": "fake"})
    return provider


def make_order(**fields) -> Order:
    n = next(_numbers)
    customer = Customer.objects.create(email=f"buyer{n}@example.com", name="Ada")
    defaults = {
        "customer": customer,
        "bundle": Bundle.objects.get(slug="starter"),
        "tier": Tier.objects.get(slug="t1"),
        "beacon_name": f"adm{n}",
        "region": "eu-central",
        "email": customer.email,
        "status": OrderStatus.PAID,
        "stripe_checkout_session_id": f"cs_test_admin_{n}",
    }
    return Order.objects.create(**{**defaults, **fields})


def make_beacon(**fields) -> Beacon:
    order = make_order()
    defaults = {
        "owner": order.customer,
        "order": order,
        "name": order.beacon_name,
        "fqdn": f"{order.beacon_name}.beacons.test",
        "bundle": order.bundle,
        "tier": order.tier,
        "region": order.region,
        "provider": make_provider(),
        "status": BeaconStatus.PROVISIONING,
    }
    return Beacon.objects.create(**{**defaults, **fields})


def make_job(beacon: Beacon | None = None, **fields) -> Job:
    defaults = {"kind": "provision", "step": "choose_provider", "next_attempt_at": timezone.now()}
    return Job.objects.create(beacon=beacon or make_beacon(), **{**defaults, **fields})


def make_one_of_everything() -> None:
    """At least one row of every model registered by our apps, so every change page is seen."""
    beacon = make_beacon()
    job = make_job(beacon)
    JobEvent.objects.create(job=job, step=job.step, state=job.state, message="job created")
    PaymentFailure.objects.create(order=beacon.order, stripe_invoice_id="in_test_1")
    ProviderHealthCheck.objects.create(provider=beacon.provider, status="healthy", latency_ms=12)
    DnsRecord.objects.create(beacon=beacon, record_type="A", name=beacon.fqdn, content="192.0.2.1")
    FakeDnsRecord.objects.create(record_type="A", name=beacon.fqdn, content="192.0.2.1")
    Document.objects.create(
        beacon=beacon, kind=DocumentKind.WELCOME_CARD, path="x.pdf", sha256="0" * 64, size_bytes=1
    )
    EmailMessage.objects.create(idempotency_key="welcome:1", template="welcome", recipient="a@b.c")
    FakeServer.objects.create(
        name="wopr-adm", size="cx22", image="debian-12", location="fsn1", ipv4="192.0.2.1",
        ipv6="2001:db8::1", created_at=timezone.now(),
    )  # fmt: skip
    FakeFault.objects.create(point="provider.create", kind="transient")
    FakeSnapshot.objects.create(
        name="wopr-snap", server_id="1", ready_at=timezone.now(), created_at=timezone.now()
    )
    InstallStage.objects.create(
        job=job, stage="installing:nextcloud", module="nextcloud", index=1, total=2
    )
    BackupSnapshot.objects.create(
        beacon=beacon, provider=beacon.provider, kind="daily", name=f"wopr-{beacon.pk}-daily-x",
        expires_at=timezone.now(),
    )  # fmt: skip
    InstallerRelease.objects.create(
        version="1.0.0", sha256="a" * 64, url="https://releases.example/installer-1.0.0.tar.gz"
    )
    RateLimitBudget.objects.create(key="hetzner", remaining=3599, limit=3600)
    ReconcileRun.objects.create(
        findings=[{"kind": "orphan_server", "provider": "fake", "id": "1", "detail": "x"}]
    )
    OrderRemedy.objects.create(order=beacon.order, policy="staff", state="queued")
    StripeEventCursor.objects.create(mode="test", last_event_id="evt_1")


def run_action(
    client: Client, model: type, action: str, objects: list, *, confirm: bool = False
) -> str:
    """POST an admin action; `confirm` answers its confirmation page (post=yes) at once."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    data = {"action": action, "_selected_action": [str(obj.pk) for obj in objects]}
    if confirm:
        data["post"] = "yes"
    response = client.post(url, data, follow=True)
    assert response.status_code == 200
    return response.content.decode()


# --- every page opens -------------------------------------------------------------------------


def test_every_admin_page_opens_for_a_superuser(admin_client, rf, admin_user):
    make_one_of_everything()
    request = rf.get("/")
    request.user = admin_user
    unseen = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        prefix = f"admin:{opts.app_label}_{opts.model_name}"
        assert admin_client.get(reverse(f"{prefix}_changelist")).status_code == 200, model
        add = admin_client.get(reverse(f"{prefix}_add"))
        assert add.status_code == (200 if model_admin.has_add_permission(request) else 403), model
        obj = model._default_manager.first()
        if obj is None:
            unseen.append(opts.label)
            continue
        assert admin_client.get(reverse(f"{prefix}_change", args=[obj.pk])).status_code == 200
    assert not [label for label in unseen if label.split(".")[0] in OUR_APPS]


def test_every_model_of_ours_is_registered():
    from django.apps import apps

    for app in OUR_APPS:
        for model in apps.get_app_config(app).get_models():
            assert admin.site.is_registered(model), model


def test_needs_attention_filter_lists_only_flagged_orders(admin_client):
    flagged = make_order(needs_attention=True, attention_reason="unknown bundle")
    fine = make_order()

    response = admin_client.get(reverse("admin:billing_order_changelist") + "?attention=yes")

    content = response.content.decode()
    assert flagged.beacon_name in content
    assert fine.beacon_name not in content


# --- the Beacon page ----------------------------------------------------------------------------


def test_beacon_page_shows_the_job_timeline_escaped(admin_client):
    job = make_job()
    JobEvent.objects.create(
        job=job, step="choose_provider", state="pending", message="placed on <b>fake</b> in fsn1"
    )

    response = admin_client.get(reverse("admin:provisioning_beacon_change", args=[job.beacon.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "placed on &lt;b&gt;fake&lt;/b&gt; in fsn1" in content
    assert "<b>fake</b>" not in content


def test_beacon_page_lists_the_emails_sent_for_it(admin_client):
    beacon = make_beacon()
    EmailMessage.objects.create(
        idempotency_key=f"welcome:{beacon.pk}",
        template="welcome",
        recipient=beacon.owner.email,
        subject="Your Beacon is ready",
        beacon=beacon,
    )

    response = admin_client.get(reverse("admin:provisioning_beacon_change", args=[beacon.pk]))

    assert "Your Beacon is ready" in response.content.decode()


def test_beacon_page_has_no_save_button(admin_client):
    beacon = make_beacon()

    response = admin_client.get(reverse("admin:provisioning_beacon_change", args=[beacon.pk]))

    assert 'name="_save"' not in response.content.decode()


# --- actions ------------------------------------------------------------------------------------


def test_retry_job_moves_a_failed_job_back_to_pending(
    admin_client, django_capture_on_commit_callbacks
):
    job = make_job(state=JobState.FAILED, step="create_server", finished_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        content = run_action(admin_client, Job, "retry_job", [job])

    job.refresh_from_db()
    assert (job.state, job.step) == (JobState.PENDING, "choose_provider")
    assert len(callbacks) == 1  # the job was enqueued for a worker
    assert "Retried 1 job(s); skipped 0" in content


def test_retry_job_skips_a_completed_job(admin_client, django_capture_on_commit_callbacks):
    job = make_job(state=JobState.COMPLETED, step="mark_active", finished_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=False):
        content = run_action(admin_client, Job, "retry_job", [job])

    job.refresh_from_db()
    assert job.state == JobState.COMPLETED
    assert "Retried 0 job(s); skipped 1" in content


def test_cancel_job_compensates_and_records_who_cancelled(
    admin_client, django_capture_on_commit_callbacks
):
    job = make_job(step="create_server")

    with django_capture_on_commit_callbacks(execute=False):
        content = run_action(admin_client, Job, "cancel_job", [job], confirm=True)

    job.refresh_from_db()
    assert (job.state, job.step) == (JobState.PENDING, "compensate")
    assert job.events.filter(message="cancelled by admin").exists()
    assert "Cancelled 1 job(s); skipped 0" in content


def test_beacon_actions_act_on_each_beacons_latest_job(
    admin_client, django_capture_on_commit_callbacks
):
    job = make_job(state=JobState.FAILED, step="create_server", finished_at=timezone.now())
    idle = make_beacon()  # no job at all: skipped

    with django_capture_on_commit_callbacks(execute=False):
        content = run_action(admin_client, Beacon, "retry_job", [job.beacon, idle])

    job.refresh_from_db()
    assert job.state == JobState.PENDING
    assert "Retried 1 job(s); skipped 1" in content


def test_cancel_from_the_beacon_list(admin_client, django_capture_on_commit_callbacks):
    job = make_job(state=JobState.WAITING, step="wait_for_server")

    with django_capture_on_commit_callbacks(execute=False):
        run_action(admin_client, Beacon, "cancel_job", [job.beacon], confirm=True)

    job.refresh_from_db()
    assert job.step == "compensate"


# --- secrets and read-only rows -----------------------------------------------------------------


def test_job_page_never_shows_the_callback_token_salt_or_hash(admin_client):
    job = make_job(callback_token_salt="5a17" * 8, callback_token_hash="ab12" * 16)
    JobEvent.objects.create(job=job, step=job.step, state=job.state, message="created")

    response = admin_client.get(reverse("admin:provisioning_job_change", args=[job.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "ab12" * 16 not in content
    assert "5a17" * 8 not in content
    assert "callback_token" not in content


def test_a_job_cannot_be_changed_by_hand(admin_client):
    job = make_job()
    url = reverse("admin:provisioning_job_change", args=[job.pk])

    response = admin_client.post(url, {"state": "completed", "step": "mark_active"})

    job.refresh_from_db()
    assert response.status_code == 403
    assert (job.state, job.step) == (JobState.PENDING, "choose_provider")


def test_order_stripe_ids_are_read_only(admin_client):
    order = make_order()
    url = reverse("admin:billing_order_change", args=[order.pk])

    admin_client.post(
        url,
        {
            "needs_attention": "on",
            "attention_reason": "checking",
            "stripe_checkout_session_id": "cs_test_forged",
            "status": "cancelled",
            "payment_failures-TOTAL_FORMS": "0",
            "payment_failures-INITIAL_FORMS": "0",
        },
    )

    order.refresh_from_db()
    assert order.needs_attention is True
    assert order.stripe_checkout_session_id.startswith("cs_test_admin_")
    assert order.status == OrderStatus.PAID


# --- document download ------------------------------------------------------------------------


def test_staff_download_a_documents_pdf(admin_client, settings):
    beacon = make_beacon()
    target = settings.DOCUMENTS_ROOT / str(beacon.pk) / "welcome_card.pdf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"%PDF-1.7 test")
    document = Document.objects.create(
        beacon=beacon,
        kind=DocumentKind.WELCOME_CARD,
        path=f"{beacon.pk}/welcome_card.pdf",
        sha256="0" * 64,
        size_bytes=13,
    )
    url = reverse("admin:documents_document_download", args=[document.pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content) == b"%PDF-1.7 test"
    assert Client().get(url).status_code == 302  # anonymous: sent to the login page


def test_download_of_a_missing_or_escaping_file_is_404(admin_client):
    beacon = make_beacon()
    document = Document.objects.create(
        beacon=beacon, kind="welcome_card", path="../../etc/passwd", sha256="0", size_bytes=1
    )

    response = admin_client.get(reverse("admin:documents_document_download", args=[document.pk]))

    assert response.status_code == 404


# --- query counts -------------------------------------------------------------------------------

# Measured with 20 rows: session, user, one bounded count (wopr.lib.admin: no full-table count
# since issue 14), the page, two for the date hierarchy, plus each filter's choices (Beacon:
# providers, bundles, regions; Order: bundles; Job: steps). None grows with the number of rows.
BEACON_CHANGELIST_QUERIES = 9
ORDER_CHANGELIST_QUERIES = 7
JOB_CHANGELIST_QUERIES = 7


def twenty_beacons_with_jobs() -> None:
    now = timezone.now()
    for i in range(20):
        make_job(make_beacon(), next_attempt_at=now + timedelta(minutes=i))


@pytest.mark.parametrize(
    ("url_name", "limit"),
    [
        ("admin:provisioning_beacon_changelist", BEACON_CHANGELIST_QUERIES),
        ("admin:billing_order_changelist", ORDER_CHANGELIST_QUERIES),
        ("admin:provisioning_job_changelist", JOB_CHANGELIST_QUERIES),
    ],
)
def test_changelist_query_count_is_pinned(
    admin_client, django_assert_max_num_queries, url_name, limit
):
    twenty_beacons_with_jobs()
    url = reverse(url_name)
    admin_client.get(url)  # warm the session and content-type caches

    with django_assert_max_num_queries(limit):
        response = admin_client.get(url)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 20
