"""The Prometheus metrics of GET /metrics, read from the database at every scrape.

The web runs as several gunicorn workers and the jobs in separate qcluster processes, so an
in-process counter would only know its own process: every number here is a query over the
rows all processes write. Each query stays bounded, whatever the size of the fleet:

- unfinished jobs, failed jobs and due jobs go through the index on Job(state, next_attempt_at);
  "due" is provisioning.models.job_untaken: due and not taken by a worker (the dashboard's too);
- PROVISION jobs (the duration histogram) are at most one per Beacon: the partial unique index
  `job_one_provision_per_beacon` (kind = provision) holds exactly them;
- job events and e-mails of the window (the last hour, the last day) are found through the
  indexes on JobEvent.at and EmailMessage.created_at (provisioning 0012, documents 0003);
- dj-stripe's webhook triggers have no index on `created` (only the primary key; dj-stripe's
  table, so we add none): they are read only in their newest RECENT_ROWS rows, found by primary
  key (ids only grow), and within those only rows of the last hour;
- providers and rate budgets are a handful of rows.

A "total" here is a Prometheus counter (it only grows); everything else is a gauge of now or
of a recent window (named `..._last_hour`, `..._last_day`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    Model,
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone
from djstripe.models import WebhookEventTrigger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from documents.models import EmailMessage, EmailStatus
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    EventLevel,
    HealthStatus,
    Job,
    JobEvent,
    JobKind,
    JobState,
    Provider,
    RateLimitBudget,
    job_untaken,
)

# How many of the newest webhook triggers the last-hour numbers look at (the table has no time
# index). An hour of more than this many deliveries is undercounted, never slow.
RECENT_ROWS = 10_000
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Upper bounds (seconds) of the provisioning-duration histogram: a fake Beacon takes seconds,
# a real one 5-20 minutes (INSTALL_BOOT_LIMIT_SECONDS and the install stages).
PROVISION_BUCKETS = (30, 60, 120, 300, 600, 900, 1200, 1800, 3600)


def metrics_exposition() -> bytes:
    """The text exposition of every metric, collected now (one fresh registry per scrape, so
    nothing is kept between scrapes and no collector is registered at import)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


class DatabaseCollector:
    """A prometheus-client collector whose every metric is read from the database."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from webhook_metrics(now)
        yield from job_metrics(now)
        yield provision_duration_histogram()
        yield from provider_metrics(now)
        yield email_metrics(now)


def newest_pk(model: type[Model]) -> int:
    """The highest id of `model` (0: no rows), read from the primary key's index."""
    return model._default_manager.aggregate(newest=Max("pk"))["newest"] or 0


def recent_rows(
    model: type[Model], *, time_field: str, since: datetime, newest: int | None = None
) -> QuerySet[Any]:
    """Rows of `model` written since `since`, looked for among its newest RECENT_ROWS rows
    only: a primary-key range (ids only grow), so no scan of the table's history. Only for a
    table with no index on its time column (dj-stripe's WebhookEventTrigger)."""
    newest = newest_pk(model) if newest is None else newest
    return model._default_manager.filter(
        pk__gt=newest - RECENT_ROWS, **{f"{time_field}__gte": since}
    )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


# --- Stripe webhooks -------------------------------------------------------------------------

# What became of a delivery, from the columns dj-stripe and billing.webhooks write.
# `ignored`: a delivery of the other Stripe mode (billing.webhooks.livemode_mismatch_record);
# `failed`: processing raised (Stripe delivers the event again).
_IGNORED = Q(exception__startswith="ignored:")
OUTCOMES = (
    ("processed", Q(processed=True)),
    ("failed", Q(valid=True, processed=False) & ~Q(exception="") & ~_IGNORED),
    ("ignored", Q(valid=True, processed=False) & _IGNORED),
    ("invalid", Q(valid=False)),
)


