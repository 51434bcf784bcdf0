"""The dashboard's money panels: recurring revenue and churn from the synced subscriptions,
provider cost against revenue, and sales per day over the window."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import (
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, NullIf, TruncDate
from django.utils import timezone

from backups.models import LIVE_STATUSES, BackupSnapshot
from billing.models import (
    Order,
    Period,
    Price,
)
from billing.subscriptions import money_display
from provisioning.models import (
    Beacon,
)
from wopr.dashboard.common import (
    LIST_LIMIT,
    LIVE_BEACONS,
    PAYING,
    WINDOW_DAYS,
    admin_url,
    window_days,
)

# --- Money: recurring revenue, churn --------------------------------------------------------


def order_cents(prefix: str = "") -> Coalesce:
    """What the order pays a period, in minor units: the paid session's amount_total, else the
    catalogue Price of its (bundle, tier, period, mode)."""
    price = Price.objects.filter(
        bundle=OuterRef(f"{prefix}bundle"),
        tier=OuterRef(f"{prefix}tier"),
        period=OuterRef(f"{prefix}period"),
        mode=OuterRef(f"{prefix}stripe_mode"),
    )
    return Coalesce(F(f"{prefix}amount_cents"), Subquery(price.values("amount_cents")[:1]))


def order_currency(prefix: str = "") -> Coalesce:
    """The order's currency: the paid session's, else the catalogue Price's, else usd."""
    price = Price.objects.filter(
        bundle=OuterRef(f"{prefix}bundle"),
        tier=OuterRef(f"{prefix}tier"),
        period=OuterRef(f"{prefix}period"),
        mode=OuterRef(f"{prefix}stripe_mode"),
    )
    return Coalesce(
        NullIf(F(f"{prefix}currency"), Value("")),
        Subquery(price.values("currency")[:1]),
        Value("usd"),
    )


def monthly_cents(prefix: str = "") -> ExpressionWrapper:
    """The order's amount a month: a yearly price counts 1/12."""
    yearly = Q(**{f"{prefix}period": Period.YEARLY})
    cents = Cast(order_cents(prefix), FloatField())
    return ExpressionWrapper(
        Case(When(yearly, then=cents / Value(12.0)), default=cents), output_field=FloatField()
    )


@dataclass(frozen=True)
class MoneyPanel:
    mrr_cents: dict[str, int]  # currency -> monthly recurring revenue
    paying: int
    churn_ended: int
    churn_base: int
    window_start: datetime

    @property
    def churn_rate(self) -> float | None:
        return self.churn_ended / self.churn_base if self.churn_base else None

    @property
    def mrr_display(self) -> str:
        return money_total_display(self.mrr_cents)

    @property
    def churn_display(self) -> str:
        return "n/a" if self.churn_rate is None else f"{self.churn_rate:.1%}"


def money_total_display(amounts: dict[str, int]) -> str:
    """`$1,234.00 + €56.00` (nothing converted between currencies); `0` for none."""
    shown = [money_display(cents, cur) for cur, cents in sorted(amounts.items()) if cents]
    return " + ".join(shown) or "0"


def money(now: datetime) -> MoneyPanel:
    """MRR of the subscriptions Stripe bills (active, past_due) per currency, and churn: of the
    subscriptions active when the window began (paid before it, not ended before it), the
    share that ended within it."""
    start = now - timedelta(days=WINDOW_DAYS)
    mrr = (
        Order.objects.filter(subscription_status__in=PAYING)
        .annotate(cur=order_currency(), monthly=monthly_cents())
        .order_by()
        .values("cur")
        .annotate(total=Sum("monthly"), n=Count("pk"))
    )
    churn = (
        Order.objects.filter(stripe_subscription_id__isnull=False, paid_at__lt=start)
        .filter(Q(subscription_ended_at__isnull=True) | Q(subscription_ended_at__gte=start))
        .aggregate(base=Count("pk"), ended=Count("pk", filter=Q(subscription_ended_at__gte=start)))
    )
    rows = list(mrr)
    return MoneyPanel(
        mrr_cents={row["cur"]: round(row["total"] or 0) for row in rows},
        paying=sum(row["n"] for row in rows),
        churn_ended=churn["ended"],
        churn_base=churn["base"],
        window_start=start,
    )


# --- Provider cost against revenue ----------------------------------------------------------

COST = DecimalField(max_digits=14, decimal_places=4)


