"""The staff dashboard on the admin index: what is stuck and what it costs, one function a panel.

Every panel is a fixed number of aggregate queries (GROUP BY, SUM, COUNT over filtered subsets,
LIMITed lists), so the page costs the same number of statements with 100 Beacons or 10,000; no
panel loops in Python over the fleet. The only rows loaded whole are the provision jobs that
finished in the window (the chart's percentiles need each duration), bounded by 30 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from wopr.dashboard.fleet import (
    DayDurations,
    HealthPanel,
    JobRow,
    JobsPanel,
    OrderRow,
    OrdersPanel,
    ProviderRow,
    StatusCount,
    beacons_by_status,
    jobs_needing_human,
    orders_needing_human,
    provider_health,
    provisioning_times,
)
from wopr.dashboard.money import (
    CostPanel,
    CostRow,
    CurrencyLine,
    DaySales,
    MoneyPanel,
    cost_against_revenue,
    daily_sales,
    money,
)

__all__ = [
    "CostPanel",
    "CostRow",
    "CurrencyLine",
    "Dashboard",
    "DayDurations",
    "DaySales",
    "HealthPanel",
    "JobRow",
    "JobsPanel",
    "MoneyPanel",
    "OrderRow",
    "OrdersPanel",
    "ProviderRow",
    "StatusCount",
    "beacons_by_status",
    "cost_against_revenue",
    "daily_sales",
    "dashboard_build",
    "jobs_needing_human",
    "money",
    "orders_needing_human",
    "provider_health",
    "provisioning_times",
]


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    beacons: list[StatusCount]
    jobs: JobsPanel
    orders: OrdersPanel
    health: HealthPanel
    money: MoneyPanel
    cost: CostPanel
    provisioning: list[DayDurations]
    sales: list[DaySales]


def dashboard_build(now: datetime | None = None) -> Dashboard:
    """Every panel of the admin index, as of `now`."""
    now = now or timezone.now()
    return Dashboard(
        now=now,
        beacons=beacons_by_status(),
        jobs=jobs_needing_human(now),
        orders=orders_needing_human(now),
        health=provider_health(),
        money=money(now),
        cost=cost_against_revenue(),
        provisioning=provisioning_times(now),
        sales=daily_sales(now),
    )
