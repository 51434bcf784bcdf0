"""What every dashboard panel shares: the window, list sizes, the fleet's groupings, admin URLs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from billing.models import SubscriptionStatus
from provisioning.models import BeaconStatus

WINDOW_DAYS = 30
LIST_LIMIT = 10
# A job due this long ago and still unclaimed means no worker is taking jobs (the due-job loop
# looks every JOB_DUE_POLL_SECONDS).
OVERDUE = timedelta(minutes=5)
# A paid order's Beacon is normally active within minutes; past this it needs a look.
PROVISION_GRACE = timedelta(minutes=30)
# Subscriptions Stripe is billing (past_due is still owed and retried).
PAYING = [SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE]
# Beacons whose server exists (or may) and costs money at the provider.
LIVE_BEACONS = [
    BeaconStatus.PROVISIONING,
    BeaconStatus.ACTIVE,
    BeaconStatus.SUSPENDED,
    BeaconStatus.DECOMMISSIONING,
]
UNBUILT_BEACONS = [BeaconStatus.PENDING, BeaconStatus.PROVISIONING, BeaconStatus.FAILED]


def admin_url(name: str, *args: Any, **query: str) -> str:
    """The admin page `name` (of `args`), with `query` as its filter."""
    url = reverse(f"admin:{name}", args=args)
    return f"{url}?{urlencode(query)}" if query else url


def window_days(now: datetime) -> list[date]:
    """The WINDOW_DAYS local dates ending today, oldest first."""
    today = timezone.localdate(now)
    return [today - timedelta(days=back) for back in range(WINDOW_DAYS - 1, -1, -1)]
