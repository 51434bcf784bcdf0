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
    QuerySet,
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


def _catalogue_price(prefix: str = "") -> QuerySet[Price]:
    """The catalogue Price of the order's current (bundle, tier, period, mode): a paid tier
    change moves Order.tier, so this follows what Stripe bills now. At most one row (unique
    per offer); unordered, so the lookup is the unique index alone (Price's default ordering
    would join bundle and tier into every row's subquery)."""
    return Price.objects.filter(
        bundle=OuterRef(f"{prefix}bundle"),
        tier=OuterRef(f"{prefix}tier"),
        period=OuterRef(f"{prefix}period"),
        mode=OuterRef(f"{prefix}stripe_mode"),
    ).order_by()


def billed_cents(prefix: str = "") -> Coalesce:
    """What the subscription bills a period now, in minor units: the catalogue Price (before tax
    and coupons, after any tier change), else the checkout's amount_total. A 0 never wins over
    a non-zero amount: a trial's or a 100% coupon's checkout records 0, a Price off sale is 0."""
    price = _catalogue_price(prefix).values("amount_cents")[:1]
    return Coalesce(
        NullIf(Subquery(price), Value(0)), NullIf(F(f"{prefix}amount_cents"), Value(0)), Value(0)
    )


def billed_currency(prefix: str = "") -> Coalesce:
    """The currency of billed_cents: the catalogue Price's where it gave the amount, else the
    checkout's, else usd."""
    price = _catalogue_price(prefix).filter(amount_cents__gt=0).values("currency")[:1]
    return Coalesce(Subquery(price), NullIf(F(f"{prefix}currency"), Value("")), Value("usd"))


def paid_cents() -> Coalesce:
    """What the order's checkout paid (amount_total, 0 for a trial), else (not recorded) the
    catalogue price: daily sales count what was paid, not what is billed now."""
    price = _catalogue_price().values("amount_cents")[:1]
    return Coalesce(F("amount_cents"), Subquery(price))


def paid_currency() -> Coalesce:
    """The currency of paid_cents."""
    price = _catalogue_price().values("currency")[:1]
    return Coalesce(NullIf(F("currency"), Value("")), Subquery(price), Value("usd"))


def monthly_cents(prefix: str = "") -> ExpressionWrapper:
    """What the subscription bills a month: a yearly price counts 1/12."""
    yearly = Q(**{f"{prefix}period": Period.YEARLY})
    cents = Cast(billed_cents(prefix), FloatField())
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
        .annotate(cur=billed_currency(), monthly=monthly_cents())
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
# The currency each provider kind's recorded prices are in (Beacon.server_monthly_cost and
# BackupSnapshot.monthly_cost come from the adapters in integrations/clouds/). Hetzner answers
# in EUR (GET /pricing says `"currency": "EUR"`; its server types' prices are the same
# account's), DigitalOcean in USD (`price_monthly` of /v2/sizes, and the configured
# DIGITALOCEAN_SNAPSHOT_PRICE_PER_GB), the fake in USD by our choice (a dev fleet with the
# usual USD catalogue then shows margins). An unknown kind's costs stay apart, never summed.
PROVIDER_CURRENCY = {"hetzner": "eur", "digitalocean": "usd", "fake": "usd"}
UNKNOWN_CURRENCY = "???"


def provider_currency(kind: str | None) -> str:
    """The currency of the prices a provider of `kind` records."""
    return PROVIDER_CURRENCY.get(kind or "", UNKNOWN_CURRENCY)


def _provider_currency_sql(kind_field: str) -> Case:
    whens = [When(**{kind_field: kind}, then=Value(cur)) for kind, cur in PROVIDER_CURRENCY.items()]
    return Case(*whens, default=Value(UNKNOWN_CURRENCY))


def cost_display(amount: Decimal, currency: str) -> str:
    """A provider price (major units, up to 4 decimals) as money: `€7.59`, `$20.00`."""
    if currency == UNKNOWN_CURRENCY:
        return f"{amount:,.2f} (unknown currency)"
    return money_display(round(amount * 100), currency)


@dataclass(frozen=True)
class CostRow:
    name: str
    url: str
    server_cost: Decimal | None
    snapshot_cost: Decimal
    cost_currency: str
    revenue_cents: int
    currency: str
    margin_cents: int | None  # None: cost and revenue in different currencies

    @property
    def cost_display(self) -> str:
        return cost_display(
            (self.server_cost or Decimal(0)) + self.snapshot_cost, self.cost_currency
        )

    @property
    def revenue_display(self) -> str:
        return money_display(self.revenue_cents, self.currency)

    @property
    def margin_display(self) -> str:
        if self.margin_cents is None:
            return "n/a (currencies differ)"
        return money_display(self.margin_cents, self.cost_currency)


@dataclass(frozen=True)
class CurrencyLine:
    """One currency's provider cost and revenue a month; a margin only where both exist."""

    currency: str
    server_cost: Decimal
    snapshot_cost: Decimal
    revenue_cents: int

    @property
    def total_cost(self) -> Decimal:
        return self.server_cost + self.snapshot_cost

    @property
    def has_cost(self) -> bool:
        return bool(self.total_cost)

    @property
    def margin_cents(self) -> int | None:
        if not (self.has_cost and self.revenue_cents):
            return None
        return self.revenue_cents - round(self.total_cost * 100)

    @property
    def cost_display(self) -> str:
        return cost_display(self.total_cost, self.currency) if self.has_cost else "-"

    @property
    def revenue_display(self) -> str:
        return money_display(self.revenue_cents, self.currency) if self.revenue_cents else "-"

    @property
    def margin_display(self) -> str:
        margin = self.margin_cents
        return "n/a" if margin is None else money_display(margin, self.currency)


