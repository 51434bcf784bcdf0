"""The admin index: the staff dashboard above the app list, dj-stripe's models grouped last,
charts drawn inline without a network fetch, and a query count that does not grow with the
fleet (pinned with 10,000 Beacons)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Order, OrderRemedy
from provisioning.models import Provider, ProviderHealthCheck, ReconcileRun
from tests.factories import OrderFactory
from tests.fleet import fleet_make
from wopr.charts import provisioning_chart, sales_chart
from wopr.dashboard import dashboard_build

pytestmark = pytest.mark.django_db

PANELS = ("beacons", "jobs", "orders", "health", "money", "charts")
# Measured on PostgreSQL and SQLite: 21 statements for the whole page (session, user, the
# dashboard's 18 queries, the admin log), the same with 100 Beacons and with 10,000.
INDEX_MAX_QUERIES = 21


def _dashboard_html(body: str) -> str:
    start = body.index('<div id="cockpit-dashboard"')
    return body[start : body.index('<div id="content-main"', start)]


def test_the_index_shows_every_panel_above_the_app_list(admin_client):
    fleet_make(20)

    response = admin_client.get("/admin/")

    assert response.status_code == 200
    body = response.content.decode()
    for panel in PANELS:
        assert f'id="cockpit-{panel}"' in body
    assert body.index('id="cockpit-dashboard"') < body.index('id="content-main"')
    assert '<a href="/admin/provisioning/beacon/?status__exact=failed">' in body
    assert "/static/wopr/cockpit.css" in body


def test_the_dashboard_has_no_script_no_inline_style_and_no_remote_url(admin_client):
    fleet_make(20)

    response = admin_client.get("/admin/")

    html = _dashboard_html(response.content.decode())
    assert "<script" not in html
    assert "style=" not in html
    assert not re.search(r"https?://", html)
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_the_charts_have_a_bar_a_day_and_a_dot_for_each_day_with_provisions():
    fleet_make(30)  # provision jobs finished two hours ago, orders paid over 30 days

    board = dashboard_build()
    provisioning = str(provisioning_chart(board.provisioning))
    sales = str(sales_chart(board.sales))

    assert provisioning.count('<rect class="chart-bar"') == 30
    days_with_provisions = sum(1 for day in board.provisioning if day.count)
    assert days_with_provisions >= 1
    assert provisioning.count('<circle class="chart-mark"') == days_with_provisions
    assert sales.count('<rect class="chart-bar"') == 30
    assert sales.count("<circle") == 0
    # Paid 0-29 days (and up to 59 minutes) ago: the oldest may fall before the window's first
    # local day when the test runs just after midnight.
    first = board.sales[0].day
    paid = Order.objects.values_list("paid_at", flat=True)
    assert sum(day.orders for day in board.sales) == sum(
        1 for at in paid if timezone.localdate(at) >= first
    )
    for svg in (provisioning, sales):
        assert svg.startswith("<svg") and not re.search(r"https?://", svg)


def test_stripe_models_are_grouped_under_their_own_heading_after_ours(admin_client):
    response = admin_client.get("/admin/")

    labels = [app["app_label"] for app in response.context["app_list"]]
    assert labels[-2:] == ["django_q", "djstripe"]
    assert labels.index("provisioning") < labels.index("djstripe")
    body = response.content.decode()
    assert "Stripe (synced by dj-stripe)" in body
    assert body.index(">Provisioning<") < body.index("Stripe (synced by dj-stripe)")
    # Django's per-app page still works, under the new name.
    app_page = admin_client.get("/admin/djstripe/")
    assert app_page.status_code == 200
    assert "Stripe (synced by dj-stripe)" in app_page.content.decode()


def _extras() -> None:
    """What the fleet lacks: queued refunds, health sweeps, reconcile runs."""
    provider, _ = Provider.objects.get_or_create(name="fake", defaults={"kind": "fake"})
    for status in ("healthy", "degraded", "healthy"):
        ProviderHealthCheck.objects.create(provider=provider, status=status)
    for needs_human in (False, True):
        ReconcileRun.objects.create(findings=[{"kind": "drift"}], needs_human=needs_human)
    for order in Order.objects.filter(beacon__status="failed")[:5]:
        OrderRemedy.objects.create(order=order, policy="staff", state="queued", reason="gave up")


def _index_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/").status_code == 200
    return len(queries)


@pytest.mark.slow
def test_the_index_costs_the_same_queries_with_100_and_10000_beacons(
    admin_client, django_assert_max_num_queries
):
    fleet_make(100, prefix="small")
    _extras()
    admin_client.get("/admin/")  # the session and user are now warm, as for staff
    small = _index_queries(admin_client)

    fleet_make(9_900, prefix="big")
    with django_assert_max_num_queries(INDEX_MAX_QUERIES):
        response = admin_client.get("/admin/")

    assert response.context["dashboard"].cost.live_beacons == 8_000
    assert _index_queries(admin_client) == small


def test_what_buyers_typed_is_escaped_on_the_dashboard(admin_client):
    OrderFactory(
        beacon_name="evil1",
        needs_attention=True,
        attention_reason="<script>alert(1)</script>",
        paid_at=timezone.now(),
    )

    html = _dashboard_html(admin_client.get("/admin/").content.decode())

    assert "evil1" in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