def webhook_metrics(now: datetime) -> Iterator[Metric]:
    """Deliveries received (ever, and by outcome in the last hour) and the lag between Stripe
    creating an event and this service receiving it (Stripe retries late after failures)."""
    newest = newest_pk(WebhookEventTrigger)
    yield CounterMetricFamily(
        "wopr_stripe_webhook_deliveries",
        "Stripe webhook deliveries received: the highest dj-stripe WebhookEventTrigger id, read "
        "from the primary key (a count would scan the table). It never falls (ids only grow, "
        "deleted rows keep theirs) but overcounts where ids were skipped (PostgreSQL sequence "
        "values of rolled-back inserts are not reused): read it with rate() or increase().",
        value=newest,
    )
    recent = recent_rows(WebhookEventTrigger, time_field="created", since=now - HOUR, newest=newest)
    # Aliases unlike the model's fields (`processed` is one): Django refuses a clash.
    counts = recent.aggregate(**{f"n_{name}": Count("pk", filter=q) for name, q in OUTCOMES})
    outcomes = GaugeMetricFamily(
        "wopr_stripe_webhook_deliveries_last_hour",
        "Stripe webhook deliveries of the last hour by outcome.",
        labels=["outcome"],
    )
    for name, _ in OUTCOMES:
        outcomes.add_metric([name], counts[f"n_{name}"])
    yield outcomes
    yield from webhook_lag(recent.filter(processed=True, event__isnull=False))


def webhook_lag(processed: QuerySet[Any]) -> Iterator[Metric]:
    """Seconds from Stripe's `created` of an event to our storing its delivery: of the newest
    processed delivery, and the most of the last hour (0 with none)."""
    lag = ExpressionWrapper(F("created") - F("event__created"), output_field=DurationField())
    latest = processed.order_by("-pk").annotate(lag=lag).values_list("lag", flat=True).first()
    most = processed.aggregate(most=Max(lag))["most"]
    yield _gauge(
        "wopr_stripe_webhook_lag_seconds",
        "Seconds between Stripe creating the newest processed event and its delivery here.",
        _seconds(latest),
    )
    yield _gauge(
        "wopr_stripe_webhook_lag_max_last_hour_seconds",
        "The longest such lag among the processed deliveries of the last hour.",
        _seconds(most),
    )


def _seconds(value: timedelta | None) -> float:
    return max(value.total_seconds(), 0.0) if value is not None else 0.0


# --- jobs ------------------------------------------------------------------------------------


def job_metrics(now: datetime) -> Iterator[Metric]:
    """Unfinished jobs by state and kind, failed jobs (now and finished in the last day), and
    how long the oldest due job has been waiting for a worker."""
    yield _jobs_by_state_and_kind()
    yield from _jobs_failed(now)
    due = Job.objects.filter(job_untaken(now)).aggregate(oldest=Min("next_attempt_at"))["oldest"]
    yield _gauge(
        "wopr_job_oldest_due_age_seconds",
        "Seconds since the oldest due job (its next attempt time passed, no worker holds it) "
        "became due; 0 with none.",
        (now - due).total_seconds() if due else 0.0,
    )