@dataclass(frozen=True)
class CostPanel:
    live_beacons: int
    priced_beacons: int
    paying_beacons: int
    server_cost: dict[str, Decimal]  # provider currency -> a month
    snapshot_cost: dict[str, Decimal]  # provider currency -> a month
    revenue_cents: dict[str, int]  # currency -> a month, of paying live Beacons only
    thinnest: list[CostRow] = field(default_factory=list)

    @property
    def lines(self) -> list[CurrencyLine]:
        """One line per currency seen in a cost or a revenue; nothing converted or mixed."""
        currencies = sorted({*self.server_cost, *self.snapshot_cost, *self.revenue_cents})
        return [
            CurrencyLine(
                currency=cur,
                server_cost=self.server_cost.get(cur, Decimal(0)),
                snapshot_cost=self.snapshot_cost.get(cur, Decimal(0)),
                revenue_cents=self.revenue_cents.get(cur, 0),
            )
            for cur in currencies
        ]

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


def _paying_revenue(prefix: str) -> Case:
    """The Beacon's order's monthly amount while its subscription is paying, else 0."""
    paying = Q(**{f"{prefix}subscription_status__in": PAYING})
    return Case(
        When(paying, then=monthly_cents(prefix)), default=Value(0.0), output_field=FloatField()
    )


def _margin() -> Case:
    """Revenue minus cost in minor units: where there is no revenue (-cost, in the cost's
    currency) or both share a currency; NULL otherwise (no conversion)."""
    cost = Cast(F("server_monthly_cost") + F("snapshots"), FloatField()) * Value(100.0)
    return Case(
        When(revenue=0.0, then=-cost),
        When(cost_cur=F("cur"), then=F("revenue") - cost),
        default=None,
        output_field=FloatField(),
    )


def _thinnest_margins() -> list[CostRow]:
    """The live Beacons whose monthly revenue least covers their cost (server + snapshots);
    those whose cost and revenue are in different currencies come last, unranked."""
    rows = (
        Beacon.objects.filter(status__in=LIVE_BEACONS, server_monthly_cost__isnull=False)
        .annotate(
            snapshots=_snapshot_cost_of_beacon(),
            revenue=_paying_revenue("order__"),
            cur=billed_currency("order__"),
            cost_cur=_provider_currency_sql("provider__kind"),
        )
        .annotate(margin=_margin())
        .order_by(F("margin").asc(nulls_last=True), "name")[:LIST_LIMIT]
    )
    return [_cost_row(row) for row in rows]


def _cost_row(row: Beacon) -> CostRow:
    margin = row.margin  # type: ignore[attr-defined]
    return CostRow(
        name=row.name,
        url=admin_url("provisioning_beacon_change", row.pk),
        server_cost=row.server_monthly_cost,
        snapshot_cost=row.snapshots,  # type: ignore[attr-defined]
        cost_currency=row.cost_cur,  # type: ignore[attr-defined]
        revenue_cents=round(row.revenue or 0),  # type: ignore[attr-defined]
        currency=row.cur,  # type: ignore[attr-defined]
        margin_cents=None if margin is None else round(margin),
    )


def _add(totals: dict[str, Decimal], currency: str, amount: Decimal | None) -> None:
    if amount:
        totals[currency] = totals.get(currency, Decimal(0)) + amount


def cost_against_revenue() -> CostPanel:
    """Live Beacons' server prices (recorded at placement) and the providers' live snapshots,
    per the provider's currency; revenue a month per currency of the live Beacons whose
    subscription is paying (the MRR set: an unpaid suspended Beacon brings nothing); and the
    Beacons with the thinnest margin. Two grouped queries and the top list, whatever the fleet."""
    groups = list(
        Beacon.objects.filter(status__in=LIVE_BEACONS)
        .annotate(cur=billed_currency("order__"), revenue=_paying_revenue("order__"))
        .order_by()
        .values("provider__kind", "cur")
        .annotate(
            n=Count("pk"),
            priced=Count("server_monthly_cost"),
            paying=Count("pk", filter=Q(order__subscription_status__in=PAYING)),
            server=Sum("server_monthly_cost"),
            total=Sum("revenue"),
        )
    )
    snapshots = (
        BackupSnapshot.objects.filter(status__in=LIVE_STATUSES)
        .order_by()
        .values_list("provider__kind")
        .annotate(total=Sum("monthly_cost"))
    )
    server: dict[str, Decimal] = {}
    snapshot: dict[str, Decimal] = {}
    revenue: dict[str, float] = defaultdict(float)
    for row in groups:
        _add(server, provider_currency(row["provider__kind"]), row["server"])
        revenue[row["cur"]] += row["total"] or 0.0
    for kind, total in snapshots:
        _add(snapshot, provider_currency(kind), total)
    return CostPanel(
        live_beacons=sum(row["n"] for row in groups),
        priced_beacons=sum(row["priced"] for row in groups),
        paying_beacons=sum(row["paying"] for row in groups),
        server_cost=server,
        snapshot_cost=snapshot,
        revenue_cents={cur: round(cents) for cur, cents in revenue.items() if cents},
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
        .annotate(day=TruncDate("paid_at"), cur=paid_currency(), cents=paid_cents())
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