@dataclass(frozen=True)
class CostRow:
    name: str
    url: str
    server_cost: Decimal | None
    snapshot_cost: Decimal
    revenue_cents: int
    currency: str

    @property
    def revenue_display(self) -> str:
        return money_display(self.revenue_cents, self.currency)


@dataclass(frozen=True)
class CostPanel:
    live_beacons: int
    priced_beacons: int
    server_cost: Decimal
    snapshot_cost: Decimal
    revenue_cents: dict[str, int]  # currency -> a month
    thinnest: list[CostRow] = field(default_factory=list)

    @property
    def total_cost(self) -> Decimal:
        return self.server_cost + self.snapshot_cost

    @property
    def revenue_display(self) -> str:
        return money_total_display(self.revenue_cents)


def _snapshot_cost_of_beacon() -> Coalesce:
    costs = (
        BackupSnapshot.objects.filter(beacon=OuterRef("pk"), status__in=LIVE_STATUSES)
        .order_by()
        .values("beacon")
        .annotate(total=Sum("monthly_cost"))
        .values("total")
    )
    return Coalesce(Subquery(costs, output_field=COST), Value(Decimal(0)), output_field=COST)


def _thinnest_margins() -> list[CostRow]:
    """The live Beacons whose monthly revenue least covers their cost (server + snapshots)."""
    cost = Coalesce("server_monthly_cost", Value(Decimal(0)), output_field=COST)
    rows = (
        Beacon.objects.filter(status__in=LIVE_BEACONS, server_monthly_cost__isnull=False)
        .annotate(
            snapshots=_snapshot_cost_of_beacon(),
            revenue=monthly_cents("order__"),
            cur=order_currency("order__"),
        )
        .annotate(
            margin=ExpressionWrapper(
                F("revenue") - Cast(cost + F("snapshots"), FloatField()) * Value(100.0),
                output_field=FloatField(),
            )
        )
        .order_by("margin", "name")[:LIST_LIMIT]
    )
    return [
        CostRow(
            name=row.name,
            url=admin_url("provisioning_beacon_change", row.pk),
            server_cost=row.server_monthly_cost,
            snapshot_cost=row.snapshots,
            revenue_cents=round(row.revenue or 0),
            currency=row.cur,
        )
        for row in rows
    ]


def cost_against_revenue() -> CostPanel:
    """Totals over live Beacons (server prices recorded at placement, revenue a month per
    currency) and the provider's live snapshots, plus the Beacons with the thinnest margin."""
    per_currency = list(
        Beacon.objects.filter(status__in=LIVE_BEACONS)
        .annotate(cur=order_currency("order__"), revenue=monthly_cents("order__"))
        .order_by()
        .values("cur")
        .annotate(
            n=Count("pk"),
            priced=Count("server_monthly_cost"),
            server=Sum("server_monthly_cost"),
            total=Sum("revenue"),
        )
    )
    snapshots = BackupSnapshot.objects.filter(status__in=LIVE_STATUSES).aggregate(
        total=Sum("monthly_cost")
    )
    return CostPanel(
        live_beacons=sum(row["n"] for row in per_currency),
        priced_beacons=sum(row["priced"] for row in per_currency),
        server_cost=sum((row["server"] or Decimal(0) for row in per_currency), Decimal(0)),
        snapshot_cost=snapshots["total"] or Decimal(0),
        revenue_cents={row["cur"]: round(row["total"] or 0) for row in per_currency},
        thinnest=_thinnest_margins(),
    )


@dataclass(frozen=True)
class DaySales:
    day: date
    orders: int
    amounts: dict[str, int]  # currency -> minor units


def daily_sales(now: datetime) -> list[DaySales]:
    """Per day of the window: orders paid that day (whatever became of them since) and their
    amounts per currency (amount_total of the paid session, else the catalogue price)."""
    days = window_days(now)
    rows = (
        Order.objects.filter(
            paid_at__gte=timezone.make_aware(datetime.combine(days[0], datetime.min.time()))
        )
        .annotate(day=TruncDate("paid_at"), cur=order_currency(), cents=order_cents())
        .order_by()
        .values("day", "cur")
        .annotate(n=Count("pk"), total=Sum("cents"))
    )
    orders: dict[date, int] = defaultdict(int)
    amounts: dict[date, dict[str, int]] = defaultdict(dict)
    for row in rows:
        orders[row["day"]] += row["n"]
        amounts[row["day"]][row["cur"]] = int(row["total"] or 0)
    return [DaySales(day=day, orders=orders[day], amounts=amounts[day]) for day in days]
