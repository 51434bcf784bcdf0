"""Each dashboard panel's numbers on a small made-up data set, as of a fixed `now`."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from backups.models import BackupSnapshot
from billing.models import OrderRemedy, Price
from provisioning.models import (
    InstallStage,
    Job,
    JobEvent,
    Provider,
    ProviderHealthCheck,
    ReconcileRun,
)
from tests.factories import BeaconFactory, OrderFactory
from wopr import dashboard

pytestmark = pytest.mark.django_db

NOW = timezone.make_aware(datetime(2026, 6, 15, 12, 0))


def _job(beacon, *, state, step="done", kind="provision", **fields):
    job = Job.objects.create(beacon=beacon, kind=kind, state=state, step=step)
    Job.objects.filter(pk=job.pk).update(created_at=NOW - timedelta(days=2), **fields)
    return job


def _event(job, at):
    event = JobEvent.objects.create(job=job, step=job.step, state=job.state, message="line")
    JobEvent.objects.filter(pk=event.pk).update(at=at)


def _stage(job, at):
    stage = InstallStage.objects.create(job=job, stage="booted")
    InstallStage.objects.filter(pk=stage.pk).update(at=at)


def _starter_price(period: str = "monthly") -> int:
    return Price.objects.get(
        bundle__slug="starter", tier__slug="t1", period=period, mode="test"
    ).amount_cents


def test_beacons_are_counted_by_status_with_links_to_the_filtered_changelist():
    for status in ["active", "active", "active", "failed", "suspended"]:
        BeaconFactory(status=status)

    rows = {row.status: row for row in dashboard.beacons_by_status()}

    assert {s: rows[s].count for s in ("active", "failed", "suspended", "pending")} == {
        "active": 3,
        "failed": 1,
        "suspended": 1,
        "pending": 0,
    }
    assert rows["failed"].url == "/admin/provisioning/beacon/?status__exact=failed"


def test_recent_failed_jobs_and_jobs_past_their_limit_need_a_human(settings):
    settings.INSTALL_BOOT_LIMIT_SECONDS = 600
    settings.INSTALL_PROGRESS_LIMIT_SECONDS = 1200
    failed = _job(BeaconFactory(name="f1"), state="failed", finished_at=NOW - timedelta(days=2))
    _job(BeaconFactory(), state="failed", finished_at=NOW - timedelta(days=40))
    overdue = _job(
        BeaconFactory(name="due"), state="waiting", next_attempt_at=NOW - timedelta(minutes=10)
    )
    _job(
        BeaconFactory(),
        state="waiting",
        kind="decommission",
        next_attempt_at=NOW + timedelta(days=5),
    )
    silent = _job(
        BeaconFactory(name="silent"),
        state="waiting",
        step="wait_callback",
        next_attempt_at=NOW + timedelta(seconds=30),
    )
    _stage(silent, NOW - timedelta(seconds=1260))
    talking = _job(
        BeaconFactory(),
        state="waiting",
        step="wait_callback",
        next_attempt_at=NOW + timedelta(seconds=30),
    )
    _stage(talking, NOW - timedelta(seconds=60))
    unbooted = _job(
        BeaconFactory(name="unbooted"),
        state="waiting",
        step="wait_callback",
        next_attempt_at=NOW + timedelta(seconds=30),
    )
    _event(unbooted, NOW - timedelta(seconds=660))
    booting = _job(
        BeaconFactory(),
        state="waiting",
        step="wait_callback",
        next_attempt_at=NOW + timedelta(seconds=30),
    )
    _event(booting, NOW - timedelta(seconds=300))

    panel = dashboard.jobs_needing_human(NOW)

    assert panel.failed_count == 1
    assert [row.beacon_name for row in panel.failed] == ["f1"]
    assert panel.failed[0].job_url == f"/admin/provisioning/job/{failed.pk}/change/"
    assert panel.stuck_count == 3
    assert {row.beacon_name for row in panel.stuck} == {"due", "silent", "unbooted"}
    why = {row.beacon_name: row.why for row in panel.stuck}
    why_url = {row.beacon_name: row.job_url for row in panel.stuck}
    assert why["due"] == "due but no worker took it"
    assert why["silent"] == why["unbooted"] == "the Beacon's install has gone silent past its limit"
    assert why_url["due"] == f"/admin/provisioning/job/{overdue.pk}/change/"


def test_paid_orders_without_a_built_beacon_and_queued_refunds_need_a_human():
    OrderFactory(
        beacon_name="nobeacon",
        needs_attention=True,
        attention_reason="unknown bundle",
        paid_at=NOW - timedelta(hours=1),
    )
    failed = BeaconFactory(
        order__beacon_name="broken", status="failed", order__paid_at=NOW - timedelta(hours=2)
    )
    BeaconFactory(status="provisioning", order__paid_at=NOW - timedelta(minutes=5))
    BeaconFactory(status="active", order__paid_at=NOW - timedelta(days=1))
    OrderRemedy.objects.create(order=failed.order, policy="staff", state="queued", reason="gave up")
    OrderRemedy.objects.create(order=OrderFactory(), policy="refund", state="done")

    panel = dashboard.orders_needing_human(NOW)

    assert panel.unbuilt_count == 2
    assert {row.label: row.beacon_status for row in panel.unbuilt} == {
        "nobeacon": "no Beacon",
        "broken": "Failed",
    }
    assert panel.remedies_count == 1
    assert [(row.label, row.reason) for row in panel.remedies] == [("broken", "gave up")]


def test_provider_health_shows_the_latest_sweep_and_the_last_reconcile():
    provider = Provider.objects.create(name="fake", kind="fake", health_status="degraded")
    old = ProviderHealthCheck.objects.create(provider=provider, status="healthy")
    new = ProviderHealthCheck.objects.create(provider=provider, status="degraded")
    ProviderHealthCheck.objects.filter(pk=old.pk).update(checked_at=NOW - timedelta(hours=2))
    ProviderHealthCheck.objects.filter(pk=new.pk).update(checked_at=NOW - timedelta(minutes=5))
    first = ReconcileRun.objects.create(findings=[{"kind": "zombie"}])
    last = ReconcileRun.objects.create(
        findings=[{"kind": "drift"}, {"kind": "orphan_dns"}], needs_human=True
    )
    ReconcileRun.objects.filter(pk=first.pk).update(started_at=NOW - timedelta(days=1))
    ReconcileRun.objects.filter(pk=last.pk).update(started_at=NOW - timedelta(hours=1))

    panel = dashboard.provider_health()

    [row] = panel.providers
    assert (row.name, row.health_status, row.last_sweep_status) == ("fake", "degraded", "degraded")
    assert row.last_sweep_at == NOW - timedelta(minutes=5)
    assert (panel.reconcile_at, panel.reconcile_findings, panel.reconcile_needs_human) == (
        NOW - timedelta(hours=1),
        2,
        True,
    )


def _subscription(status, *, paid_days_ago, ended_days_ago=None, **fields):
    return OrderFactory(
        stripe_subscription_id=f"sub_{OrderFactory._meta.model.objects.count()}",
        subscription_status=status,
        paid_at=NOW - timedelta(days=paid_days_ago),
        subscription_ended_at=None
        if ended_days_ago is None
        else NOW - timedelta(days=ended_days_ago),
        **fields,
    )


def test_mrr_counts_billed_subscriptions_a_month_and_churn_is_ended_over_active_at_start():
    _subscription("active", paid_days_ago=60, amount_cents=1500, currency="usd")
    _subscription("active", paid_days_ago=3, amount_cents=12000, currency="usd", period="yearly")
    _subscription("active", paid_days_ago=3)  # no amount recorded: the catalogue price
    _subscription("past_due", paid_days_ago=3, amount_cents=500, currency="eur")
    _subscription("active", paid_days_ago=3, amount_cents=700, currency="eur", stripe_mode="x")
    _subscription("canceled", paid_days_ago=60, ended_days_ago=10, amount_cents=900)
    _subscription("canceled", paid_days_ago=60, ended_days_ago=40, amount_cents=900)
    _subscription("canceled", paid_days_ago=5, ended_days_ago=1, amount_cents=900)

    panel = dashboard.money(NOW)

    # Each at the catalogue price of what it bills now (checkout amounts include tax and
    # coupons); only the order with no catalogue price counts its checkout amount.
    monthly, yearly = _starter_price(), _starter_price("yearly")
    assert panel.mrr_cents == {"usd": round(3 * monthly + yearly / 12), "eur": 700}
    assert panel.paying == 5
    # Active on day -30: the one paid 60 days ago still active and the one ended 10 days ago.
    assert (panel.churn_ended, panel.churn_base) == (1, 2)
    assert panel.churn_display == "50.0%"


def _snapshot(beacon, status, cost):
    return BackupSnapshot.objects.create(
        beacon=beacon,
        provider=Provider.objects.get_or_create(name="fake", kind="fake")[0],
        kind="daily",
        name=f"snap-{BackupSnapshot.objects.count()}",
        status=status,
        monthly_cost=cost,
        expires_at=NOW + timedelta(days=7),
    )


def test_cost_against_revenue_totals_live_beacons_and_lists_the_thinnest_margins():
    fake = Provider.objects.get_or_create(name="fake", kind="fake")[0]
    cheap = BeaconFactory(
        name="cheap",
        status="active",
        provider=fake,
        server_monthly_cost=Decimal("7.59"),
        order__subscription_status="active",
    )
    dear = BeaconFactory(
        name="dear",
        status="suspended",
        provider=fake,
        server_monthly_cost=Decimal("20.00"),
        order__subscription_status="past_due",
        order__period="yearly",
    )
    BeaconFactory(status="decommissioned", server_monthly_cost=Decimal("5.00"))
    BeaconFactory(name="unpriced", status="active", order__subscription_status="active")
    _snapshot(cheap, "available", Decimal("0.50"))
    _snapshot(cheap, "deleted", Decimal("9.99"))

    panel = dashboard.cost_against_revenue()

    monthly, yearly = _starter_price(), _starter_price("yearly")
    assert (panel.live_beacons, panel.priced_beacons) == (3, 2)
    assert (panel.server_cost, panel.snapshot_cost) == (
        {"usd": Decimal("27.59")},
        {"usd": Decimal("0.50")},
    )
    [line] = panel.lines
    assert line.total_cost == Decimal("28.09")
    revenue = round(2 * monthly + yearly / 12)
    assert panel.revenue_cents == {"usd": revenue}
    assert line.margin_cents == revenue - 2809
    assert [row.name for row in panel.thinnest] == ["dear", "cheap"]
    assert panel.thinnest[1].snapshot_cost == Decimal("0.50")
    assert panel.thinnest[0].revenue_cents == round(yearly / 12)
    assert panel.thinnest[0].url.endswith(f"/{dear.pk}/change/")  # a suspended Beacon is live


def test_provisioning_times_are_p50_and_p90_minutes_per_day():
    for minutes in (2, 4, 10):
        _job(
            BeaconFactory(),
            state="completed",
            started_at=NOW - timedelta(hours=1),
            finished_at=NOW - timedelta(hours=1) + timedelta(minutes=minutes),
        )
    _job(
        BeaconFactory(),
        state="completed",
        started_at=NOW - timedelta(days=3, minutes=30),
        finished_at=NOW - timedelta(days=3),
    )
    _job(
        BeaconFactory(),
        state="completed",
        started_at=NOW - timedelta(days=40, minutes=5),
        finished_at=NOW - timedelta(days=40),
    )
    _job(BeaconFactory(), state="failed", started_at=NOW - timedelta(hours=1), finished_at=NOW)

    days = dashboard.provisioning_times(NOW)

    assert len(days) == 30
    assert (days[-1].count, days[-1].p50_minutes, days[-1].p90_minutes) == (3, 4.0, 10.0)
    assert (days[-4].count, days[-4].p50_minutes) == (1, 30.0)
    assert sum(day.count for day in days) == 4


def test_daily_sales_count_orders_paid_each_day_with_their_amounts():
    OrderFactory(paid_at=NOW - timedelta(hours=1), amount_cents=1500, currency="usd")
    OrderFactory(paid_at=NOW - timedelta(hours=2))  # the catalogue price
    OrderFactory(paid_at=NOW - timedelta(days=3), amount_cents=500, currency="eur")
    OrderFactory(paid_at=NOW - timedelta(days=40), amount_cents=700, currency="usd")
    OrderFactory(paid_at=None, status="pending")

    days = dashboard.daily_sales(NOW)

    assert len(days) == 30
    assert (days[-1].orders, days[-1].amounts) == (2, {"usd": 1500 + _starter_price()})
    assert (days[-4].orders, days[-4].amounts) == (1, {"eur": 500})
    assert sum(day.orders for day in days) == 3
