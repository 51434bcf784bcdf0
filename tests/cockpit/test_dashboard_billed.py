"""The review's fixes: MRR at what subscriptions bill now, cost and revenue never mixed across
currencies, and one meaning of a "due" job shared by the engine, the dashboard and /metrics."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from backups.models import BackupSnapshot
from billing.models import Bundle, Price, Tier
from provisioning.jobs import jobs_due
from provisioning.models import Job, Provider
from tests.factories import BeaconFactory, OrderFactory
from wopr import dashboard
from wopr.metrics import job_metrics

pytestmark = pytest.mark.django_db

NOW = timezone.make_aware(datetime(2026, 6, 15, 12, 0))


def _price(tier: str, period: str, cents: int, currency: str = "usd") -> None:
    Price.objects.update_or_create(
        bundle=Bundle.objects.get(slug="starter"),
        tier=Tier.objects.get(slug=tier),
        period=period,
        mode="test",
        defaults={"amount_cents": cents, "currency": currency},
    )


def _paying(**fields):
    return OrderFactory(
        stripe_subscription_id=f"sub_{OrderFactory._meta.model.objects.count()}",
        subscription_status=fields.pop("subscription_status", "active"),
        paid_at=NOW - timedelta(days=3),
        **fields,
    )


# --- MRR: what the subscription bills now ---------------------------------------------------


def test_mrr_is_the_catalogue_price_not_the_checkout_amount():
    _price("t1", "monthly", 1000)
    _price("t1", "yearly", 9600)
    _price("t2", "monthly", 2500)
    _paying(amount_cents=1190, currency="usd")  # paid with tax: bills 1000 a month
    _paying(amount_cents=0, currency="usd")  # a trial's checkout: still bills 1000
    _paying(amount_cents=8000, currency="usd", period="yearly")  # a coupon: 9600 / 12
    _paying(amount_cents=1000, currency="usd", tier=Tier.objects.get(slug="t2"))  # moved up
    _paying(amount_cents=1000, subscription_status="canceled")

    panel = dashboard.money(NOW)

    assert panel.mrr_cents == {"usd": 1000 + 1000 + 800 + 2500}
    assert panel.paying == 4


def test_mrr_falls_back_to_the_checkout_amount_and_its_currency_when_the_price_is_off_sale():
    _price("t1", "monthly", 0)  # off sale: a recorded 0 never wins over a paid amount
    _paying(amount_cents=700, currency="eur")
    _paying(amount_cents=0, currency="eur")  # nothing known: counts 0, no error

    assert dashboard.money(NOW).mrr_cents == {"eur": 700}


def test_daily_sales_keep_what_the_checkout_paid():
    _price("t1", "monthly", 1000)
    _paying(amount_cents=1190, currency="usd")
    _paying(amount_cents=0, currency="usd")

    today = dashboard.daily_sales(NOW)[-4]

    assert (today.orders, today.amounts) == (2, {"usd": 1190})


# --- cost against revenue: per currency, paying Beacons only --------------------------------


def _provider(kind: str) -> Provider:
    return Provider.objects.get_or_create(name=kind, kind=kind)[0]


def _beacon(name: str, kind: str, cost: str, status: str = "active", **order):
    order.setdefault("order__subscription_status", "active")
    return BeaconFactory(
        name=name,
        status=status,
        provider=_provider(kind),
        server_monthly_cost=Decimal(cost),
        **order,
    )


def _snapshot(beacon, cost: str) -> None:
    BackupSnapshot.objects.create(
        beacon=beacon,
        provider=beacon.provider,
        kind="daily",
        name=f"snap-{beacon.name}",
        status="available",
        monthly_cost=Decimal(cost),
        expires_at=NOW + timedelta(days=7),
    )


def test_hetzner_and_digitalocean_costs_are_totalled_apart_and_never_subtracted_across():
    _price("t1", "monthly", 1000, "usd")
    hetzner = _beacon("hetz", "hetzner", "4.5100")
    _beacon("ocean", "digitalocean", "6.0000")
    _snapshot(hetzner, "0.4900")

    panel = dashboard.cost_against_revenue()

    assert panel.server_cost == {"eur": Decimal("4.51"), "usd": Decimal("6.00")}
    assert panel.snapshot_cost == {"eur": Decimal("0.49")}
    assert panel.revenue_cents == {"usd": 2000}
    lines = {line.currency: line for line in panel.lines}
    assert lines["eur"].total_cost == Decimal("5.00")
    assert lines["eur"].margin_cents is None  # EUR cost, no EUR revenue: nothing subtracted
    assert lines["usd"].margin_cents == 2000 - 600
    rows = {row.name: row for row in panel.thinnest}
    assert rows["hetz"].margin_cents is None
    assert rows["hetz"].cost_display == "€5.00"
    assert rows["ocean"].margin_cents == 1000 - 600
    assert [row.name for row in panel.thinnest] == ["ocean", "hetz"]  # unranked ones last


def test_an_unpaid_suspended_beacon_costs_but_adds_no_revenue():
    _price("t1", "monthly", 1000, "usd")
    _beacon("paying", "fake", "5.00")
    _beacon("unpaid", "fake", "5.00", status="suspended", order__subscription_status="unpaid")

    panel = dashboard.cost_against_revenue()

    assert (panel.live_beacons, panel.paying_beacons) == (2, 1)
    assert panel.server_cost == {"usd": Decimal("10.00")}
    assert panel.revenue_cents == {"usd": 1000}
    rows = {row.name: row for row in panel.thinnest}
    assert (rows["unpaid"].revenue_cents, rows["unpaid"].margin_cents) == (0, -500)
    assert panel.thinnest[0].name == "unpaid"


def test_the_dashboard_page_shows_one_line_per_currency(admin_client, settings):
    settings.ADMIN_REQUIRE_OTP = False
    _price("t1", "monthly", 1000, "usd")
    _beacon("hetz", "hetzner", "4.51")
    _beacon("ocean", "digitalocean", "6.00")

    page = admin_client.get("/admin/").content.decode()

    table = page[page.index('id="cockpit-cost"') : page.index('id="cockpit-margins"')]
    assert "€4.51" in table and "$6.00" in table and "$20.00" in table
    assert "$14.00" in table  # the USD margin; no EUR margin and no mixed total
    assert "10.51" not in table


# --- one meaning of "due" -------------------------------------------------------------------


def _waiting_job(name: str, **fields) -> Job:
    job = Job.objects.create(beacon=BeaconFactory(name=name), kind="provision", state="waiting")
    Job.objects.filter(pk=job.pk).update(**fields)
    return job


def _oldest_due_age(now: datetime) -> float:
    [family] = [m for m in job_metrics(now) if m.name == "wopr_job_oldest_due_age_seconds"]
    return family.samples[0].value


def test_a_leased_running_job_is_neither_stuck_nor_due_however_old_its_next_attempt():
    running = _waiting_job(
        "busy",
        state="running",
        next_attempt_at=NOW - timedelta(hours=1),
        lease_expires_at=NOW + timedelta(minutes=2),
    )

    assert dashboard.jobs_needing_human(NOW).stuck_count == 0
    assert _oldest_due_age(NOW) == 0
    assert running.pk not in jobs_due(NOW)


def test_an_unleased_job_due_past_the_limit_is_stuck_and_due_everywhere_alike():
    job = _waiting_job("idle", next_attempt_at=NOW - timedelta(minutes=10))
    _waiting_job("fresh", next_attempt_at=NOW - timedelta(minutes=1))  # due, not yet stuck

    panel = dashboard.jobs_needing_human(NOW)

    assert [(row.beacon_name, row.why) for row in panel.stuck] == [
        ("idle", "due but no worker took it")
    ]
    assert _oldest_due_age(NOW) == 600
    assert set(jobs_due(NOW)) == {job.pk, Job.objects.get(beacon__name="fresh").pk}


def test_a_job_the_loop_keeps_reserving_but_no_worker_runs_is_stuck_and_due():
    """The due-job loop reserves a due job with a short lease each time it hands it out; a
    broker or cluster that never runs the message leaves the job pending with a live lease."""
    job = _waiting_job(
        "unserved",
        state="pending",
        next_attempt_at=NOW - timedelta(minutes=10),
        lease_expires_at=NOW + timedelta(seconds=20),  # the loop's reservation, just renewed
    )

    panel = dashboard.jobs_needing_human(NOW)

    assert [(row.beacon_name, row.why) for row in panel.stuck] == [
        ("unserved", "due but no worker took it")
    ]
    assert _oldest_due_age(NOW) == 600
    assert job.pk not in jobs_due(NOW)  # the engine does not hand it out twice at once


def test_a_running_job_whose_lease_ran_out_long_ago_is_stuck_as_a_lost_worker():
    _waiting_job(
        "lost",
        state="running",
        next_attempt_at=NOW - timedelta(minutes=30),
        lease_expires_at=NOW - timedelta(minutes=10),
    )
    _waiting_job(
        "just-expired",
        state="running",
        next_attempt_at=NOW - timedelta(minutes=30),
        lease_expires_at=NOW - timedelta(minutes=1),
    )

    panel = dashboard.jobs_needing_human(NOW)

    assert [(row.beacon_name, row.why) for row in panel.stuck] == [
        ("lost", "its worker's lease expired")
    ]


def test_metrics_exposition_parses_with_the_shared_due_filter():
    from wopr.metrics import metrics_exposition

    _waiting_job("idle", next_attempt_at=timezone.now() - timedelta(minutes=3))

    names = {f.name for f in text_string_to_metric_families(metrics_exposition().decode())}

    assert "wopr_job_oldest_due_age_seconds" in names
