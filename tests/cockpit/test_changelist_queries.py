"""Every changelist of the admin site stays fast with 10,000 Beacons (issue 14, item 5): its
number of queries is pinned and does not grow with the fleet, and no query counts a whole
huge table (wopr.lib.admin.BoundedCountPaginator, set on every admin by WoprAdminSite)."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from provisioning.models import Beacon
from tests.fleet import fleet_make
from wopr.audit import staff_action_record
from wopr.lib.admin import BoundedCountPaginator

pytestmark = pytest.mark.django_db

# Measured with 10,000 Beacons as a superuser (SQLite and PostgreSQL alike). Every changelist
# takes at least 4: session, user, the bounded count, the page; then one for the date
# hierarchy's range and one per filter whose choices come from the database (related rows,
# distinct values). Those taking more than 4:
BASE_QUERIES = 4
CHANGELIST_QUERIES = {
    "auth.user": 5,
    "axes.accessattempt": 7,
    "axes.accessfailurelog": 7,
    "axes.accesslog": 7,
    "backups.backupsnapshot": 7,
    "billing.bundle": 5,
    "billing.order": 5,
    "billing.orderremedy": 6,
    "billing.paymentfailure": 6,
    "billing.price": 5,
    "django_q.failure": 6,
    "django_q.ormq": 5,
    "django_q.schedule": 5,
    "django_q.success": 6,
    "djstripe.discount": 6,
    "djstripe.event": 5,
    "djstripe.lineitem": 7,
    "djstripe.productfeature": 5,
    "djstripe.session": 5,
    "djstripe.subscriptionschedule": 6,
    "dns.dnsrecord": 4,
    "dns.fakednsrecord": 5,
    "documents.emailmessage": 4,
    "provisioning.beacon": 6,
    "provisioning.fakefault": 5,
    "provisioning.fakeserver": 5,
    "provisioning.installstage": 5,
    "provisioning.job": 4,
    "provisioning.jobevent": 4,
    "provisioning.provider": 5,
    "provisioning.providerhealthcheck": 7,
    "provisioning.reconcilerun": 6,
    "wopr.staffaction": 5,
    "wopr.staffnote": 6,
}

# These must not take one more query for 10,000 Beacons than for 100.
FLEET_CHANGELISTS = (
    "provisioning.beacon",
    "billing.order",
    "billing.customer",
    "provisioning.job",
    "provisioning.jobevent",
    "dns.dnsrecord",
    "documents.emailmessage",
)
HUGE_TABLES = (
    "provisioning_beacon",
    "billing_order",
    "provisioning_job",
    "provisioning_jobevent",
    "documents_emailmessage",
    "dns_dnsrecord",
)
COUNT = re.compile(r"\bCOUNT\(\*\)", re.IGNORECASE)
# A filter on a plain CharField learns its choices with SELECT DISTINCT over the whole table on
# every load; over these tables the site's filters have fixed choices instead
# (provisioning.admin_filters, wopr.admin).
DISTINCT_WATCHED = (*HUGE_TABLES, "wopr_staffaction")
DISTINCT = re.compile(r"SELECT DISTINCT ", re.IGNORECASE)


def changelist_queries(client: Client, only: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Every registered changelist's SQL (or those named in `only`), by model label."""
    executed = {}
    for model in admin.site._registry:
        if only and model._meta.label_lower not in only:
            continue
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, opts.label_lower
        executed[opts.label_lower] = [query["sql"] for query in queries]
    return executed


def unbounded_count(sql: str) -> bool:
    """A COUNT(*) over one of the huge tables without a LIMIT under it."""
    return (
        bool(COUNT.search(sql))
        and "LIMIT" not in sql.upper()
        and any(f'"{table}"' in sql or f" {table} " in sql for table in HUGE_TABLES)
    )


def distinct_over_a_huge_table(sql: str) -> bool:
    """A SELECT DISTINCT over one of the huge tables or the audit trail: a plain-column filter
    learning its choices, or the date hierarchy listing its years (`django_datetime_trunc` on
    SQLite, `DATE_TRUNC` on PostgreSQL); both scan the table on every load."""
    return bool(DISTINCT.search(sql)) and any(f'"{table}"' in sql for table in DISTINCT_WATCHED)


def test_no_unfiltered_changelist_runs_select_distinct_over_a_huge_table(admin_client, admin_user):
    fleet_make(20)
    staff_action_record(user=admin_user, action="sweep.health", outcome="queued")

    executed = changelist_queries(admin_client)

    flagged = {
        label
        for label, queries in executed.items()
        if any(map(distinct_over_a_huge_table, queries))
    }
    assert flagged == set()


@pytest.mark.slow
def test_every_changelist_is_pinned_and_none_counts_a_huge_table(admin_client):
    fleet_make(100)
    changelist_queries(admin_client)  # warm the session and content-type caches
    small = changelist_queries(admin_client, only=FLEET_CHANGELISTS)
    fleet_make(9_900, prefix="more")

    large = changelist_queries(admin_client)

    counts = {label: len(sql) for label, sql in large.items()}
    assert {label: len(small[label]) for label in FLEET_CHANGELISTS} == {
        label: counts[label] for label in FLEET_CHANGELISTS
    }
    assert [sql for queries in large.values() for sql in queries if unbounded_count(sql)] == []
    assert counts == {label: CHANGELIST_QUERIES.get(label, BASE_QUERIES) for label in counts}
    assert set(CHANGELIST_QUERIES) <= set(counts)  # no pin left for a changelist gone


def test_beyond_the_limit_the_list_says_more_than_and_counts_no_further(admin_client, monkeypatch):
    fleet_make(30)
    monkeypatch.setattr(BoundedCountPaginator, "limit", 20)

    response = admin_client.get(reverse("admin:provisioning_beacon_changelist"))

    assert response.context["cl"].result_count == 21
    with CaptureQueriesContext(connection) as queries:
        Beacon.objects.count()  # what Django's own paginator would have run
    assert unbounded_count(queries[0]["sql"])
    assert "More than 20 beacons" in response.content.decode()
