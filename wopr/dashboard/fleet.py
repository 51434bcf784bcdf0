"""The dashboard's operations panels: Beacons by status, jobs and orders that need a human,
provider health and the last reconcile, and provisioning times over the window."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import (
    Order,
    OrderRemedy,
    OrderStatus,
    RemedyState,
)
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    Beacon,
    BeaconStatus,
    InstallStage,
    Job,
    JobEvent,
    JobKind,
    JobState,
    Provider,
    ProviderHealthCheck,
    ReconcileRun,
    job_untaken,
)
from wopr.dashboard.common import (
    LIST_LIMIT,
    OVERDUE,
    PROVISION_GRACE,
    UNBUILT_BEACONS,
    WINDOW_DAYS,
    admin_url,
    window_days,
)

# --- Beacons by status --------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int
    url: str


def beacons_by_status() -> list[StatusCount]:
    """Every Beacon status with its count (zero too), each linking to the filtered changelist."""
    counts = dict(Beacon.objects.order_by().values_list("status").annotate(n=Count("pk")))
    return [
        StatusCount(
            status=value,
            label=str(label),
            count=counts.get(value, 0),
            url=admin_url("provisioning_beacon_changelist", status__exact=value),
        )
        for value, label in BeaconStatus.choices
    ]


# --- Jobs that need a human ---------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    kind: str
    step: str
    state: str
    beacon_name: str
    beacon_url: str
    job_url: str
    why: str
    since: datetime | None


@dataclass(frozen=True)
class JobsPanel:
    failed_count: int
    failed: list[JobRow]
    stuck_count: int
    stuck: list[JobRow]
    failed_url: str


def _job_row(job: Job, why: str, since: datetime | None) -> JobRow:
    return JobRow(
        kind=job.get_kind_display(),
        step=job.step,
        state=job.state,
        beacon_name=job.beacon.name,
        beacon_url=admin_url("provisioning_beacon_change", job.beacon_id),
        job_url=admin_url("provisioning_job_change", job.pk),
        why=why,
        since=since,
    )


def _stuck_filter(now: datetime) -> Q:
    """Unfinished jobs past a limit: due OVERDUE ago and still not taken by a worker
    (provisioning.models.job_untaken: the due-job loop's reservation is not a taking), or an
    install silent past the engine's own limits (settings INSTALL_BOOT_LIMIT_SECONDS before the
    first install stage, INSTALL_PROGRESS_LIMIT_SECONDS after; the engine measures from the
    server running, whose timeline line is the job's last before the first stage). A running
    job holding its lease is never stuck here, however old its next_attempt_at (claiming does
    not move it)."""
    boot = now - timedelta(seconds=settings.INSTALL_BOOT_LIMIT_SECONDS)
    progress = now - timedelta(seconds=settings.INSTALL_PROGRESS_LIMIT_SECONDS)
    install = Q(step="wait_callback", callback_completed_at__isnull=True) & (
        Q(has_stage=False, last_sign__lt=boot) | Q(has_stage=True, last_sign__lt=progress)
    )
    return job_untaken(now, since=now - OVERDUE) | install


def _stuck_jobs(now: datetime) -> QuerySet[Job]:
    events = JobEvent.objects.filter(job=OuterRef("pk")).order_by("-at").values("at")[:1]
    stages = InstallStage.objects.filter(job=OuterRef("pk")).order_by("-at").values("at")[:1]
    return (
        Job.objects.filter(state__in=UNFINISHED_JOB_STATES)
        .annotate(
            has_stage=Exists(InstallStage.objects.filter(job=OuterRef("pk"))),
            last_sign=Coalesce(Subquery(stages), Subquery(events), F("started_at"), "created_at"),
        )
        .filter(_stuck_filter(now))
    )


def _stuck_why(job: Job, now: datetime) -> str:
    since = now - OVERDUE
    if job.next_attempt_at and job.next_attempt_at <= since:
        if job.state != JobState.RUNNING:
            return "due but no worker took it"
        lease = job.lease_expires_at
        if not lease or lease < since:
            return "its worker's lease expired"
    return "the Beacon's install has gone silent past its limit"


def jobs_needing_human(now: datetime) -> JobsPanel:
    """Jobs failed in the last WINDOW_DAYS, and unfinished jobs waiting past a limit."""
    failed = Job.objects.filter(
        state=JobState.FAILED, finished_at__gte=now - timedelta(days=WINDOW_DAYS)
    )
    stuck = _stuck_jobs(now)
    failed_rows = failed.select_related("beacon").order_by("-finished_at")[:LIST_LIMIT]
    stuck_rows = stuck.select_related("beacon").order_by("last_sign")[:LIST_LIMIT]
    return JobsPanel(
        failed_count=failed.count(),
        failed=[_job_row(job, job.last_error[:200], job.finished_at) for job in failed_rows],
        stuck_count=stuck.count(),
        stuck=[_job_row(job, _stuck_why(job, now), job.last_sign) for job in stuck_rows],
        failed_url=admin_url("provisioning_job_changelist", state__exact=JobState.FAILED),
    )


# --- Orders paid but not provisioned, refunds waiting ---------------------------------------


@dataclass(frozen=True)
class OrderRow:
    label: str
    url: str
    beacon_status: str
    paid_at: datetime | None
    reason: str


@dataclass(frozen=True)
class OrdersPanel:
    unbuilt_count: int
    unbuilt: list[OrderRow]
    remedies_count: int
    remedies: list[OrderRow]
    remedies_url: str


def _unbuilt_orders(now: datetime) -> QuerySet[Order]:
    """Paid orders with no Beacon (billing flags each such order needs_attention, so the
    (needs_attention, status) index finds them), or whose Beacon is not built PROVISION_GRACE
    after payment (found through the Beacon status index)."""
    has_beacon = Exists(Beacon.objects.filter(order=OuterRef("pk")))
    unbuilt = Beacon.objects.filter(status__in=UNBUILT_BEACONS).values("order_id")
    return Order.objects.filter(status=OrderStatus.PAID).filter(
        Q(~has_beacon, needs_attention=True) | Q(pk__in=unbuilt, paid_at__lt=now - PROVISION_GRACE)
    )


def _order_row(order: Order, reason: str) -> OrderRow:
    beacon = getattr(order, "beacon", None)
    return OrderRow(
        label=order.beacon_name or str(order.pk),
        url=admin_url("billing_order_change", order.pk),
        beacon_status=beacon.get_status_display() if beacon else "no Beacon",
        paid_at=order.paid_at,
        reason=reason[:200],
    )


def orders_needing_human(now: datetime) -> OrdersPanel:
    """Paid orders not provisioned, and refunds queued for a staff click (OrderRemedy QUEUED)."""
    unbuilt = _unbuilt_orders(now)
    queued = OrderRemedy.objects.filter(state=RemedyState.QUEUED)
    unbuilt_rows = unbuilt.select_related("beacon").order_by("paid_at")[:LIST_LIMIT]
    remedy_rows = queued.select_related("order", "order__beacon").order_by("created_at")
    return OrdersPanel(
        unbuilt_count=unbuilt.count(),
        unbuilt=[_order_row(order, order.attention_reason) for order in unbuilt_rows],
        remedies_count=queued.count(),
        remedies=[_order_row(row.order, row.reason) for row in remedy_rows[:LIST_LIMIT]],
        remedies_url=admin_url("billing_orderremedy_changelist", state__exact=RemedyState.QUEUED),
    )


# --- Provider health and the last reconcile -------------------------------------------------


@dataclass(frozen=True)
class ProviderRow:
    name: str
    url: str
    enabled: bool
    health_status: str
    last_sweep_at: datetime | None
    last_sweep_status: str


@dataclass(frozen=True)
class HealthPanel:
    providers: list[ProviderRow]
    reconcile_at: datetime | None
    reconcile_findings: int
    reconcile_needs_human: bool
    reconcile_url: str


def provider_health() -> HealthPanel:
    """Each provider's health and its latest sweep (one query), and the latest reconcile run."""
    latest = ProviderHealthCheck.objects.filter(provider=OuterRef("pk")).order_by("-checked_at")
    providers = Provider.objects.annotate(
        sweep_at=Subquery(latest.values("checked_at")[:1]),
        sweep_status=Subquery(latest.values("status")[:1]),
    )
    run = ReconcileRun.objects.order_by("-started_at").first()
    return HealthPanel(
        providers=[
            ProviderRow(
                name=row.name,
                url=admin_url("provisioning_provider_change", row.pk),
                enabled=row.enabled,
                health_status=row.health_status,
                last_sweep_at=row.sweep_at,
                last_sweep_status=row.sweep_status or "",
            )
            for row in providers
        ],
        reconcile_at=run.started_at if run else None,
        reconcile_findings=len(run.findings) if run else 0,
        reconcile_needs_human=bool(run and run.needs_human),
        reconcile_url=admin_url("provisioning_reconcilerun_change", run.pk) if run else "",
    )


@dataclass(frozen=True)
class DayDurations:
    day: date
    count: int
    p50_minutes: float | None
    p90_minutes: float | None


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted `values` (not empty): the smallest value with at
    least `share` of the values at or below it."""
    return values[max(1, math.ceil(share * len(values))) - 1]


def provisioning_times(now: datetime) -> list[DayDurations]:
    """Per day of the window: provision jobs completed, p50 and p90 minutes from the job's
    start (started_at, first claimed by a worker) to its completion (finished_at)."""
    days = window_days(now)
    rows = Job.objects.filter(
        kind=JobKind.PROVISION,
        state=JobState.COMPLETED,
        finished_at__gte=timezone.make_aware(datetime.combine(days[0], datetime.min.time())),
        started_at__isnull=False,
    ).values_list("started_at", "finished_at")
    by_day: dict[date, list[float]] = defaultdict(list)
    for started, finished in rows:
        by_day[timezone.localdate(finished)].append((finished - started).total_seconds() / 60)
    result = []
    for day in days:
        values = sorted(by_day.get(day, []))
        p50 = percentile(values, 0.5) if values else None
        p90 = percentile(values, 0.9) if values else None
        result.append(DayDurations(day=day, count=len(values), p50_minutes=p50, p90_minutes=p90))
    return result