def _jobs_by_state_and_kind() -> Metric:
    family = GaugeMetricFamily(
        "wopr_jobs", "Unfinished jobs by state and kind.", labels=["state", "kind"]
    )
    rows = (
        Job.objects.filter(state__in=UNFINISHED_JOB_STATES)
        .values_list("state", "kind")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts = {(state, kind): count for state, kind, count in rows}
    for state in UNFINISHED_JOB_STATES:
        for kind in JobKind.values:
            family.add_metric([state, kind], counts.get((state, kind), 0))
    return family


def _jobs_failed(now: datetime) -> Iterator[Metric]:
    rows = (
        Job.objects.filter(state=JobState.FAILED)
        .values("kind")
        .annotate(total=Count("pk"), last_day=Count("pk", filter=Q(finished_at__gte=now - DAY)))
        .order_by()
    )
    counts = {row["kind"]: row for row in rows}
    failed = GaugeMetricFamily("wopr_jobs_failed", "Failed jobs by kind.", labels=["kind"])
    recent = GaugeMetricFamily(
        "wopr_jobs_failed_last_day", "Jobs that failed in the last day, by kind.", labels=["kind"]
    )
    for kind in JobKind.values:
        failed.add_metric([kind], counts.get(kind, {}).get("total", 0))
        recent.add_metric([kind], counts.get(kind, {}).get("last_day", 0))
    yield failed
    yield recent


def provision_duration_histogram() -> Metric:
    """Seconds from the first claim to the end of every completed PROVISION job, as a
    cumulative histogram (one conditional count per bucket, in one query)."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    jobs = Job.objects.filter(
        kind=JobKind.PROVISION,
        state=JobState.COMPLETED,
        started_at__isnull=False,
        finished_at__isnull=False,
    ).annotate(duration=duration)
    buckets = {
        f"le_{bound}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
        for bound in PROVISION_BUCKETS
    }
    row = jobs.aggregate(count=Count("pk"), total=Sum("duration"), **buckets)
    cumulative = [(str(float(b)), row[f"le_{b}"]) for b in PROVISION_BUCKETS]
    return HistogramMetricFamily(
        "wopr_provision_duration_seconds",
        "Seconds each completed PROVISION job took, from its first claim to its end.",
        buckets=[*cumulative, ("+Inf", row["count"])],
        sum_value=_seconds(row["total"]),
    )


# --- providers -------------------------------------------------------------------------------


def provider_metrics(now: datetime) -> Iterator[Metric]:
    """Each provider's health (its latest sweep), job errors of the last hour per provider,
    and the vendors' request budgets."""
    yield from _provider_health()
    yield _provider_job_events(now)
    yield from _rate_budgets(now)


def _provider_health() -> Iterator[Metric]:
    health = GaugeMetricFamily(
        "wopr_provider_health",
        "1 for the status the provider's latest health sweep found, 0 for the others.",
        labels=["provider", "status"],
    )
    checked = GaugeMetricFamily(
        "wopr_provider_health_checked_timestamp_seconds",
        "When the provider's latest health sweep ran (Unix time; 0: never).",
        labels=["provider"],
    )
    for name, status, at in Provider.objects.values_list(
        "name", "health_status", "last_checked_at"
    ):
        for value in HealthStatus.values:
            health.add_metric([name, value], 1 if value == status else 0)
        checked.add_metric([name], at.timestamp() if at else 0)
    yield health
    yield checked


def _provider_job_events(now: datetime) -> Metric:
    family = GaugeMetricFamily(
        "wopr_provider_job_events_last_hour",
        "Job timeline lines of the last hour at level warning (an attempt failed, retried) or "
        "error (gave up), by the provider of the job's Beacon.",
        labels=["provider", "level"],
    )
    rows = (
        JobEvent.objects.filter(
            at__gte=now - HOUR, level__in=[EventLevel.WARNING, EventLevel.ERROR]
        )
        .values_list("job__beacon__provider__name", "level")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for provider, level, count in rows:
        family.add_metric([provider or "none", level], count)
    return family


def _rate_budgets(now: datetime) -> Iterator[Metric]:
    remaining = GaugeMetricFamily(
        "wopr_provider_rate_budget_remaining",
        "Requests left in a vendor's budget, as it last said (absent: never said).",
        labels=["key"],
    )
    limit = GaugeMetricFamily(
        "wopr_provider_rate_budget_limit", "A vendor's request budget.", labels=["key"]
    )
    blocked = GaugeMetricFamily(
        "wopr_provider_rate_budget_blocked_seconds",
        "Seconds until a spent budget lets requests through again (0: not blocked).",
        labels=["key"],
    )
    for budget in RateLimitBudget.objects.order_by("key"):
        if budget.remaining is not None:
            remaining.add_metric([budget.key], budget.remaining)
        if budget.limit is not None:
            limit.add_metric([budget.key], budget.limit)
        until = budget.blocked_until
        blocked.add_metric([budget.key], max((until - now).total_seconds(), 0) if until else 0)
    yield remaining
    yield limit
    yield blocked


# --- e-mail ----------------------------------------------------------------------------------


def email_metrics(now: datetime) -> Metric:
    """E-mails made in the last day by status (sent, failed, still pending or sending)."""
    family = GaugeMetricFamily(
        "wopr_emails_last_day",
        "E-mails of the last day (by when they were made) by status.",
        labels=["status"],
    )
    rows = (
        EmailMessage.objects.filter(created_at__gte=now - DAY)
        .values_list("status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts = dict(rows)
    for status in EmailStatus.values:
        family.add_metric([status], counts.get(status, 0))
    return family
